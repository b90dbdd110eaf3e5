"""The loss reductions ``r.mse``, ``r.mean``, ``r.sum``, ``r.mae`` and ``r.max``: each a class
with its JAX reduction over the residual's points and components."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ..node import _describe, as_node
from .base import Reduction, residual_property


class _Numeric(Reduction):
    """A reduction of numbers only (booleans are refused)."""

    def __init__(self, residual):
        residual = as_node(residual)
        if not np.issubdtype(np.dtype(residual.dtype), np.number):
            raise TypeError(f".{self.kind} of non-numeric {_describe(residual)}")
        super().__init__(residual)


@residual_property
class MSE(_Numeric):
    """Mean of squares over points and components: ``mean(r**2)``."""

    kind = "mse"

    def reduce(self, v):
        return jnp.mean(jnp.square(v))


@residual_property
class Mean(_Numeric):
    """Mean over points and components."""

    kind = "mean"

    def reduce(self, v):
        return jnp.mean(v)


@residual_property
class Sum(Reduction):
    """Sum over points and components."""

    kind = "sum"
    sum_like = True

    def reduce(self, v):
        return jnp.sum(v)


@residual_property
class MAE(_Numeric):
    """Mean absolute value over points and components."""

    kind = "mae"

    def reduce(self, v):
        return jnp.mean(jnp.abs(v))


@residual_property
class Max(_Numeric):
    """Maximum over points and components."""

    kind = "max"

    def reduce(self, v):
        return jnp.max(v)
