"""The options of ``crux.solve``, validated once where they are written.

:class:`SolveOptions` holds every keyword of :meth:`jno.crux.Crux.solve` (whose signature
is generated from it); a bad value is a ``ValueError``/``TypeError`` naming the keyword,
raised before anything runs. :func:`step_budget` turns ``epochs``/``until``/``max_epochs``
into the number of steps of one call.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any


def _positive_int(name: str, value, *, optional: bool = True) -> None:
    if value is None and optional:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"crux.solve: {name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class SolveOptions:
    """The keywords of ``crux.solve(epochs, **options)``.

    Attributes:
        print_rate: steps per compiled chunk (progress, history and callbacks between
            chunks). Default 100.
        progress: show a tqdm bar (default: when stderr is a terminal).
        batch_size: subsample this many points per point set per step (SG-MCMC); sums and
            likelihoods are scaled by ``N/n``.
        substeps: alternate constraint/model subsets within a step (``(constraints, models)``
            pairs, docs/solve_features.md).
        callbacks: callables receiving a :class:`jno.ChunkInfo` after each chunk; raising
            ``KeyboardInterrupt`` stops and keeps what was collected.
        checkpoint: a file to write the whole solve state to (parameters, optimizer and
            kernel states, adapted step sizes and mass matrices, kept draws, history, step)
            every ``checkpoint_every`` chunks, at the end, on Ctrl-C and on SIGTERM (then the
            process exits with status 143). Written atomically.
        checkpoint_every: chunks between checkpoints (default 10).
        resume_from: a checkpoint written by the same script: the solve continues from it to
            this call's end (``epochs`` counts from the step the interrupted call started
            at), giving the draws of an uninterrupted run. A checkpoint of another problem
            raises :class:`jno.CheckpointError`.
        until: a stopping rule, e.g. ``jno.bayesian.converged(rhat=1.01, ess=400)``, checked
            after every chunk; the solve stops at the first chunk where it holds.
        max_epochs: the budget of steps for ``until=``.
        trackers: objects with ``log(metrics, step)`` called after every chunk
            (:mod:`jno.trackers`); default: wandb when a wandb run is active.
        store: a directory for a zarr store (``pip install 'jno[stream]'``) the draws stream
            to as they are made, so host memory holds one chunk of records instead of
            ``keep`` draws; ``posterior_samples`` then holds lazy :class:`jno.StoredDraws`
            views. A fresh solve replaces the store; later solves of the crux keep streaming
            to it; ``resume_from`` reopens the store its checkpoint recorded (or ``store``).
        history_every: record the losses every ``history_every`` steps (default 1: every
            step). Steps between are run without evaluating the per-constraint losses the
            history keeps: a line-search optimizer (``optax.lbfgs()``) otherwise needs that
            forward pass for the history alone.
            Optimisation only (no ``.bayesian``/``.vi``/``.ensemble`` models); ``print_rate``
            must be a multiple of it.
        resample: adaptive collocation, ``jno.sampling.rad(x, every=1000)`` or
            ``jno.sampling.rar_d(x, ...)`` (or a list, one per point set): the points move
            between chunks to where the residual is large, without recompiling.
    """

    print_rate: int | None = None
    progress: bool | None = None
    batch_size: int | None = None
    substeps: Any = None
    callbacks: Sequence[Callable] | None = None
    checkpoint: Any = None
    checkpoint_every: int = 10
    resume_from: Any = None
    until: Any = None
    max_epochs: int | None = None
    trackers: Any = None
    store: Any = None
    resample: Any = None
    history_every: int = 1

    def __post_init__(self):
        _positive_int("print_rate", self.print_rate)
        _positive_int("batch_size", self.batch_size)
        _positive_int("checkpoint_every", self.checkpoint_every, optional=False)
        _positive_int("history_every", self.history_every, optional=False)
        if self.print_rate is not None and self.print_rate % self.history_every:
            raise ValueError(
                f"crux.solve: print_rate={self.print_rate} must be a multiple of "
                f"history_every={self.history_every} (a chunk records whole intervals)"
            )
        if self.until is not None and not hasattr(self.until, "check"):
            raise TypeError(
                "crux.solve(until=...): pass a stopping rule such as "
                f"jno.bayesian.converged(rhat=1.01, ess=400), got {type(self.until).__name__}"
            )
        if self.max_epochs is not None and self.until is None:
            raise ValueError("crux.solve: max_epochs= is the budget of until=; pass epochs.")
        if self.callbacks is not None and not all(callable(c) for c in self.callbacks):
            raise TypeError("crux.solve(callbacks=...): pass a list of callables")

    @classmethod
    def from_keywords(cls, options: dict) -> SolveOptions:
        """``SolveOptions(**options)``, an unknown keyword named with the valid ones."""
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise TypeError(
                f"crux.solve() got unexpected keyword(s) {', '.join(unknown)}; the options "
                f"are epochs and {', '.join(f.name for f in fields(cls))}."
            )
        return cls(**options)


def solve_signature(epochs_annotation=int | None) -> inspect.Signature:
    """``(self, epochs=None, *, <every SolveOptions field>)``: ``Crux.solve``'s signature."""
    params = [
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(
            "epochs",
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=epochs_annotation,
        ),
    ]
    params += [
        inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type
        )
        for f in fields(SolveOptions)
    ]
    return inspect.Signature(params)


def options_doc() -> str:
    """The options' documentation (``SolveOptions``'s attributes), for ``Crux.solve``."""
    text = SolveOptions.__doc__ or ""  # None under python -OO
    if "Attributes:" not in text:
        return ""
    return "\n    Options:" + text[text.index("Attributes:") + len("Attributes:") :].rstrip() + "\n"


def step_budget(epochs, options: SolveOptions, default: Callable[[], int]) -> int:
    """The steps of one call: ``epochs``, ``max_epochs`` with ``until=``, or ``default()``
    (``warmup + keep*thin`` of the MCMC models)."""
    if options.until is not None:
        if options.max_epochs is None and epochs is None:
            raise ValueError(
                "crux.solve(until=...): pass max_epochs=, the most steps to run before "
                "giving up on the targets."
            )
        if options.max_epochs is not None and epochs is not None:
            raise ValueError(
                "crux.solve(until=...): pass max_epochs= (the budget) or epochs, not both."
            )
        epochs = options.max_epochs if options.max_epochs is not None else epochs
    if epochs is None:
        epochs = default()
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ValueError(f"crux.solve: epochs must be a positive integer, got {epochs!r}")
    return epochs


def check_call(options: SolveOptions, plan, start: int, stop: int, step: int) -> None:
    """Errors of a call that need the plan: a resumed checkpoint (at ``step``) past the
    call's ``stop``; ``until=`` without a model that records draws."""
    if step > stop:
        raise ValueError(
            f"crux.solve(resume_from=...): the checkpoint is at step {step}, past this call's "
            f"stop {stop} (start {start} + epochs {stop - start}); pass the epochs of the run "
            "that wrote it, or more."
        )
    if options.history_every > 1 and (plan.sampling or plan.ensemble is not None):
        raise ValueError(
            f"crux.solve(history_every={options.history_every}): only for solves that "
            "optimise (no .bayesian/.vi/.ensemble models, whose draws and members are "
            "recorded every step); drop history_every."
        )
    if options.until is not None and not any(b.records for b in plan.sampling):
        raise ValueError(
            "crux.solve(until=...): no model records draws to diagnose; until= needs a "
            ".bayesian() sampler (NUTS, HMC, MALA, SG-MCMC, MCLMC)."
        )


def warn_short(blocks, start: int, epochs: int) -> None:
    """Warn when ``epochs`` steps from ``start`` leave a chain shorter than its ``keep``."""
    for b in blocks:
        if not (b.samples and b.records):
            continue
        s = b.settings
        need = s.warmup + s.keep * s.thin - start
        if 0 < epochs < need:
            draws = max(0, (start + epochs - s.warmup) // s.thin)
            warnings.warn(
                f"Model {b.label}: solve({epochs}) gives a short chain: {draws} of keep="
                f"{s.keep} draws (warmup={s.warmup}, thin={s.thin}); solve() without epochs "
                "runs warmup + keep*thin steps.",
                stacklevel=5,
            )
