"""The work between compiled chunks, as hooks behind one small protocol.

After every chunk the driver appends the chunk's losses and metrics to the history and its
kept draws to the recorder, then calls each hook's :meth:`Hook.after_chunk` in order:

==============================  ===========================================================
hook                            what it does after a chunk
==============================  ===========================================================
:class:`CausalMetrics`          the causal slice weights (``"causal:<constraint>:<i>"``)
:class:`Resampling`             moves the points of every resampler due at this step
:class:`Progress`               the tqdm bar, and one warning at the first non-finite loss
:class:`Until`                  diagnoses the kept draws; ``True`` stops the solve
:class:`Trackers`               one flat metrics dict to each tracker (:mod:`.trackers`)
:class:`Callbacks`              a :class:`~jno.solve.records.ChunkInfo` to each callback
:class:`Checkpointing`          the solve state to a file every ``checkpoint_every`` chunks
==============================  ===========================================================

:meth:`Hook.finish` runs when the solve returns (also after Ctrl-C or SIGTERM); a hook's
:attr:`Hook.ends` lists step periods a chunk must end at (a resampler's ``every``). A new
kind of between-chunk work is one class here and one line in :func:`solve_hooks`.
"""

from __future__ import annotations

import logging
import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

import jax.numpy as jnp
import numpy as np

from ..lower.causal import causal_metrics, has_causal
from . import checkpoint as ckpt
from . import resample as resample_mod
from . import trackers as trackers_mod
from .quantities import Quantities
from .records import ChunkInfo

log = logging.getLogger("jno")


@dataclass
class Run:
    """One ``crux.solve`` call as the hooks see it.

    Attributes:
        solver: the :class:`~jno.solve.driver.Solver` (its public attributes only).
        call: the call's step range and print rate (a checkpoint records it).
        steps: the steps the last chunk ran.
        losses: ``(C,)`` per-constraint losses at the chunk's last step.
        chunks: chunks run so far in this call.
        reason: why ``until=`` stopped the call, if it did.
    """

    solver: Any
    call: ckpt.Call
    steps: int = 0
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0))
    chunks: int = 0
    reason: str | None = None


class Hook:
    """Between-chunk work: every method is optional."""

    #: step periods a chunk must end at (a chunk ends at every multiple of each)
    ends: tuple[int, ...] = ()

    def after_chunk(self, run: Run) -> bool:
        """Work after a chunk; ``True`` stops the solve (the call is complete)."""
        return False

    def finish(self, run: Run) -> None:
        """Work when the solve returns, however it returns."""


class CausalMetrics(Hook):
    """The causal slice weights at the end of a chunk (``"causal:<constraint>:<i>"``)."""

    def after_chunk(self, run: Run) -> bool:
        s = run.solver
        fn = s.jit("causal", lambda st: causal_metrics(s.program, s.engine.view(st), st.inputs))
        for name, value in fn(s.state).items():
            s.history.append_metric(name, [s.step_index - 1], np.asarray(value)[None])
        return False


class Resampling(Hook):
    """Moves the points of every resampler due at this step (``step % every == 0``)."""

    def __init__(self, bound: list):
        self.bound = bound
        self.ends = tuple(b.resampler.every for b in bound)

    def after_chunk(self, run: Run) -> bool:
        s = run.solver
        index = s.step_index
        for bound in self.bound:
            if index % bound.resampler.every:
                continue
            eps = s.jit(
                f"resample:{bound.key}",  # the residuals of a point set, whatever resampler
                lambda st, c, b=bound: resample_mod.residual_magnitude(
                    b, s.program, s.engine.view(st), st.inputs, c
                ),
            )
            key, cand = resample_mod.pool(bound, s.streams, index)
            eps_pool = eps(s.state, jnp.asarray(cand))
            eps_now = eps(s.state, s.state.inputs[bound.key]["coords"])
            inputs = resample_mod.resample_inputs(
                bound, key, s.state.inputs, cand, eps_pool, eps_now
            )
            if inputs is not None:
                s.set_state(s.engine.restart_line_search(s.state._replace(inputs=inputs)))
            s.history.append_metric(
                f"resample:{bound.resampler.label}", [index - 1], [float(np.mean(eps_pool))]
            )
        return False


class Progress(Hook):
    """The tqdm bar (``progress=``; default: when stderr is a terminal) and one warning at
    the first non-finite total loss of the solver."""

    def __init__(self, progress: bool | None, total: int):
        if progress is None:
            progress = sys.stderr.isatty()
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc="jno", unit="step", leave=True)

    def update(self, n: int, text: str) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix_str(text)

    def after_chunk(self, run: Run) -> bool:
        total = float(np.sum(run.losses))
        s = run.solver
        if not np.isfinite(total) and not s.warned_nan:
            s.warned_nan = True
            warnings.warn(
                f"non-finite loss at step {s.step_index}: the run continues and keeps what it "
                "has; check step sizes and the residual.",
                stacklevel=6,
            )
        self.update(run.steps, f"loss={total:.3e}")
        return False

    def finish(self, run: Run) -> None:
        if self.bar is not None:
            self.bar.close()


class Until(Hook):
    """``until=``: diagnose the rule's quantities (:class:`~jno.solve.quantities.Quantities`:
    the sampled parameters by default, or the rule's ``on=``) over the kept draws after each
    chunk; record R-hat and ESS in the history; stop when the rule holds."""

    def __init__(self, rule, quantities: Quantities):
        self.rule = rule
        self.quantities = quantities
        log.info("until: judging %s", quantities.describe())

    def after_chunk(self, run: Run) -> bool:
        s = run.solver
        if not any(blk.records and s.recorder.count(b) for b, blk in enumerate(s.plan.blocks)):
            return False
        chains = self.quantities.draws(s)
        if not chains:
            return False
        report = self.rule.check(chains)
        step = [s.step_index - 1]
        for label, m in report.models.items():
            s.history.append_metric(f"rhat:{label}", step, [m.rhat])
            s.history.append_metric(f"ess:{label}", step, [m.ess])
        log.info("until (step %d): %s", s.step_index, report.reason)
        if report.done:
            run.reason = f"stopped at step {s.step_index}: {report.reason}"
            run.call = run.call._replace(stop=s.step_index)
        return bool(report.done)

    def finish(self, run: Run) -> None:
        log.info("until: %s", run.reason or f"max_epochs={run.call.stop - run.call.start} reached")


class Trackers(Hook):
    """One flat metrics dict (:func:`~jno.solve.trackers.chunk_metrics`) to each tracker."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def after_chunk(self, run: Run) -> bool:
        s = run.solver
        metrics = trackers_mod.chunk_metrics(
            s.program.names, run.losses, s.history, s.plan.blocks, s.recorder
        )
        for tracker in self.trackers:
            tracker.log(metrics, s.step_index)
        return False

    def finish(self, run: Run) -> None:
        for tracker in self.trackers:
            if hasattr(tracker, "finish"):
                tracker.finish()


class Callbacks(Hook):
    """A :class:`~jno.solve.records.ChunkInfo` to each ``callbacks=`` function."""

    def __init__(self, callbacks: list):
        self.callbacks = callbacks

    def after_chunk(self, run: Run) -> bool:
        s = run.solver
        losses = dict(zip(s.program.names, map(float, run.losses)))
        info = ChunkInfo(s.step_index, float(np.sum(run.losses)), losses)
        for cb in self.callbacks:
            cb(info)
        return False


class Checkpointing(Hook):
    """The solve state to ``path`` every ``every`` chunks and when the solve returns."""

    def __init__(self, path, every: int, solve_args: tuple):
        self.path, self.every, self.solve_args = path, every, solve_args

    def after_chunk(self, run: Run) -> bool:
        if run.chunks % self.every == 0:
            ckpt.save(self.path, run.solver.snapshot(), run.call, *self.solve_args)
        return False

    def finish(self, run: Run) -> None:
        if run.solver.step_index > 0:
            ckpt.save(self.path, run.solver.snapshot(), run.call, *self.solve_args)


def solve_hooks(options, program, plan, resamplers: list, total: int) -> list[Hook]:
    """The hooks of one ``crux.solve`` call, in the order they run."""
    hooks: list[Hook] = [CausalMetrics()] if has_causal(program) else []
    if resamplers:
        hooks.append(Resampling(resamplers))
    hooks.append(Progress(options.progress, total))
    if options.until is not None:
        on = getattr(options.until, "on", None)
        hooks.append(Until(options.until, Quantities(program, plan, on)))
    trackers = trackers_mod.active_trackers(options.trackers)
    if trackers:
        hooks.append(Trackers(trackers))
    if options.callbacks:
        hooks.append(Callbacks(list(options.callbacks)))
    if options.checkpoint is not None:
        solve_args = (options.batch_size, options.substeps)
        hooks.append(Checkpointing(options.checkpoint, options.checkpoint_every, solve_args))
    return hooks
