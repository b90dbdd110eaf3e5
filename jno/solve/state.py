"""The typed state of a solve: one pytree that checkpoints, sharding and trackers work on.

:class:`SolveState` fields:

``point``
    ``{model_key: params}``: the values no block moves: frozen models, and the leaves of a
    model outside every block (``None`` where a block holds them). Array leaves only (the
    static parts of networks live in ``Program.statics``).
``inputs``
    ``{point-set key: {"coords", "data", "noise", "scale"}}``: the points, attached data and
    drawn noise the step reads (``Program.inputs`` at the start). Being state, not a constant
    of the compiled step, they can be replaced between chunks without recompiling: new
    collocation points (resampling), new data (re-conditioning), and a checkpoint holds them.
``blocks``
    a tuple with one :class:`BlockState` per block of the plan, in plan order (sampling blocks
    first, updated in turn as Gibbs blocks, then the optax group, then the ensemble).
``step``
    the global step index (an int32 scalar): the next step to run.
``grad_evals``
    gradient evaluations of the objective spent so far, summed over chains: integrator steps
    (HMC family, MCLMC, MAMS, adaptation included) and optax steps with their line searches.
``balance``
    the loss balancer's state (:class:`~jno.solve.balance.BalanceState`), ``None`` without
    ``jno.core(weights=...)``.

:class:`BlockState` fields:

``kernel``
    the family's own state with a leading population axis: ``(K, ...)`` chains for
    sampling blocks (a blackjax state, or the bare position for SG-MCMC), ``(E, ...)``
    members for an ensemble, no axis for the optax group.
``tuned``
    per-chain kernel arguments that adaptation sets (``step_size``, ``inverse_mass_matrix``,
    MCLMC's ``L``), each with the leading ``(K,)`` axis; ``{}`` for families without them.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

PyTree = Any


class BlockState(NamedTuple):
    """One block's state: its family's kernel state and its adapted kernel arguments."""

    kernel: PyTree
    tuned: dict


class SolveState(NamedTuple):
    """The whole state of a solve (see the module docstring, field by field)."""

    point: dict
    inputs: dict
    blocks: tuple[BlockState, ...]
    step: jax.Array
    grad_evals: jax.Array
    balance: PyTree = None
