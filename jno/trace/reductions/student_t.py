"""``r.student_t(df, scale)``: the calibrated Student-t likelihood of a residual."""

from __future__ import annotations

import jax.numpy as jnp
import sympy
from jax.scipy.special import gammaln

from ..node import as_node
from .base import Likelihood, broadcast_sum, positive_input, residual_method


@residual_method
class StudentTLikelihood(Likelihood):
    """Calibrated Student-t likelihood constraint of this residual (heavy-tailed noise).

    Its loss is the exact negative log-likelihood, normalising constants included, of
    ``r = scale · T`` with ``T`` Student-t with ``df = ν`` degrees of freedom, summed over every
    point and component: ``Σ [log Γ(ν/2) - log Γ((ν+1)/2) + ½ log(νπ) + log s
    + (ν+1)/2 · log(1 + (r/s)²/ν)]``. ``df`` and ``scale`` are each a positive number, an
    array broadcastable to the residual, an array with one row per point, or a Parameter
    (learned).
    """

    op = kind = "student_t"

    def __init__(self, residual, df, scale):
        residual = as_node(residual)
        super().__init__(
            residual,
            positive_input(residual, df, self.kind, "df"),
            positive_input(residual, scale, self.kind, "scale"),
        )

    def reduce(self, r, nu, s):
        half = 0.5 * (nu + 1.0)
        z2 = jnp.square(r / s)
        norm = gammaln(0.5 * nu) - gammaln(half) + 0.5 * jnp.log(nu * jnp.pi) + jnp.log(s)
        return broadcast_sum(norm, r.shape) + jnp.sum(half * jnp.log1p(z2 / nu))

    def sympy_form(self, args):
        return sympy.Function("student_t_nll")(*args)
