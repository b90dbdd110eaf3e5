"""Observation noise, drawn once per solve from the crux seed (see PITFALLS 4)."""

from __future__ import annotations

from .trace.node import Noise


def gaussian(std: float = 1.0, mean: float = 0.0, shape=(), redraw: bool = False) -> Noise:
    """``N(mean, std²)`` noise, one draw per point."""
    if not std > 0:
        raise ValueError(f"jno.noise.gaussian: std must be positive, got {std}")
    return Noise("gaussian", {"std": float(std), "mean": float(mean)}, shape, redraw)


def uniform(low: float = -1.0, high: float = 1.0, shape=(), redraw: bool = False) -> Noise:
    """``U(low, high)`` noise, one draw per point."""
    if not high > low:
        raise ValueError(f"jno.noise.uniform: need high > low, got ({low}, {high})")
    return Noise("uniform", {"low": float(low), "high": float(high)}, shape, redraw)


def laplace(scale: float = 1.0, loc: float = 0.0, shape=(), redraw: bool = False) -> Noise:
    """Laplace noise with density ``exp(-|x-loc|/scale) / (2 scale)``."""
    if not scale > 0:
        raise ValueError(f"jno.noise.laplace: scale must be positive, got {scale}")
    return Noise("laplace", {"scale": float(scale), "loc": float(loc)}, shape, redraw)
