"""Batched inference (``crux.solve_batch``) against separate solves of the same datasets.

The guide's two-coefficient problem, ``y = A sin(πx) + B cos(πx) + N(0, 0.1²)`` on 101
points, ``y`` attached as data, NUTS with window adaptation, prior N(0, 2²). ``--datasets``
datasets are simulated from the prior. Three ways to infer all of them:

- ``batch``: one ``crux.solve_batch({y: ys})`` (first call: compile + run; then a second
  call of the compiled program, the steady state), vmapped over all datasets, and with
  ``group=1`` (``lax.map``: one dataset after another in the compiled program);
- ``condition``: a loop of ``crux.condition({y: ys[d]}, dataset=d)`` + ``crux.solve()`` on
  one crux, compiled once (the first solve is excluded from the timing);
- ``fresh``: a new ``jno.core`` + ``solve()`` per dataset (what a calibration study costs
  without ``condition``): ``--fresh`` of them are timed and the mean is scaled to all datasets.

Each variant runs the same schedule (warmup + keep draws) on the same keys per dataset, and the
draws of ``batch`` and ``condition`` are compared (maximum difference printed).

    python benchmarks/calibration.py [--datasets 64] [--fresh 3] [--chains 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import blackjax
import jax
import numpy as np

import jno

SIGMA = 0.1


def build(ys0, warmup, keep, chains):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    y = dom.variable("y", ys0[:, None])
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            warmup=warmup,
            keep=keep,
            num_chains=chains,
            prior=jno.bayesian.priors.gaussian(2.0),
        )
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - y
    return jno.core([r.gaussian(std=SIGMA)], seed=0), a, y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=64)
    ap.add_argument("--fresh", type=int, default=3)
    ap.add_argument("--chains", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--keep", type=int, default=500)
    args = ap.parse_args()
    n = args.datasets
    xs = np.linspace(0.0, 1.0, 101)
    rng = np.random.default_rng(0)
    theta = 2.0 * rng.normal(size=(n, 2))
    ys = theta[:, :1] * np.sin(np.pi * xs) + theta[:, 1:] * np.cos(np.pi * xs)
    ys = ys + SIGMA * rng.normal(size=ys.shape)
    print(
        f"{platform.machine()} {os.cpu_count()} cores, jax {jax.__version__}, load "
        f"{os.getloadavg()[0]:.1f}; {n} datasets, NUTS warmup={args.warmup} "
        f"keep={args.keep} chains={args.chains}"
    )

    crux, a, y = build(ys[0], args.warmup, args.keep, args.chains)
    t = time.perf_counter()
    out = crux.solve_batch({y: ys})
    batch_first = time.perf_counter() - t
    t = time.perf_counter()
    out = crux.solve_batch({y: ys})
    batch = time.perf_counter() - t
    t = time.perf_counter()
    seq = crux.solve_batch({y: ys}, group=1)
    seq_first = time.perf_counter() - t
    t = time.perf_counter()
    seq = crux.solve_batch({y: ys}, group=1)
    seq_time = time.perf_counter() - t

    crux.condition({y: ys[0]}, dataset=0)
    t = time.perf_counter()
    crux.solve()
    cond_first = time.perf_counter() - t
    seq_diff = [np.abs(np.asarray(a.posterior_samples) - seq[a][0]).max()]
    diffs = [np.abs(np.asarray(a.posterior_samples) - out[a][0])]
    t = time.perf_counter()
    for d in range(1, n):
        crux.condition({y: ys[d]}, dataset=d)
        crux.solve()
        diffs.append(np.abs(np.asarray(a.posterior_samples) - out[a][d]))
        seq_diff.append(np.abs(np.asarray(a.posterior_samples) - seq[a][d]).max())
    cond = (time.perf_counter() - t) * n / (n - 1)
    diffs = np.stack(diffs)

    fresh = []
    for d in range(args.fresh):
        t = time.perf_counter()
        c, _, _ = build(ys[d], args.warmup, args.keep, args.chains)
        c.solve()
        fresh.append(time.perf_counter() - t)
    fresh_all = float(np.mean(fresh)) * n

    same = np.mean(np.all(diffs.reshape(n, -1) < 1e-5, axis=1))
    print(
        f"|batch - condition| over all draws of a: max {diffs.max():.2e}, median "
        f"{np.median(diffs):.2e}; datasets equal to 1e-5 in every draw: {100 * same:.0f} %"
    )
    print(f"|batch(group=1) - condition|: max {max(seq_diff):.2e}")
    print("| variant | seconds for all datasets | ratio to batch (steady) |")
    print("|---|---|---|")
    print(f"| batch, steady (compiled) | {batch:.2f} | 1.00 |")
    print(f"| batch, first call (compile + run) | {batch_first:.2f} | {batch_first / batch:.2f} |")
    print(f"| batch, group=1 (lax.map), steady | {seq_time:.2f} | {seq_time / batch:.2f} |")
    print(f"| batch, group=1, first call | {seq_first:.2f} | {seq_first / batch:.2f} |")
    print(f"| condition + solve, compiled once | {cond:.2f} | {cond / batch:.2f} |")
    print(f"| (its first solve: compile + run) | {cond_first:.2f} | |")
    print(
        f"| fresh jno.core + solve per dataset (mean of {args.fresh} x {n}) | "
        f"{fresh_all:.1f} | {fresh_all / batch:.1f} |"
    )
    print(f"ratio separate (condition) / batch: {cond / batch:.2f}")
    print(f"ratio fresh cruxes / batch incl. its compile: {fresh_all / batch_first:.1f}")


if __name__ == "__main__":
    main()
