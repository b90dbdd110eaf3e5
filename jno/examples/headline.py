"""Bayesian inverse problem: A, B of A sin πx + B cos πx, 4 NUTS chains, beside the exact posterior.

``python -m jno`` (the default example) or ``python -m jno headline``. Recover (A, B) in
``d(x) = A sin(πx) + B cos(πx)`` from 101 noisy observations (σ = 0.1) with a calibrated
Gaussian likelihood and 4 NUTS chains; print the posterior table (mean, std, 90 %
interval, R-hat, ESS, divergences, time) next to the exact conjugate posterior, and save a
figure (data, posterior predictive band, traces).
"""

from __future__ import annotations

import argparse
import time

import blackjax
import jax
import numpy as np

import jno
from jno.examples.output import NO_FIGURE, output_dir, pyplot, save


def exact_posterior(x: np.ndarray, y: np.ndarray, sigma: float, prior_sigma: float):
    """Mean and covariance of (A, B) for a linear-Gaussian model with a N(0, prior_sigma²) prior."""
    phi = np.stack([np.sin(np.pi * x), np.cos(np.pi * x)], axis=1).astype(np.float64)
    precision = phi.T @ phi / sigma**2 + np.eye(2) / prior_sigma**2
    cov = np.linalg.inv(precision)
    mean = cov @ phi.T @ y.astype(np.float64) / sigma**2
    return mean, cov


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m jno headline", description=__doc__)
    parser.add_argument("--out", default=output_dir(), help="figure folder (default: %(default)s)")
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--keep", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=500)
    args = parser.parse_args(argv)

    pi = jno.np.pi
    sigma = 0.1
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    A_true, B_true = 3.14, -2.71
    target = (
        A_true * jno.np.sin(pi * x) + B_true * jno.np.cos(pi * x) + jno.noise.gaussian(std=sigma)
    )
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jno.np.parameter((1,), key=k1, name="A")
    b = jno.np.parameter((1,), key=k2, name="B")
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            warmup=args.warmup,
            keep=args.keep,
            num_chains=args.chains,
            init_jitter=0.5,
        )
    model = a * jno.np.sin(pi * x) + b * jno.np.cos(pi * x)
    crux = jno.core([(model - target).gaussian(std=sigma)], seed=0)
    t0 = time.perf_counter()
    crux.solve()
    elapsed = time.perf_counter() - t0

    xs = dom.points("interior")[:, 0]
    data = crux.eval([target])[:, 0]
    mean, cov = exact_posterior(xs, data, sigma, prior_sigma=10.0)
    chains = {"A": a.posterior_samples[..., 0], "B": b.posterior_samples[..., 0]}
    divergent = int(np.sum(a.posterior_diagnostics["is_divergent"]))
    n_draws = int(np.size(a.posterior_diagnostics["is_divergent"]))
    print(
        f"\njno headline: Bayesian inverse problem, {args.chains} NUTS chains x {args.keep} "
        f"draws, solve time {elapsed:.1f} s, {divergent}/{n_draws} divergent\n"
    )
    header = (
        f"{'':3}{'truth':>7}{'mean':>9}{'std':>8}{'5%':>9}{'95%':>9}{'exact mean':>12}"
        f"{'exact std':>11}{'R-hat':>8}{'ESS':>8}"
    )
    print(header)
    rows = {}
    for i, (name, truth) in enumerate((("A", A_true), ("B", B_true))):
        c = np.asarray(chains[name])
        lo, hi = np.quantile(c, [0.05, 0.95])
        r = float(jno.bayesian.rhat(c))
        e = float(jno.bayesian.ess(c))
        rows[name] = dict(
            mean=float(c.mean()), std=float(c.std()), lo=float(lo), hi=float(hi), rhat=r, ess=e
        )
        print(
            f"{name:3}{truth:7.3f}{c.mean():9.4f}{c.std():8.4f}{lo:9.4f}{hi:9.4f}"
            f"{mean[i]:12.4f}{np.sqrt(cov[i, i]):11.4f}{r:8.4f}{e:8.0f}"
        )
    u = crux.eval([model])[..., 0]  # (K, N, n_points)
    band = np.quantile(u.reshape(-1, u.shape[-1]), [0.05, 0.5, 0.95], axis=0)
    path = _figure(args.out, xs, data, band, chains)
    print(f"\nfigure: {path}")
    return {
        "rows": rows,
        "exact_mean": mean,
        "exact_cov": cov,
        "divergent": divergent,
        "draws": {name: np.asarray(c) for name, c in chains.items()},
        "figure": path,
    }


def _figure(out_dir, xs, data, band, chains):
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].scatter(xs, data, s=8, color="k", label="noisy data")
    axes[0].fill_between(xs, band[0], band[2], alpha=0.3, label="90% band of A sin + B cos")
    axes[0].plot(xs, band[1], lw=1.5, label="posterior median")
    axes[0].set_xlabel("x")
    axes[0].legend(fontsize=8)
    for ax, (name, c) in zip(axes[1:], chains.items()):
        for k in range(c.shape[0]):
            ax.plot(np.asarray(c[k]), lw=0.5, alpha=0.8, label=f"chain {k}")
        ax.set_title(f"trace of {name}")
        ax.set_xlabel("draw")
    axes[1].legend(fontsize=7)
    return save(fig, out_dir, "headline.png")
