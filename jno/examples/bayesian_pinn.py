"""Bayesian PINN: NUTS over a 49-weight network for u'' = -π² sin πx, a 90 % band beside sin πx.

``python -m jno pinn``. The network ``u_θ`` (1 → 16 → 1, tanh) solves
``u''(x) = -π² sin(πx)`` on [0, 1] with ``u(0) = u(1) = 0`` (solution ``sin πx``). Its weights
are sampled by NUTS under ``log p(θ) = -λ (mean_i r_i² + ½ (u(0)² + u(1)²)) + log N(θ; 0, 10²)``
(the guide's ``pde.mse`` and ``bc.mse`` at likelihood scale λ = 1e4). ``u''`` fixes ``u`` up to
an affine function that only the two boundary residuals pin down, each ``N(0, 1/λ)``, so the
posterior sd of ``u(x)`` is close to ``sqrt(((1-x)² + x²)/λ)``: 0.01 at the ends, 0.007 in the
middle. Printed: the median's error against sin πx, the band's width beside that prediction,
R-hat and ESS of ``u(0.5)``, divergences; the figure shows the band and the truth.
"""

from __future__ import annotations

import argparse
import time

import blackjax
import jax
import numpy as np

import jno
from jno.examples.output import NO_FIGURE, output_dir, pyplot, save


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m jno pinn", description=__doc__)
    parser.add_argument("--out", default=output_dir(), help="figure folder (default: %(default)s)")
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--keep", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1e4, help="likelihood scale λ")
    args = parser.parse_args(argv)

    pi = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=16, num_layers=1, key=jax.random.PRNGKey(0)))
    u = net(x)
    pde = jno.diff(u, x, order=2) + (pi**2) * jno.np.sin(pi * x)
    bc = net(xb) - 0.0
    net.bayesian(
        blackjax.nuts,
        likelihood_scale=args.scale,
        warmup=args.warmup,
        keep=args.keep,
        num_chains=args.chains,
        init_jitter=0.05,
        max_num_doublings=6,
    )
    crux = jno.core([pde.mse, bc.mse], seed=0)
    t0 = time.perf_counter()
    crux.solve(progress=False)
    elapsed = time.perf_counter() - t0

    xs = np.asarray(dom.points("interior")[:, 0])
    truth = np.sin(np.pi * xs)
    draws = np.asarray(crux.eval([u], samples="chain"))[..., 0]  # (K, N, 101)
    flat = draws.reshape(-1, xs.size)
    lo, median, hi = np.quantile(flat, [0.05, 0.5, 0.95], axis=0)
    predicted_sd = np.sqrt(((1 - xs) ** 2 + xs**2) / args.scale)
    mid = int(np.argmin(np.abs(xs - 0.5)))
    diag = net.posterior_diagnostics
    rows = {
        "median_rel_l2": float(np.linalg.norm(median - truth) / np.linalg.norm(truth)),
        "sd_rel_l2": float(np.linalg.norm(flat.std(0)) / np.linalg.norm(truth)),
        "sd_end": float(draws[..., 0].std()),
        "sd_end_predicted": float(predicted_sd[0]),
        "covered": float(np.mean((truth >= lo) & (truth <= hi))),
        "rhat_mid": float(jno.bayesian.rhat(draws[..., mid])),
        "ess_mid": float(jno.bayesian.ess(draws[..., mid])),
        "divergent": int(np.sum(diag["is_divergent"])),
        "seconds": elapsed,
    }
    n = draws.shape[0] * draws.shape[1]
    print(
        f"\njno pinn: NUTS over a 16-unit tanh network (49 weights), {args.chains} chains x "
        f"{args.keep} draws, λ = {args.scale:g}, solve time {elapsed:.1f} s\n"
        f"  median's relative L2 error against sin πx   {rows['median_rel_l2']:.4f}\n"
        f"  posterior sd, relative L2 (the band's scale) {rows['sd_rel_l2']:.4f}\n"
        f"  sd of u(0) {rows['sd_end']:.4f}, predicted 1/sqrt(λ) {rows['sd_end_predicted']:.4f}\n"
        f"  points where sin πx lies in the 90 % band  {rows['covered']:.2f}\n"
        f"  u(0.5): R-hat {rows['rhat_mid']:.3f}, ESS {rows['ess_mid']:.0f} of {n}; "
        f"{rows['divergent']} divergent"
    )
    rows["u0_draws"] = draws[..., 0]
    rows["figure"] = _figure(args.out, xs, truth, lo, median, hi)
    print(f"\nfigure: {rows['figure']}")
    return rows


def _figure(out_dir, xs, truth, lo, median, hi):
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].fill_between(xs, lo, hi, alpha=0.3, label="90% band")
    axes[0].plot(xs, median, lw=1.5, label="posterior median")
    axes[0].plot(xs, truth, "k--", lw=1, label="sin(πx)")
    axes[0].set_xlabel("x")
    axes[0].legend(fontsize=8)
    axes[1].fill_between(xs, lo - truth, hi - truth, alpha=0.3, label="90% band − sin(πx)")
    axes[1].plot(xs, median - truth, lw=1.5, label="median − sin(πx)")
    axes[1].axhline(0.0, color="k", lw=0.5)
    axes[1].set_xlabel("x")
    axes[1].legend(fontsize=8)
    return save(fig, out_dir, "pinn.png")
