"""``r.laplace(scale)``: the calibrated Laplace (double-exponential) likelihood of a residual."""

from __future__ import annotations

import math

import jax.numpy as jnp
import sympy

from ..node import as_node
from .base import Likelihood, broadcast_sum, positive_input, residual_method, scaled_sum


@residual_method
class LaplaceLikelihood(Likelihood):
    """Calibrated Laplace likelihood constraint of this residual (noise with exponential tails:
    robust to outliers, its maximum-likelihood location is the median).

    Its loss is the exact negative log-likelihood ``Σ [|r|/b + log(2b)]`` over every point and
    component, for ``p(r) = exp(-|r|/b) / (2b)`` (standard deviation ``√2·b``); ``scale`` ``b``
    is a positive number, an array broadcastable to the residual, an array with one row per
    point, or a Parameter (learned).
    """

    op = kind = "laplace"

    def __init__(self, residual, scale):
        residual = as_node(residual)
        super().__init__(residual, positive_input(residual, scale, self.kind, "scale"))

    def reduce(self, r, b):
        return (
            scaled_sum(jnp.abs, 1, r, b)
            + broadcast_sum(jnp.log(b), r.shape)
            + r.size * math.log(2.0)
        )

    def sympy_form(self, args):
        return sympy.Function("laplace_nll")(*args)
