"""Constrained parameters: ``jno.np.parameter(shape, constraint=jno.constraints.positive)``.

A constraint is the support of a parameter and the bijection ``T: ℝ → support`` jno samples and
optimises through. The solver moves the unconstrained value ``u``; every expression reads
``θ = T(u)``; a sampled (or variational) model's log-density gains ``log |T'(u)|`` so that the
draws of ``θ`` follow the posterior written in the constrained space:

    log p(u | data) = log p(data | T(u)) + log p_prior(T(u)) + Σ log |T'(u)|.

Priors are written in the constrained space (a ``Gamma`` log-density on a positive rate, as is);
``model.module``, ``posterior_samples``, ``crux.eval``, arviz export and plots show ``θ``. An
optimiser (optax, ensemble members) works in ``u`` without the Jacobian, so it finds the mode
in the constrained space.

The transforms are NumPyro's (``numpyro.distributions.transforms.biject_to``): ``exp`` for
``positive`` and ``greater_than``, a scaled sigmoid for ``interval`` and ``unit_interval``
(``tests/test_constraints.py`` checks them against NumPyro). Elementwise, so shapes are kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Constraint:
    """The support ``(lower, upper)`` (``±inf`` when open) and its bijection from ℝ."""

    name: str
    lower: float = -math.inf
    upper: float = math.inf

    def forward(self, u: jax.Array) -> jax.Array:
        """``θ = T(u)``."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return u
        if math.isinf(hi):
            return lo + jnp.exp(u)
        if math.isinf(lo):
            return hi - jnp.exp(u)
        return lo + (hi - lo) * jax.nn.sigmoid(u)

    def inverse(self, theta: jax.Array) -> jax.Array:
        """``u = T⁻¹(θ)``."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return theta
        if math.isinf(hi):
            return jnp.log(theta - lo)
        if math.isinf(lo):
            return jnp.log(hi - theta)
        p = (theta - lo) / (hi - lo)
        return jnp.log(p) - jnp.log1p(-p)

    def log_abs_det_jacobian(self, u: jax.Array) -> jax.Array:
        """``Σ log |T'(u)|`` over every element of ``u`` (a scalar)."""
        lo, hi = self.lower, self.upper
        if math.isinf(lo) and math.isinf(hi):
            return jnp.zeros((), u.dtype)
        if math.isinf(lo) or math.isinf(hi):
            return jnp.sum(u)
        return jnp.sum(math.log(hi - lo) - jax.nn.softplus(-u) - jax.nn.softplus(u))

    def contains(self, theta) -> bool:
        """Whether every element of ``theta`` lies strictly inside the support."""
        t = np.asarray(theta, dtype=float)
        return bool(np.all(np.isfinite(t) & (t > self.lower) & (t < self.upper)))

    def __repr__(self) -> str:
        return self.name


real = Constraint("real")
positive = Constraint("positive", 0.0)
unit_interval = Constraint("unit_interval", 0.0, 1.0)


def greater_than(lower: float) -> Constraint:
    """``θ > lower`` (``θ = lower + exp(u)``)."""
    return Constraint(f"greater_than({_finite('greater_than', 'lower', lower)!r})", float(lower))


def less_than(upper: float) -> Constraint:
    """``θ < upper`` (``θ = upper - exp(u)``)."""
    upper = _finite("less_than", "upper", upper)
    return Constraint(f"less_than({upper!r})", -math.inf, upper)


def interval(lower: float, upper: float) -> Constraint:
    """``lower < θ < upper`` (``θ = lower + (upper - lower)·sigmoid(u)``)."""
    lower = _finite("interval", "lower", lower)
    upper = _finite("interval", "upper", upper)
    if not lower < upper:
        raise ValueError(
            f"jno.constraints.interval({lower!r}, {upper!r}): lower must be below upper"
        )
    return Constraint(f"interval({lower!r}, {upper!r})", lower, upper)


def _finite(fn: str, arg: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"jno.constraints.{fn}: {arg} must be a number, got {value!r}")
    if not math.isfinite(float(value)):
        raise ValueError(f"jno.constraints.{fn}: {arg} must be finite, got {value!r}")
    return float(value)


__all__ = [
    "Constraint",
    "greater_than",
    "interval",
    "less_than",
    "positive",
    "real",
    "unit_interval",
]
