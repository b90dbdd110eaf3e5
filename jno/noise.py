"""Observation noise, drawn once per solve from the crux seed (see PITFALLS 4).

Each distribution is a small class with a ``name`` (its sympy symbol ``epsilon_<name>``) and
``sample(key, shape)``; the public functions wrap one in a noise leaf. A new distribution is
one class and one function here.
"""

from __future__ import annotations

from typing import NamedTuple

import jax

from .trace.node import Noise


class Gaussian(NamedTuple):
    """``N(mean, std²)``."""

    std: float
    mean: float
    name = "gaussian"

    def sample(self, key, shape):
        return self.mean + self.std * jax.random.normal(key, shape)


class Uniform(NamedTuple):
    """``U(low, high)``."""

    low: float
    high: float
    name = "uniform"

    def sample(self, key, shape):
        return jax.random.uniform(key, shape, minval=self.low, maxval=self.high)


class Laplace(NamedTuple):
    """Density ``exp(-|x-loc|/scale) / (2 scale)``."""

    scale: float
    loc: float
    name = "laplace"

    def sample(self, key, shape):
        return self.loc + self.scale * jax.random.laplace(key, shape)


def gaussian(std: float = 1.0, mean: float = 0.0, shape=(), redraw: bool = False) -> Noise:
    """``N(mean, std²)`` noise, one draw per point."""
    if not std > 0:
        raise ValueError(f"jno.noise.gaussian: std must be positive, got {std}")
    return Noise(Gaussian(float(std), float(mean)), shape, redraw)


def uniform(low: float = -1.0, high: float = 1.0, shape=(), redraw: bool = False) -> Noise:
    """``U(low, high)`` noise, one draw per point."""
    if not high > low:
        raise ValueError(f"jno.noise.uniform: need high > low, got ({low}, {high})")
    return Noise(Uniform(float(low), float(high)), shape, redraw)


def laplace(scale: float = 1.0, loc: float = 0.0, shape=(), redraw: bool = False) -> Noise:
    """Laplace noise with density ``exp(-|x-loc|/scale) / (2 scale)``."""
    if not scale > 0:
        raise ValueError(f"jno.noise.laplace: scale must be positive, got {scale}")
    return Noise(Laplace(float(scale), float(loc)), shape, redraw)
