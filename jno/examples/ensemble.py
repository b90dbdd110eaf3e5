"""Deep ensemble: 16 MAP-trained networks on noisy sinc data, scored as a Gaussian mixture.

``python -m jno ensemble``. 80 points ``y = sin(x)/x + ε``, ``ε ~ N(0, 0.1²)`` on [-10, 10];
a 1 → 32 → 32 → 1 tanh network made an ensemble with ``net.ensemble(size=16, ...)``; each
member takes Adam steps on ``Σ_i (y_i - f(x_i))²/(2σ²) - log N(θ; 0, 1)`` (``.gaussian(std=σ)``
with ``prior_weight=1``). On 200 test points on [-12, 12] (beyond the data at both ends)
``jno.metrics.summary`` scores the members' Gaussian mixture exactly: RMSE against the
noiseless truth and a fresh noisy draw, NLL (the noise alone gives ½ log 2πσ² + ½ = -0.88),
95 % coverage and width. The figure shows the members, the mixture band and the truth.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jno
import jno.metrics
from jno.examples.output import NO_FIGURE, output_dir, pyplot, save

SIGMA = 0.1


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m jno ensemble", description=__doc__)
    parser.add_argument("--out", default=output_dir(), help="figure folder (default: %(default)s)")
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=1500)
    args = parser.parse_args(argv)

    k_x, k_train, k_test = jax.random.split(jax.random.PRNGKey(666), 3)
    x_np = np.asarray(jax.random.uniform(k_x, (80,), minval=-10.0, maxval=10.0))
    y_np = np.sinc(x_np / np.pi) + SIGMA * np.asarray(jax.random.normal(k_train, (80,)))
    xt_np = np.linspace(-12.0, 12.0, 200)
    truth = np.sinc(xt_np / np.pi)
    y_test = truth + SIGMA * np.asarray(jax.random.normal(k_test, xt_np.shape))

    train = jno.domain(constructor=jno.domain.points(x_np[:, None]))
    x, _ = train.variable("interior")
    y = train.variable("y", y_np[:, None])
    test = jno.domain(constructor=jno.domain.points(xt_np[:, None]))
    x_test, _ = test.variable("interior")
    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=32, num_layers=2, activation=jnp.tanh, key=jax.random.PRNGKey(0)),
        name="mlp",
    )
    net.ensemble(
        size=args.members,
        optimizer=optax.adam(5e-3),
        prior_weight=1.0,
        prior=jno.bayesian.priors.gaussian(sigma=1.0),
    )
    crux = jno.core([(net(x) - y).gaussian(std=SIGMA)], seed=0)
    t0 = time.perf_counter()
    crux.solve(args.epochs, progress=False)
    elapsed = time.perf_counter() - t0
    members = np.asarray(crux.eval([net(x_test)]))[0, :, :, 0]  # (E, 200)

    scores = jno.metrics.summary(members, SIGMA, truth, y_test)
    rows = {k: float(scores[k]) for k in ("rmse_truth", "rmse_obs", "nll", "coverage_95",
                                          "sharpness_95")}
    rows["seconds"] = elapsed
    print(
        f"\njno ensemble: {args.members} members x {args.epochs} Adam steps, "
        f"solve time {elapsed:.1f} s; the mixture on 200 test points:\n"
        f"  RMSE against the truth {rows['rmse_truth']:.3f}, against a noisy draw "
        f"{rows['rmse_obs']:.3f} (noise alone: {SIGMA})\n"
        f"  NLL {rows['nll']:.3f} (noise alone: {0.5 * np.log(2 * np.pi * SIGMA**2) + 0.5:.3f})\n"
        f"  95 % interval: coverage {rows['coverage_95']:.2f}, mean width "
        f"{rows['sharpness_95']:.3f} (noise alone: {2 * 1.96 * SIGMA:.3f})"
    )
    band = jno.metrics.mixture_quantiles(members, SIGMA, jnp.array([0.025, 0.975]))
    rows["figure"] = _figure(args.out, x_np, y_np, xt_np, truth, members, np.asarray(band))
    print(f"\nfigure: {rows['figure']}")
    return rows


def _figure(out_dir, x, y, xt, truth, members, band):
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.fill_between(xt, band[0], band[1], alpha=0.25, label="95% predictive (mixture)")
    for m in members:
        ax.plot(xt, m, lw=0.5, alpha=0.5, color="C0")
    ax.plot(xt, truth, "k--", lw=1, label="truth sin(x)/x")
    ax.scatter(x, y, s=8, color="k", label="training data")
    ax.axvspan(-12, -10, color="0.9")
    ax.axvspan(10, 12, color="0.9")
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    return save(fig, out_dir, "ensemble.png")
