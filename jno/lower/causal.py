"""Causal training (Wang, Sankaran & Perdikaris 2022): a residual's loss on time slices.

The points are binned into ``M`` equal slices of ``[t0, t1]`` by their time coordinate;
slice ``i`` has the loss ``L_i = mean over its points of |r|²`` (0 when empty) and the weight
``w_i = exp(-ε Σ_{j<i} L_j)`` (``w_0 = 1``) under ``stop_gradient``, so a slice is trained
once the slices before it are resolved. The constraint's value is ``(1/M) Σ_i w_i L_i``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def slice_losses(residual: jax.Array, t: jax.Array, slices: int, t_range) -> jax.Array:
    """``(M,)`` mean squared residual per time slice; ``residual (n, ...)``, ``t (n, 1)``."""
    n = residual.shape[0]
    sq = jnp.mean(jnp.square(residual).reshape(n, -1), axis=1)
    t0, t1 = t_range
    index = jnp.clip(jnp.floor((t.reshape(n) - t0) / (t1 - t0) * slices), 0, slices - 1)
    index = index.astype(jnp.int32)
    sums = jax.ops.segment_sum(sq, index, num_segments=slices)
    counts = jax.ops.segment_sum(jnp.ones_like(sq), index, num_segments=slices)
    return sums / jnp.maximum(counts, 1.0)


def causal_weights(losses: jax.Array, eps: float) -> jax.Array:
    """``(M,)`` weights ``exp(-ε Σ_{j<i} L_j)`` of slice losses ``(M,)`` (no gradient)."""
    earlier = jnp.cumsum(losses) - losses
    return jax.lax.stop_gradient(jnp.exp(-eps * earlier))


def causal_loss(residual, t, slices: int, eps: float, t_range):
    """``((1/M) Σ w_i L_i, w (M,))``."""
    losses = slice_losses(residual, t, slices, t_range)
    w = causal_weights(losses, eps)
    return jnp.mean(w * losses), w


def causal_nodes(constraint) -> list:
    """The causal reductions inside ``constraint``."""
    return [n for n in constraint.walk() if getattr(n, "kind", None) == "causal_mse"]


def has_causal(program) -> bool:
    return any(causal_nodes(c) for c in program.constraints)


def causal_metrics(program, params: dict, inputs: dict) -> dict:
    """``{"causal:<constraint>:<i>": w_i}`` of every causal constraint at ``params``."""
    from .evaluate import Evaluator

    ev = Evaluator(program.plan, program.statics, params, inputs)
    out = {}
    for name, c in zip(program.names, program.constraints):
        nodes = causal_nodes(c)
        if not nodes:
            continue
        ev.value(c)
        for j, node in enumerate(nodes):
            label = name if len(nodes) == 1 else f"{name}[{j}]"
            for i, w in enumerate(ev.aux[node.id]):
                out[f"causal:{label}:{i}"] = w
    return out
