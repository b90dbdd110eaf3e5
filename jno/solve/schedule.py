"""The chunk schedule: how many steps the next compiled chunk runs, and how it records.

A chunk is one call of :meth:`~jno.solve.engine.Engine.run_chunk`: ``length`` records of
``stride`` steps each, steps at or past ``stop`` no-ops when ``partial``. Two schedules:

* :func:`general_chunk` (any plan): ``stride = history_every`` (default 1), losses recorded
  at the last step of every stride, chunks of ``print_rate`` steps that also end at every
  step in ``ends`` (a resampling step);
* :func:`sampling_chunk` (the pure-MCMC fastpath and ``solve_batch``): silent warm-up
  chunks, then ``stride = thin`` chunks that record only the kept draws.

Both give the same draws for the same steps (every key depends only on the step index).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class Chunk(NamedTuple):
    """One compiled chunk: it runs steps ``start .. stop - 1`` (``steps`` of them).

    ``length``, ``stride``, ``with_losses`` and ``partial`` are the static arguments of
    ``run_chunk`` (each combination is one compiled variant); ``records``: whether the
    chunk's records hold kept draws (a silent warm-up chunk's do not).
    """

    stop: int
    steps: int
    length: int
    stride: int
    with_losses: bool
    partial: bool
    records: bool = True

    @property
    def name(self) -> str:
        """The compiled variant's name (``Solver.traces`` counts its traces)."""
        return f"chunk{self.length}/{self.stride}/{self.with_losses}/{self.partial}"

    def run_arguments(self) -> dict:
        return dict(
            length=self.length,
            stride=self.stride,
            with_losses=self.with_losses,
            partial=self.partial,
        )


def default_epochs(plan, start: int) -> int:
    """``warmup + keep*thin`` of the MCMC blocks (then ``keep*thin`` per further call) for
    a call starting at step ``start``."""
    defaults = [n for b in plan.sampling if (n := b.default_epochs(start)) is not None]
    if not defaults:
        raise ValueError(
            "crux.solve(): pass the number of steps, e.g. crux.solve(5000); only solves "
            "with MCMC models (.bayesian) have a default (warmup + keep*thin). For VI, "
            "epochs is the number of ELBO steps."
        )
    return max(defaults)


def sampling_only(plan, substeps) -> bool:
    """Whether :func:`sampling_chunk` may run the plan (the pure-MCMC fastpath): only MCMC
    blocks with equal warmup/keep/thin, no optax or ensemble models, no substeps."""
    blocks = plan.blocks
    if not blocks or substeps is not None:
        return False
    if any(not (b.samples and b.records) for b in blocks):
        return False
    return len({(b.settings.warmup, b.settings.keep, b.settings.thin) for b in blocks}) == 1


def general_chunk(
    start: int, stop: int, print_rate: int, ends: Iterable[int] = (), history_every: int = 1
) -> Chunk:
    """The next chunk of the general loop from step ``start``: ``print_rate`` steps, fewer
    at the call's ``stop`` or when a multiple of one of ``ends`` comes first; the losses of
    every ``history_every``-th step recorded (``print_rate`` is a multiple of it)."""
    n = min(print_rate, stop - start)
    for every in ends:
        n = min(n, (start // every + 1) * every - start)
    return Chunk(
        start + n, n, print_rate // history_every, history_every, True, n < print_rate
    )


def sampling_chunk(start: int, stop: int, limit: int, warmup: int, thin: int) -> Chunk:
    """The next chunk of a pure-sampling solve from step ``start`` (at most ``limit``
    records): a silent chunk through the warm-up, then ``stride = thin`` chunks that record
    one draw per ``thin`` steps. A continued solve that starts off the thinning grid first
    steps to it recording every step (the recorder keeps the one the rule selects; one more
    compiled variant, only then)."""
    if start < warmup:
        n = min(limit, warmup - start, stop - start)
        return Chunk(start + n, n, 1, limit, False, True, records=False)
    if (start - warmup) % thin:
        n = min(limit, thin - (start - warmup) % thin, stop - start)
        return Chunk(start + n, n, limit, 1, False, True)
    draws = min(limit, (stop - start) // thin)
    if draws == 0:  # fewer steps left than one thinning interval: none is recorded
        return Chunk(stop, stop - start, 1, limit, False, True, records=False)
    n = draws * thin
    return Chunk(start + n, n, limit, thin, False, draws < limit)
