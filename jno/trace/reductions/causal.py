"""``r.causal_mse(t, ...)``: causal training (Wang, Sankaran & Perdikaris 2022).

The points are binned into ``M`` equal slices of ``[t0, t1]`` by their time coordinate;
slice ``i`` has the loss ``L_i = mean over its points of |r|²`` (0 when empty) and the weight
``w_i = exp(-ε Σ_{j<i} L_j)`` (``w_0 = 1``) under ``stop_gradient``, so a slice is trained
once the slices before it are resolved. The constraint's value is ``(1/M) Σ_i w_i L_i``; the
weights are a side output of the lowering (``Evaluator.aux``, :mod:`jno.lower.causal`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..node import Placeholder, Variable, _describe, as_node
from .base import Reduction, residual_method


@residual_method
class CausalMSE(Reduction):
    """Causal mse (Wang, Sankaran & Perdikaris 2022) over ``slices`` equal time slices.

    With ``L_i`` the mse of the points whose ``t`` falls in slice ``i`` of ``t_range``
    (default: the range of ``t`` on the point set), the value is ``(1/M) Σ_i w_i L_i``
    with ``w_i = exp(-eps Σ_{j<i} L_j)`` under ``stop_gradient``. The weights are
    recorded in ``crux.history.metrics`` as ``"causal:<constraint>:<i>"``.
    """

    kind = "causal_mse"

    def __init__(self, expr, t: Placeholder, slices: int = 32, eps: float = 1.0, t_range=None):
        expr = as_node(expr)
        where = f"{_describe(expr)}.causal_mse(t, slices={slices!r}, eps={eps!r})"
        if expr.pointset is None:
            raise ValueError(f"{where}: the residual is not point-wise; reduce it with .mse")
        if not isinstance(t, Variable) or t.pointset is not expr.pointset:
            raise ValueError(
                f"{where}: t must be the time coordinate of the residual's point set "
                f"'{expr.pointset.label}' (x, t, _ = dom.variable(...)), got {t!r}"
            )
        if not isinstance(slices, int) or isinstance(slices, bool) or slices < 1:
            raise ValueError(f"{where}: slices must be a positive int")
        if not eps >= 0:
            raise ValueError(f"{where}: eps must be >= 0 (0 gives the plain mse)")
        if t_range is None:
            column = np.asarray(expr.pointset.coords)[:, t.index]
            t_range = (float(column.min()), float(column.max()))
        t0, t1 = (float(v) for v in t_range)
        if not t1 > t0:
            raise ValueError(f"{where}: t_range {t_range} must have t1 > t0")
        super().__init__(expr, t)
        self.slices, self.eps, self.t_range = slices, float(eps), (t0, t1)

    def lower(self, ev, args):
        out, ev.aux[self.id] = causal_loss(*args, self.slices, self.eps, self.t_range)
        return out


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
