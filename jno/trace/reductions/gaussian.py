"""``r.gaussian(std)``: the calibrated Gaussian likelihood of a residual."""

from __future__ import annotations

import math

import jax.numpy as jnp
import sympy

from ..node import as_node
from .base import Likelihood, positive_input, residual_method


@residual_method
class GaussianLikelihood(Likelihood):
    """Calibrated Gaussian likelihood constraint of this residual.

    Its loss is the exact negative log-likelihood ``½ Σ r²/σ² + Σ log(σ √(2π))`` over every
    point and component; ``std`` is a number, an array broadcastable to the residual, an array
    with one row per point, or a Parameter (learned noise).
    """

    op = kind = "gaussian"

    def __init__(self, residual, std):
        residual = as_node(residual)
        super().__init__(residual, positive_input(residual, std, self.kind, "std"))

    def reduce(self, r, s):
        z = r / s
        return 0.5 * jnp.sum(z * z) + jnp.sum(jnp.log(s)) + 0.5 * r.size * math.log(2 * math.pi)

    def sympy_form(self, args):
        return sympy.Function("gaussian_nll")(*args)
