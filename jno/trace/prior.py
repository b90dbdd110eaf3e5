"""The default prior of ``.bayesian()``, ``.vi()`` and ``.ensemble()``: independent
``N(0, 10²)`` on every floating-point component, and the leaf helpers every built-in prior
uses.

It lives in the trace layer, beside the configurators whose default it is, so the solve layer
finds it without importing :mod:`jno.bayesian`; :mod:`jno.bayesian.priors` re-exports
:class:`Gaussian` and :func:`gaussian` with the other built-in priors (documented there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: σ of the default prior
DEFAULT_SIGMA = 10.0

LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def float_leaves(tree: Any) -> list[jax.Array]:
    """Floating-point array leaves of ``tree`` (works on tracers inside jit/vmap)."""
    return [
        leaf
        for leaf in jax.tree.leaves(tree)
        if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating)
    ]


def positive(name: str, value: float, factory: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"priors.{factory}: {name} must be a finite number > 0, got {value}.")
    return value


def fan_in_sigma(leaf: jax.Array, weight_sigma: float, other_sigma: float, aware: bool) -> float:
    """σ of one leaf: ``weight_sigma / sqrt(fan_in)`` for matrices when ``aware``."""
    if leaf.ndim < 2:
        return other_sigma
    return weight_sigma / math.sqrt(leaf.shape[-1]) if aware else weight_sigma


def gaussian_logpdf(leaf: jax.Array, sigma: float) -> jax.Array:
    """Σ_i log N(θ_i | 0, σ²) = -Σθ²/(2σ²) - n·log(σ√(2π))."""
    return -0.5 * jnp.sum(jnp.square(leaf)) / sigma**2 - leaf.size * (
        math.log(sigma) + LOG_SQRT_2PI
    )


def draw_like(like: Any, key: jax.Array, draw_leaf) -> Any:
    """``like`` with every floating-point array leaf replaced by ``draw_leaf(key_i, leaf)``
    (one key per leaf, split from ``key``); other leaves unchanged."""
    leaves, treedef = jax.tree.flatten(like)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = [
        draw_leaf(k, leaf).astype(leaf.dtype)
        if isinstance(leaf, jax.Array | np.ndarray) and jnp.issubdtype(leaf.dtype, jnp.floating)
        else leaf
        for k, leaf in zip(keys, leaves)
    ]
    return jax.tree.unflatten(treedef, out)


def total(terms: list[jax.Array]) -> jax.Array:
    return jnp.sum(jnp.stack(terms)) if terms else jnp.zeros(())


@dataclass(frozen=True)
class Gaussian:
    r"""Independent :math:`N(0, \sigma_\ell^2)` on every component.

    .. math::

        \log p(\theta) = \sum_\ell \Big[-\frac{\|\theta_\ell\|^2}{2\sigma_\ell^2}
                         - n_\ell \log(\sigma_\ell \sqrt{2\pi})\Big],

    with :math:`\sigma_\ell = \sigma` or, when ``fan_in_aware`` and leaf ℓ has ndim >= 2,
    :math:`\sigma/\sqrt{\text{shape}_\ell[-1]}`.
    """

    sigma: float = 10.0
    fan_in_aware: bool = False

    def sample(self, key: jax.Array, like: Any) -> Any:
        """A draw from the prior, shaped like ``like`` (its float leaves; simulation-based
        calibration draws parameters with it)."""
        return draw_like(
            like,
            key,
            lambda k, leaf: (
                fan_in_sigma(leaf, self.sigma, self.sigma, self.fan_in_aware)
                * jax.random.normal(k, leaf.shape)
            ),
        )

    def __call__(self, params: Any) -> jax.Array:
        return total(
            [
                gaussian_logpdf(leaf, fan_in_sigma(leaf, self.sigma, self.sigma, self.fan_in_aware))
                for leaf in float_leaves(params)
            ]
        )


def gaussian(sigma: float = 10.0, fan_in_aware: bool = False) -> Gaussian:
    """Independent zero-mean Gaussian prior; σ=10 is the wide default of ``.bayesian()``.

    ``fan_in_aware=True`` scales σ by ``1/sqrt(shape[-1])`` on leaves with ndim >= 2.
    """
    return Gaussian(positive("sigma", sigma, "gaussian"), bool(fan_in_aware))


def default_prior() -> Gaussian:
    """The prior of a model configured with ``prior=None``: ``gaussian(sigma=10.0)``."""
    return gaussian(sigma=DEFAULT_SIGMA)
