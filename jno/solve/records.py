"""What crosses module boundaries after a step and after a chunk, as typed records.

A family's own per-step diagnostics (``acceptance_rate``, ``is_divergent``, ``nonfinite``,
``elbo``, ...) stay a ``{field: array}`` dict per block, as blackjax's info objects are
family-specific; everything the engine itself produces is a field here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax


class StepInfo(NamedTuple):
    """What one outer step (:meth:`jno.solve.engine.Engine.step`) reports.

    Attributes:
        losses: ``(C,)`` per-constraint losses before the optax group's (or ensemble's)
            update, or ``None`` when no block reports them (then they are computed after the
            step, averaged over the population).
        positions: one position pytree per block (population blocks with a leading axis).
        infos: one ``{field: array}`` dict of family diagnostics per block.
        balance_weights: ``(C,)`` a loss balancer's weights of this step, or ``None``.
    """

    losses: jax.Array | None
    positions: list
    infos: list[dict]
    balance_weights: jax.Array | None = None


class ChunkRecord(NamedTuple):
    """The records of one compiled chunk (:meth:`jno.solve.engine.Engine.run_chunk`), each
    with a leading ``(length,)`` axis.

    Attributes:
        step: ``(length,)`` the step index of each record.
        active: ``(length,)`` whether the record's step ran (``False`` past the call's stop).
        positions: per block, ``(length, P, ...)`` positions of recording blocks, else ``None``.
        infos: per block, ``{field: (length, ...)}`` family diagnostics.
        losses: ``(length, C)`` per-constraint losses, or ``None`` when not asked for.
        balance_weights: ``(length, C)`` a loss balancer's weights, or ``None``.
    """

    step: Any
    active: Any
    positions: list
    infos: list
    losses: Any = None
    balance_weights: Any = None


class ChunkInfo(NamedTuple):
    """What a ``callbacks=`` function receives after each chunk of ``crux.solve``.

    Attributes:
        step: the step index after the chunk.
        total_loss: the sum of the per-constraint losses at the chunk's last step.
        losses: ``{constraint name: loss}`` at the chunk's last step.
    """

    step: int
    total_loss: float
    losses: dict


__all__ = ["ChunkInfo", "ChunkRecord", "StepInfo"]
