r"""Ensemble containers and initialisation.

An ensemble of :math:`E` members is stored *stacked*: every array leaf of the
member pytree gains a leading ``(E,)`` axis, while non-array leaves (an
equinox module's activation function, integer hyper-parameters, ...) are kept
once and shared by all members. This is the layout ``eqx.filter_vmap``
produces and consumes, so one vmapped call advances every member at once.

Member :math:`e` is initialised from its own key :math:`k_e`, where
:math:`(k_1, \dots, k_E)` = ``jax.random.split(seed, E)``:

.. math::

    \theta_e^{(0)} = \texttt{init\_fn}(k_e), \qquad
    s_e^{(0)} = \texttt{optimizer.init}(\theta_e^{(0)}).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.random as jr
import optax

PyTree = Any


class EnsembleState(NamedTuple):
    """Stacked parameters and optimiser states of an ensemble.

    Attributes:
        params: member parameters; array leaves have shape ``(E, *leaf_shape)``,
            non-array leaves are shared.
        opt_state: optax states of the members, stacked the same way (for
            ``optax.adam``, e.g., the step count has shape ``(E,)``).
    """

    params: PyTree
    opt_state: PyTree


class EnsembleResult(NamedTuple):
    """Outcome of a full ensemble fit.

    Attributes:
        params: final stacked parameters (leading ``(E,)`` axis on array leaves).
        losses: per-member loss history, shape ``(E, T)`` with ``T`` the number
            of epochs; with mini-batches, entry ``[e, t]`` is the mean of member
            ``e``'s mini-batch losses during epoch ``t``.
    """

    params: PyTree
    losses: jax.Array


def ensemble_init(
    init_fn: Callable[[jax.Array], PyTree],
    optimizer: optax.GradientTransformation,
    *,
    ensemble_size: int,
    seed: jax.Array,
) -> EnsembleState:
    """Initialise ``ensemble_size`` members and their optimiser states.

    Args:
        init_fn: ``key -> params`` for one member (an equinox module, a dict of
            arrays, any pytree). It is traced once under ``eqx.filter_vmap``, so
            it must not branch in Python on random values.
        optimizer: the optax transformation that will train the members; only
            its ``init`` is called here.
        ensemble_size: number of members ``E`` (at least 1).
        seed: a PRNG key; member ``e`` uses ``jax.random.split(seed, E)[e]``.

    Returns:
        An :class:`EnsembleState` whose array leaves have a leading ``(E,)`` axis.
    """
    if not isinstance(ensemble_size, int) or ensemble_size < 1:
        raise ValueError(f"ensemble_init: ensemble_size must be an int >= 1, got {ensemble_size!r}")

    def init_member(key: jax.Array) -> tuple[PyTree, PyTree]:
        params = init_fn(key)
        return params, optimizer.init(eqx.filter(params, eqx.is_inexact_array))

    params, opt_state = eqx.filter_vmap(init_member)(jr.split(seed, ensemble_size))
    return EnsembleState(params=params, opt_state=opt_state)
