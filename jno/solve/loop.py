"""One ``crux.solve`` call: adaptation, then compiled chunks and the hooks between them.

:func:`run_call` runs on a :class:`~jno.solve.driver.Solver` (its public attributes): window
adaptation once per state, then chunks of the schedule (:mod:`.schedule`: the general loop,
or the pure-sampling fastpath) until the call's stop, each chunk's losses, metrics and kept
draws recorded before the hooks (:mod:`.hooks`) run. Ctrl-C keeps everything so far;
SIGTERM during a checkpointed solve writes the checkpoint and exits with status 143.
"""

from __future__ import annotations

import logging
import signal
import time
import warnings
from itertools import chain

import jax.numpy as jnp
import numpy as np

from . import results
from .balance import history_metrics
from .engine import Engine
from .hooks import Progress, Run
from .options import warn_short
from .schedule import Chunk, general_chunk, sampling_chunk
from .signals import Preempted, StopSignals

log = logging.getLogger("jno")


def run_call(solver, engine: Engine, run: Run, hooks: list, fast: bool, o) -> None:
    """Adaptation, then chunks until the call's stop; whatever happens, the draws and
    history so far are kept and published and the hooks finish."""
    t0, preempted = time.perf_counter(), False
    try:
        with StopSignals(preempt=o.checkpoint is not None) as signals:
            progress = next(h for h in hooks if isinstance(h, Progress))
            _adapt(solver, engine, run.call.stop - run.call.start, progress, signals)
            if o.until is None:
                warn_short(solver.plan.blocks, run.call.start, run.call.stop - run.call.start)
            _chunks(solver, engine, run, hooks, fast, signals, o.history_every)
    except KeyboardInterrupt:
        log.warning(
            "solve interrupted at step %d: keeping the samples and history so far",
            solver.step_index,
        )
    except Preempted:
        preempted = True
    finally:
        solver.history.wall_time += time.perf_counter() - t0
        solver.publish()
        for hook in hooks:
            hook.finish(run)
    results.summary(solver.plan.blocks, solver.recorder)
    if preempted:
        log.warning(
            "solve stopped by SIGTERM at step %d; checkpoint written to %s: resume with "
            "crux.solve(..., resume_from=%r). Exiting with status 143.",
            solver.step_index,
            o.checkpoint,
            str(o.checkpoint),
        )
        raise SystemExit(128 + signal.SIGTERM)


def _adapt(solver, engine: Engine, epochs: int, progress: Progress, signals) -> None:
    """Window adaptation, once per state, as one compiled block."""
    adapting = engine.adapting()
    if solver.adapted or not adapting:
        return
    warm = max(engine.adaptation_steps(b.settings.warmup) for b in adapting)
    if epochs < warm:
        raise ValueError(
            f"crux.solve({epochs}): shorter than the window adaptation of warmup={warm} "
            f"steps, which runs as one block; pass epochs >= {warm} or lower warmup."
        )
    solver.state = solver.keyed("adapt", Engine.adapt)(solver.state)
    solver.adapted = True
    _check_tuned(engine, solver.state)
    progress.update(warm, "loss=adapted")
    signals.raise_if_stopped()


def _check_tuned(engine: Engine, state) -> None:
    """Warn about chains whose tuner left a step size that is not a positive number (a
    tuner that collapsed: the chain would never move). With several processes every process
    calls it (the step sizes are gathered: a collective)."""
    for blk, bs in zip(engine.blocks, state.blocks):
        step = bs.tuned.get("step_size") if isinstance(bs.tuned, dict) else None
        if step is None:
            continue
        step = np.asarray(engine.layout.gather(step))
        bad = ~(np.isfinite(step) & (step > 0))
        if np.any(bad):
            warnings.warn(
                f"Model {blk.label}: warm-up tuning left step_size "
                f"{step[bad].tolist()} in chain(s) {np.nonzero(bad)[0].tolist()}; "
                "those chains will not move. Start nearer the posterior (an initializer), "
                "lengthen warmup, or give step_size= with adapt=False.",
                stacklevel=4,
            )


def _chunks(
    solver, engine: Engine, run: Run, hooks: list, fast: bool, signals, history_every: int = 1
) -> None:
    """Chunks until the call's stop (or a hook's ``True``), the hooks after each."""
    ends = [e for h in hooks for e in h.ends]
    s = solver.plan.blocks[0].settings if fast else None
    if fast:
        _log_fastpath(solver, s, run.call.print_rate)
    while solver.step_index < run.call.stop:
        start, stop, rate = solver.step_index, run.call.stop, run.call.print_rate
        if fast:
            chunk = sampling_chunk(start, stop, rate, s.warmup, s.thin)
            records = _run_chunk(solver, chunk)
            if chunk.records:
                solver.recorder.add(records)
            losses = _state_losses(solver, engine)
            solver.history.append([solver.step_index - 1], losses[None])
        else:
            chunk = general_chunk(start, stop, rate, ends, history_every)
            losses = _record(solver, _run_chunk(solver, chunk))
            if losses is None:  # a chunk shorter than history_every records nothing
                losses = _state_losses(solver, engine)
        run.steps, run.losses, run.chunks = chunk.steps, losses, run.chunks + 1
        done = [hook.after_chunk(run) for hook in hooks]
        signals.raise_if_stopped()
        if any(done):
            return


def _state_losses(solver, engine: Engine) -> np.ndarray:
    """The per-constraint losses ``(C,)`` at the solve's current state (compiled once)."""
    return np.asarray(solver.jit("losses", engine.state_losses)(solver.state))


def _run_chunk(solver, chunk: Chunk):
    run = solver.keyed(chunk.name, Engine.run_chunk, **chunk.run_arguments())
    solver.state, records = run(solver.state, jnp.asarray(chunk.stop, jnp.int32))
    return records


def _record(solver, records) -> np.ndarray | None:
    """A general chunk's losses and metrics into the history, its draws kept; returns the
    losses ``(C,)`` of its last recorded step (``None``: no step was recorded). A chunk has
    one record per step, or per ``history_every`` steps; its active records come first."""
    n = int(np.sum(np.asarray(records.active)))
    losses = np.asarray(records.losses)[:n]
    steps = np.asarray(records.step)[:n]
    solver.history.append(steps, losses)
    metrics = chain(
        solver.recorder.metrics(records, n), history_metrics(records, solver.program.names, n)
    )
    for name, values in metrics:
        solver.history.append_metric(name, steps, values)
    solver.recorder.add(records)
    return losses[-1] if n else None


def _log_fastpath(solver, s, print_rate: int) -> None:
    if not solver.logged_fastpath:
        log.info(
            "MCMC fastpath: scan over %d samples × thin=%d + %d warmup, chunked at print_rate=%d.",
            s.keep,
            s.thin,
            max(0, s.warmup - solver.step_index),
            print_rate,
        )
        solver.logged_fastpath = True
