"""Covariance kernels for correlated likelihoods: ``r.gaussian(cov=jno.kernels.matern52(0.2))``.

A kernel is a callable ``k(X1, X2) -> (n1, n2)`` on coordinate arrays ``(n, d)``; stationary
kernels of the distance ``ρ = |x - x'| / ℓ``:

* ``squared_exponential(ℓ, s²)``: ``s² exp(-ρ²/2)``;
* ``matern32(ℓ, s²)``: ``s² (1 + √3 ρ) exp(-√3 ρ)``;
* ``matern52(ℓ, s²)``: ``s² (1 + √5 ρ + 5ρ²/3) exp(-√5 ρ)``.

``jno`` evaluates a kernel on a point set's coordinates once, when the likelihood is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Kernel:
    """A stationary kernel: ``variance · shape(|x - x'| / lengthscale)``."""

    name: str
    lengthscale: float
    variance: float = 1.0

    def __call__(self, x1, x2) -> np.ndarray:
        x1 = np.asarray(x1, dtype=np.float64).reshape(len(x1), -1)
        x2 = np.asarray(x2, dtype=np.float64).reshape(len(x2), -1)
        rho = np.sqrt(np.sum((x1[:, None, :] - x2[None, :, :]) ** 2, axis=-1)) / self.lengthscale
        if self.name == "squared_exponential":
            shape = np.exp(-0.5 * rho**2)
        elif self.name == "matern32":
            shape = (1 + math.sqrt(3) * rho) * np.exp(-math.sqrt(3) * rho)
        else:
            shape = (1 + math.sqrt(5) * rho + 5 * rho**2 / 3) * np.exp(-math.sqrt(5) * rho)
        return self.variance * shape


def _kernel(name: str, lengthscale, variance) -> Kernel:
    for arg, value in (("lengthscale", lengthscale), ("variance", variance)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
            raise TypeError(f"jno.kernels.{name}: {arg} must be a number, got {value!r}")
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"jno.kernels.{name}: {arg} must be finite and > 0, got {value!r}")
    return Kernel(name, float(lengthscale), float(variance))


def squared_exponential(lengthscale: float, variance: float = 1.0) -> Kernel:
    """``variance · exp(-|x - x'|² / (2 lengthscale²))``."""
    return _kernel("squared_exponential", lengthscale, variance)


def matern32(lengthscale: float, variance: float = 1.0) -> Kernel:
    """Matérn ν = 3/2: ``variance · (1 + √3 ρ) exp(-√3 ρ)``, ``ρ = |x - x'| / lengthscale``."""
    return _kernel("matern32", lengthscale, variance)


def matern52(lengthscale: float, variance: float = 1.0) -> Kernel:
    """Matérn ν = 5/2: ``variance · (1 + √5 ρ + 5ρ²/3) exp(-√5 ρ)``."""
    return _kernel("matern52", lengthscale, variance)


__all__ = ["Kernel", "matern32", "matern52", "squared_exponential"]
