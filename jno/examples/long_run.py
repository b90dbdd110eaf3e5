"""Checkpointed long run: a NUTS solve stopped half-way, resumed in a fresh crux, equal draws.

``python -m jno long-run``. The headline's model (A sin πx + B cos πx from noisy data, 4 NUTS
chains) is solved with ``checkpoint=`` and stopped at step 600 the way Ctrl-C stops it; a
fresh crux built by the same code resumes from the checkpoint (``resume_from=``) and finishes
the call. Its draws are compared with an uninterrupted run's (they are equal: the checkpoint
holds the chain states, adapted step sizes and mass matrices, keys and the step index). Then
``until=jno.bayesian.converged(rhat=1.01, ess=400)`` samples only as long as needed. The
figure shows the draws of A of both runs and their trace across the interruption.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import blackjax
import numpy as np

import jno
from jno.examples.output import NO_FIGURE, output_dir, pyplot, save


def build(keep: int, warmup: int):
    """The script up to ``jno.core``: what a resumed job runs again."""
    pi = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    target = 3.14 * jno.np.sin(pi * x) - 2.71 * jno.np.cos(pi * x) + jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="A")
    b = jno.np.parameter((1,), name="B")
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=warmup, keep=keep, num_chains=4, init_jitter=0.5)
    r = a * jno.np.sin(pi * x) + b * jno.np.cos(pi * x) - target
    return jno.core([r.gaussian(std=0.1)], seed=7), a


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m jno long-run", description=__doc__)
    parser.add_argument("--out", default=output_dir(), help="figure folder (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--keep", type=int, default=600)
    parser.add_argument("--stop-at", type=int, default=600, help="step of the interruption")
    parser.add_argument("--checkpoint", default=None, help="checkpoint file (default: temporary)")
    args = parser.parse_args(argv)
    ckpt = Path(args.checkpoint or Path(tempfile.mkdtemp(prefix="jno-long-run-")) / "run.ckpt")

    def interrupt(info):
        if info.step >= args.stop_at:
            raise KeyboardInterrupt

    t0 = time.perf_counter()
    crux, _ = build(args.keep, args.warmup)
    crux.solve(print_rate=100, checkpoint=ckpt, callbacks=[interrupt], progress=False)
    stopped = crux.solver.step_index
    resumed, a_resumed = build(args.keep, args.warmup)
    resumed.solve(print_rate=100, resume_from=ckpt, checkpoint=ckpt, progress=False)
    reference, a_reference = build(args.keep, args.warmup)
    reference.solve(print_rate=100, progress=False)
    equal = bool(np.array_equal(a_resumed.posterior_samples, a_reference.posterior_samples))

    until = jno.bayesian.converged(rhat=1.01, ess=400)
    adaptive, a_adaptive = build(10 * args.keep, args.warmup)
    adaptive.solve(until=until, max_epochs=args.warmup + 10 * args.keep, print_rate=100,
                   progress=False)
    chain = np.asarray(a_adaptive.posterior_samples)
    elapsed = time.perf_counter() - t0
    rows = {
        "stopped_at": int(stopped),
        "resumed_equal": equal,
        "checkpoint_bytes": ckpt.stat().st_size,
        "until_steps": int(adaptive.solver.step_index),
        "until_draws": int(chain.shape[1]),
        "until_rhat": float(np.max(jno.bayesian.rhat(chain))),
        "until_ess": float(np.min(jno.bayesian.ess(chain))),
        "mean_A": float(chain.mean()),
        "seconds": elapsed,
        "until_chain": chain[..., 0],
    }
    print(
        f"\njno long-run ({elapsed:.1f} s in all):\n"
        f"  stopped at step {rows['stopped_at']} of {args.warmup + args.keep}; checkpoint "
        f"{rows['checkpoint_bytes']} bytes at {ckpt}\n"
        f"  resumed in a fresh crux: draws equal to the uninterrupted run's: {equal}\n"
        f"  until=converged(rhat=1.01, ess=400): stopped after {rows['until_steps']} steps, "
        f"{rows['until_draws']} draws per chain, R-hat {rows['until_rhat']:.4f}, "
        f"ESS {rows['until_ess']:.0f}; mean of A {rows['mean_A']:.3f} (truth 3.14)"
    )
    rows["figure"] = _figure(
        args.out,
        np.asarray(a_resumed.posterior_samples),
        np.asarray(a_reference.posterior_samples),
        args,
    )
    print(f"\nfigure: {rows['figure']}")
    return rows


def _figure(out_dir, chain, reference, args):
    plt = pyplot()
    if plt is None:
        return NO_FIGURE
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    bins = np.linspace(min(chain.min(), reference.min()), max(chain.max(), reference.max()), 40)
    axes[0].hist(reference.ravel(), bins=bins, alpha=0.5, label="uninterrupted run")
    axes[0].hist(chain.ravel(), bins=bins, histtype="step", color="k", label="stopped + resumed")
    axes[0].set_xlabel("A")
    axes[0].set_title("posterior draws of A")
    axes[0].legend(fontsize=8)
    steps = args.warmup + np.arange(chain.shape[1])
    for k in range(chain.shape[0]):
        axes[1].plot(steps, chain[k, :, 0], lw=0.5, alpha=0.8, label=f"chain {k}")
    axes[1].axvline(args.stop_at, color="k", ls="--", lw=1, label="interrupted here")
    axes[1].set_xlabel("step")
    axes[1].set_title("kept draws of A")
    axes[1].legend(fontsize=7)
    return save(fig, out_dir, "long_run.png")
