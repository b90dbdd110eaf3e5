"""Covariance kernels for correlated likelihoods: ``r.gaussian(cov=jno.kernels.matern52(0.2))``.

A kernel is a callable ``k(X1, X2) -> (n1, n2)`` on coordinate arrays ``(n, d)``; stationary
kernels of the distance ``ρ = |x - x'| / ℓ``:

* ``squared_exponential(ℓ, s²)``: ``s² exp(-ρ²/2)``;
* ``matern32(ℓ, s²)``: ``s² (1 + √3 ρ) exp(-√3 ρ)``;
* ``matern52(ℓ, s²)``: ``s² (1 + √5 ρ + 5ρ²/3) exp(-√5 ρ)``.

With numbers for ``ℓ`` and ``s²``, ``jno`` evaluates the kernel on a point set's coordinates
once, when the likelihood is built. Either may be a jno expression instead (a positive
Parameter, ``jno.np.parameter((1,), constraint=jno.constraints.positive)``): the matrix is then
built from the coordinates at every evaluation, and the hyperparameter is learned or sampled
with the rest (a Kennedy–O'Hagan model discrepancy with unknown scale and smoothness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np


@dataclass(frozen=True)
class Kernel:
    """A stationary kernel: ``variance · shape(|x - x'| / lengthscale)``; ``lengthscale`` and
    ``variance`` are numbers or jno expressions."""

    name: str
    lengthscale: Any
    variance: Any = 1.0

    @property
    def fixed(self) -> bool:
        """Whether both hyperparameters are numbers (the matrix is then a constant)."""
        return all(isinstance(v, float) for v in (self.lengthscale, self.variance))

    def __call__(self, x1, x2) -> np.ndarray:
        """The ``(n1, n2)`` matrix on coordinates ``(n1, d)``, ``(n2, d)`` (numbers only)."""
        if not self.fixed:
            raise TypeError(
                f"jno.kernels.{self.name}: a kernel with jno-expression hyperparameters is "
                "evaluated inside a likelihood (r.gaussian(cov=kernel)), not called directly"
            )
        x1 = np.asarray(x1, dtype=np.float64).reshape(len(x1), -1)
        x2 = np.asarray(x2, dtype=np.float64).reshape(len(x2), -1)
        return np.asarray(self.matrix(distances(x1, x2), self.lengthscale, self.variance))

    def matrix(self, dist, lengthscale, variance):
        """``variance · shape(dist / lengthscale)`` for a distance matrix (JAX or NumPy)."""
        rho = dist / lengthscale
        if self.name == "squared_exponential":
            shape = jnp.exp(-0.5 * rho**2)
        elif self.name == "matern32":
            shape = (1 + math.sqrt(3) * rho) * jnp.exp(-math.sqrt(3) * rho)
        else:
            shape = (1 + math.sqrt(5) * rho + 5 * rho**2 / 3) * jnp.exp(-math.sqrt(5) * rho)
        return variance * shape


def distances(x1, x2) -> np.ndarray:
    """Euclidean distances ``(n1, n2)`` between the rows of ``x1`` and ``x2``."""
    x1 = np.asarray(x1, dtype=np.float64).reshape(len(x1), -1)
    x2 = np.asarray(x2, dtype=np.float64).reshape(len(x2), -1)
    return np.sqrt(np.sum((x1[:, None, :] - x2[None, :, :]) ** 2, axis=-1))


def _kernel(name: str, lengthscale, variance) -> Kernel:
    values = []
    for arg, value in (("lengthscale", lengthscale), ("variance", variance)):
        if isinstance(value, bool) or isinstance(value, (str, bytes)):
            raise TypeError(f"jno.kernels.{name}: {arg} must be a number, got {value!r}")
        if isinstance(value, (int, float, np.floating, np.integer)):
            if not (math.isfinite(value) and value > 0):
                raise ValueError(
                    f"jno.kernels.{name}: {arg} must be finite and > 0, got {value!r}"
                )
            value = float(value)
        values.append(value)  # otherwise a jno expression, checked by the likelihood
    return Kernel(name, *values)


def squared_exponential(lengthscale: float, variance: float = 1.0) -> Kernel:
    """``variance · exp(-|x - x'|² / (2 lengthscale²))``."""
    return _kernel("squared_exponential", lengthscale, variance)


def matern32(lengthscale: float, variance: float = 1.0) -> Kernel:
    """Matérn ν = 3/2: ``variance · (1 + √3 ρ) exp(-√3 ρ)``, ``ρ = |x - x'| / lengthscale``."""
    return _kernel("matern32", lengthscale, variance)


def matern52(lengthscale: float, variance: float = 1.0) -> Kernel:
    """Matérn ν = 5/2: ``variance · (1 + √5 ρ + 5ρ²/3) exp(-√5 ρ)``."""
    return _kernel("matern52", lengthscale, variance)


__all__ = ["Kernel", "distances", "matern32", "matern52", "squared_exponential"]
