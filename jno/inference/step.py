r"""The ensemble loss, one vmapped optimiser step, and vmapped prediction.

A log-joint is any function ``log_joint(params, x, y) -> (loglik, logprior)``
returning two scalars: :math:`\ell(\theta) = \sum_{i\in B}\log p(y_i\mid x_i,\theta)`
on the batch it is given, and :math:`\log p(\theta)`. Each member minimises

.. math::

    \mathcal{L}(\theta) = -\,c\,\ell(\theta) \;-\; w\,\log p(\theta),

with ``scale`` :math:`c` (``N/|B|`` makes a mini-batch loss an unbiased estimate
of the full-data loss) and ``prior_weight`` :math:`w` (0: maximum likelihood,
1: MAP, in between: tempered prior).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import optax

from jno.inference.state import EnsembleState

PyTree = Any
LogJoint = Callable[[PyTree, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def ensemble_loss(
    log_joint: LogJoint, *, prior_weight: float = 1.0, scale: float = 1.0
) -> Callable[[PyTree, jax.Array, jax.Array], jax.Array]:
    r"""Build the per-member loss :math:`-c\,\ell(\theta) - w\log p(\theta)`.

    Args:
        log_joint: ``(params, x, y) -> (loglik, logprior)``, both scalars.
        prior_weight: :math:`w \ge 0`. When it is the Python number ``0`` the prior
            term is left out of the loss altogether (not multiplied by zero), so a
            log-joint may return a placeholder or even a non-finite log-prior.
        scale: :math:`c`, the weight of the log-likelihood.

    Returns:
        ``loss(params, x, y) -> scalar`` for one member (not vmapped).
    """
    for name, value in (("prior_weight", prior_weight), ("scale", scale)):
        if isinstance(value, int | float) and value < 0:
            raise ValueError(f"ensemble_loss: {name} must be >= 0, got {value}")
    use_prior = not (isinstance(prior_weight, int | float) and prior_weight == 0)

    def loss(params: PyTree, x: jax.Array, y: jax.Array) -> jax.Array:
        loglik, logprior = log_joint(params, x, y)
        value = -scale * loglik
        if use_prior:
            value = value - prior_weight * logprior
        return value

    return loss


def member_update(
    loss: Callable[..., jax.Array],
    optimizer: optax.GradientTransformation,
    params: PyTree,
    opt_state: PyTree,
    *args: Any,
    has_aux: bool = False,
) -> tuple[PyTree, PyTree, jax.Array]:
    """One optax step of a single member on ``loss(params, *args)``.

    Gradients are taken with respect to the inexact-array leaves of ``params``
    only (``eqx.filter_value_and_grad``); other leaves pass through unchanged.
    With ``has_aux`` the loss returns ``(value, aux)`` and so does the third output.

    Returns:
        ``(new_params, new_opt_state, loss_value)``; the loss is evaluated at the
        parameters *before* the step.
    """
    value, grads = eqx.filter_value_and_grad(loss, has_aux=has_aux)(params, *args)
    updates, opt_state = optimizer.update(
        grads, opt_state, eqx.filter(params, eqx.is_inexact_array)
    )
    return eqx.apply_updates(params, updates), opt_state, value


def ensemble_step(
    state: EnsembleState,
    x: jax.Array,
    y: jax.Array,
    *,
    log_joint: LogJoint,
    optimizer: optax.GradientTransformation,
    prior_weight: float = 1.0,
    scale: float = 1.0,
) -> tuple[EnsembleState, jax.Array]:
    r"""Advance every member by one optimiser step on the same batch.

    For each member :math:`e` (in parallel, via ``eqx.filter_vmap``):
    :math:`g_e = \nabla_\theta \mathcal{L}(\theta_e)` (see :func:`ensemble_loss`),
    then ``(u_e, s_e) = optimizer.update(g_e, s_e, θ_e)`` and
    :math:`\theta_e \leftarrow \theta_e + u_e`.

    Args:
        state: stacked :class:`EnsembleState` (leading ``(E,)`` axis).
        x: batch inputs, shared by all members (shape ``(B, ...)``).
        y: batch targets, shared by all members (shape ``(B, ...)``).
        log_joint: ``(params, x, y) -> (loglik, logprior)`` for one member.
        optimizer: the transformation used in :func:`~jno.inference.ensemble_init`.
        prior_weight: weight :math:`w` of the log-prior (0 gives the MLE).
        scale: weight :math:`c` of the log-likelihood (``N/|B|`` for mini-batches).

    Returns:
        ``(new_state, losses)`` with ``losses`` of shape ``(E,)``, each evaluated
        before the step. Wrap the call in ``eqx.filter_jit`` when looping in Python.
    """
    loss = ensemble_loss(log_joint, prior_weight=prior_weight, scale=scale)

    def update(params: PyTree, opt_state: PyTree, xb: jax.Array, yb: jax.Array):
        return member_update(loss, optimizer, params, opt_state, xb, yb)

    member_axes = (eqx.if_array(0), eqx.if_array(0), None, None)
    params, opt_state, losses = eqx.filter_vmap(update, in_axes=member_axes)(
        state.params, state.opt_state, x, y
    )
    return EnsembleState(params=params, opt_state=opt_state), losses


def ensemble_predict(
    params: PyTree, predict_fn: Callable[[PyTree, jax.Array], jax.Array], x: jax.Array
) -> jax.Array:
    """Evaluate every member on the same inputs.

    Args:
        params: stacked member parameters (leading ``(M,)`` axis on array leaves).
        predict_fn: ``(params, x) -> prediction`` for one member, e.g. shape ``(N,)``.
        x: inputs shared by all members, e.g. shape ``(N, ...)``.

    Returns:
        Predictions stacked along a new leading axis, e.g. shape ``(M, N)``.
    """
    return eqx.filter_vmap(predict_fn, in_axes=(eqx.if_array(0), None))(params, x)
