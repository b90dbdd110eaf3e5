r"""Built-in log-priors: callables ``pytree -> scalar log p(θ)``.

Each factory returns a small frozen dataclass whose ``__call__`` takes the position the kernel
samples (a parameter array, an equinox module, a dict, or the masked subset of one) and sums an
independent per-component log-density over its floating-point array leaves. Leaves that are not
floating-point arrays (integer buffers, activation functions, Python scalars) and ``None`` are
ignored, so the same prior works on masked and unmasked positions.

Normalising constants are **included**: every prior is the full normalised log-density
:math:`\log p(\theta) = \sum_i \log p(\theta_i)`, so ``scipy.stats`` ``logpdf`` sums agree with
it and log-evidence-style quantities are meaningful. The seed's table shows only the
θ-dependent part; the constant changes no sampler, no gradient and no posterior.

Fan-in rule (``fan_in_aware=True``): a leaf with ``ndim >= 2`` is treated as a weight matrix,
``fan_in = shape[-1]`` (``equinox.nn.Linear`` stores its weight as ``(out, in)``), and gets
``σ / sqrt(fan_in)``. Leaves with ``ndim < 2`` (biases, scalar or vector parameters) are not
rescaled. The rule looks at shapes only: a ``jno.np.parameter((3, 4))`` is scaled like a
weight matrix with fan-in 4, and for convolution kernels ``shape[-1]`` is the last kernel
dimension, not the conventional ``in_channels * prod(kernel)``.

A custom prior is any ``pytree -> float`` callable; :func:`validate_prior` checks one against a
position without running it. The built-in priors also draw from themselves
(``prior.sample(key, like)``), which simulation-based calibration needs; a custom prior can
offer the same method.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

# The Gaussian is the configurators' default prior, so it is defined below the solve layer
# (jno.trace.prior) with the leaf helpers; it is documented and exported here with the others.
from ..trace.prior import (
    Gaussian,
    draw_like,
    fan_in_sigma,
    float_leaves,
    gaussian,
    gaussian_logpdf,
    positive,
    total,
)

__all__ = [
    "Gaussian",
    "LayerwiseGaussian",
    "Laplace",
    "StudentT",
    "gaussian",
    "laplace",
    "layerwise_gaussian",
    "student_t",
    "validate_prior",
]


@dataclass(frozen=True)
class Laplace:
    r"""Independent Laplace(0, b) on every component (sparsity-promoting).

    .. math:: \log p(\theta) = -\frac{\|\theta\|_1}{b} - n \log(2b).
    """

    scale: float = 1.0

    def sample(self, key: jax.Array, like: Any) -> Any:
        """A draw from the prior, shaped like ``like``."""
        return draw_like(like, key, lambda k, leaf: self.scale * jax.random.laplace(k, leaf.shape))

    def __call__(self, params: Any) -> jax.Array:
        return total(
            [
                -jnp.sum(jnp.abs(leaf)) / self.scale - leaf.size * math.log(2.0 * self.scale)
                for leaf in float_leaves(params)
            ]
        )


@dataclass(frozen=True)
class StudentT:
    r"""Independent Student-t(ν, 0, s) on every component (heavy-tailed).

    .. math::

        \log p(\theta) = \sum_i \Big[\log\Gamma\big(\tfrac{\nu+1}{2}\big)
        - \log\Gamma\big(\tfrac{\nu}{2}\big) - \tfrac12\log(\nu\pi) - \log s
        - \tfrac{\nu+1}{2}\log\big(1 + (\theta_i/s)^2/\nu\big)\Big].
    """

    df: float = 4.0
    scale: float = 1.0

    def sample(self, key: jax.Array, like: Any) -> Any:
        """A draw from the prior, shaped like ``like``."""
        return draw_like(
            like, key, lambda k, leaf: self.scale * jax.random.t(k, self.df, leaf.shape)
        )

    def __call__(self, params: Any) -> jax.Array:
        nu, s = self.df, self.scale
        const = (
            math.lgamma((nu + 1.0) / 2.0)
            - math.lgamma(nu / 2.0)
            - 0.5 * math.log(nu * math.pi)
            - math.log(s)
        )
        return total(
            [
                leaf.size * const - 0.5 * (nu + 1.0) * jnp.sum(jnp.log1p(jnp.square(leaf / s) / nu))
                for leaf in float_leaves(params)
            ]
        )


@dataclass(frozen=True)
class LayerwiseGaussian:
    r"""Per-leaf :math:`N(0, \sigma_\ell^2)`, the standard BNN prior.

    Weight leaves (ndim >= 2) get :math:`\sigma_\ell = \text{base\_sigma}/\sqrt{\text{fan\_in}}`
    (or ``base_sigma`` when ``fan_in_aware=False``); bias and other leaves (ndim < 2) get
    ``default_sigma``. The log-density is the normalised Gaussian one of :class:`Gaussian`.
    """

    base_sigma: float = 1.0
    default_sigma: float = 1.0
    fan_in_aware: bool = True

    def sample(self, key: jax.Array, like: Any) -> Any:
        """A draw from the prior, shaped like ``like``."""
        return draw_like(
            like,
            key,
            lambda k, leaf: (
                fan_in_sigma(leaf, self.base_sigma, self.default_sigma, self.fan_in_aware)
                * jax.random.normal(k, leaf.shape)
            ),
        )

    def __call__(self, params: Any) -> jax.Array:
        return total(
            [
                gaussian_logpdf(
                    leaf,
                    fan_in_sigma(leaf, self.base_sigma, self.default_sigma, self.fan_in_aware),
                )
                for leaf in float_leaves(params)
            ]
        )


def laplace(scale: float = 1.0) -> Laplace:
    """Independent zero-mean Laplace prior with scale ``b = scale``."""
    return Laplace(positive("scale", scale, "laplace"))


def student_t(df: float = 4.0, scale: float = 1.0) -> StudentT:
    """Independent zero-mean Student-t prior; ``df`` must exceed 2 (finite variance)."""
    df = float(df)
    if not (math.isfinite(df) and df > 2.0):
        raise ValueError(
            f"priors.student_t: df must be a finite number > 2 (finite prior variance), "
            f"got df={df}. Use df=3 or 4 for a heavy-tailed prior."
        )
    return StudentT(df, positive("scale", scale, "student_t"))


def layerwise_gaussian(
    base_sigma: float = 1.0, default_sigma: float = 1.0, fan_in_aware: bool = True
) -> LayerwiseGaussian:
    """Layer-wise Gaussian BNN prior: ``base_sigma/sqrt(fan_in)`` on weights, ``default_sigma``
    on biases (Sun et al. 2019; Wenzel et al. 2020)."""
    return LayerwiseGaussian(
        positive("base_sigma", base_sigma, "layerwise_gaussian"),
        positive("default_sigma", default_sigma, "layerwise_gaussian"),
        bool(fan_in_aware),
    )


def validate_prior(prior: Callable[[Any], Any], position: Any, where: str) -> None:
    """Check that ``prior(position)`` is a real scalar, without running it.

    The prior is traced with :func:`jax.eval_shape` on the array leaves of ``position`` (other
    leaves, such as an equinox module's activation functions, are closed over unchanged).

    Parameters
    ----------
    prior
        Candidate ``pytree -> float`` log-prior.
    position
        The position the prior will receive (for a masked model, the masked subset).
    where
        What the prior belongs to, used in error messages, e.g. ``"model 'a'"``.

    Raises
    ------
    TypeError
        ``prior`` is not callable, raises when traced, or returns something other than a
        real number (an integer result such as a flat ``lambda p: 0`` is accepted).
    ValueError
        ``prior`` returns an array that is not a scalar (shape ``()``).
    """
    if not callable(prior):
        raise TypeError(
            f"{where}: prior must be a callable pytree -> float log-density, got "
            f"{type(prior).__name__}. Use e.g. jno.bayesian.priors.gaussian(sigma=10.0)."
        )
    flat, treedef = jax.tree_util.tree_flatten(position)
    is_arr = [isinstance(leaf, jax.Array | np.ndarray) for leaf in flat]
    arrays = [leaf for leaf, a in zip(flat, is_arr, strict=True) if a]

    def traced(*arrs: Any) -> Any:
        it = iter(arrs)
        leaves = [next(it) if a else leaf for leaf, a in zip(flat, is_arr, strict=True)]
        return prior(jax.tree_util.tree_unflatten(treedef, leaves))

    try:
        out = jax.eval_shape(traced, *arrays)
    except Exception as err:
        raise TypeError(
            f"{where}: the prior {prior!r} failed on the position it will receive "
            f"({type(err).__name__}: {err}). A prior must map the position pytree (for "
            ".mask(M).bayesian(), only the masked subset) to a scalar log-density."
        ) from err
    if not (hasattr(out, "shape") and hasattr(out, "dtype")):
        raise TypeError(
            f"{where}: the prior {prior!r} must return a scalar array, got "
            f"{type(out).__name__}. Sum per-leaf terms into one number, e.g. with jnp.sum."
        )
    if not (jnp.issubdtype(out.dtype, jnp.floating) or jnp.issubdtype(out.dtype, jnp.integer)):
        raise TypeError(
            f"{where}: the prior {prior!r} must return a real-valued log-density, got "
            f"dtype {out.dtype}."
        )
    if out.shape != ():
        raise ValueError(
            f"{where}: the prior {prior!r} must return a scalar log-density, got shape "
            f"{tuple(out.shape)}. Reduce it with jnp.sum(...)."
        )
