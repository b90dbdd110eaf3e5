r"""Scores for predictive distributions that are equally weighted Gaussian mixtures.

An ensemble (or any sampler) gives :math:`M` mean predictions :math:`f_m(x_i)` on
:math:`N` test points (``pred_means``, shape ``(M, N)``); with aleatoric standard
deviation :math:`\sigma` (``sigma``: a scalar, or any shape that broadcasts to
``(M, N)``) the predictive at :math:`x_i` is

.. math::

    p_i(y) = \frac1M\sum_{m=1}^M \mathcal{N}\bigl(y\mid f_m(x_i), \sigma^2\bigr),
    \qquad F_i(y) = \frac1M\sum_{m=1}^M \Phi\Bigl(\frac{y - f_m(x_i)}{\sigma}\Bigr).

- **RMSE** of the mixture mean :math:`\bar f_i = \frac1M\sum_m f_m(x_i)`.
- **NLL** :math:`-\frac1N\sum_i \log p_i(y_i)`, computed with ``logsumexp``; an oracle
  (:math:`M=1`, :math:`f` exact) scores :math:`\tfrac12\log(2\pi\sigma^2)+\tfrac12` in
  expectation.
- **Quantiles** :math:`F_i^{-1}(q)`, found by bisection: the mixture quantile lies
  between the smallest and largest component quantile :math:`f_m + \sigma\Phi^{-1}(q)`.
- **Coverage** at level :math:`\alpha`: the fraction of :math:`y_i` inside the central
  interval :math:`[F_i^{-1}(\frac{1-\alpha}2), F_i^{-1}(\frac{1+\alpha}2)]`;
  **sharpness**: that interval's mean width. A calibrated predictive covers
  :math:`\alpha`; among calibrated ones, sharper is better.

Everything is exact (no sampling) except :func:`sampled_summary`, a seeded
Monte-Carlo estimate kept for comparison with sample-based evaluations.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

ArrayLike = jax.Array | np.ndarray | float

DEFAULT_LEVELS = np.round(np.linspace(0.05, 0.95, 19), 2)
_BISECTION_STEPS = 64


class CalibrationCurve(NamedTuple):
    """Coverage and sharpness of central intervals at several levels.

    Attributes:
        levels: nominal levels :math:`\\alpha`, shape ``(L,)``.
        coverage: empirical coverage at each level, shape ``(L,)``.
        sharpness: mean interval width at each level, shape ``(L,)``.
    """

    levels: jax.Array
    coverage: jax.Array
    sharpness: jax.Array


def rmse(prediction: ArrayLike, target: ArrayLike) -> jax.Array:
    """Root-mean-squared error :math:`\\sqrt{\\mathrm{mean}((\\hat y - y)^2)}` over all entries."""
    return jnp.sqrt(jnp.mean((jnp.asarray(prediction) - jnp.asarray(target)) ** 2))


def predictive_band(pred_means: ArrayLike, sigma_obs: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Posterior-predictive mean and total standard deviation (epistemic + aleatoric).

    ``pred_means`` is ``(M, N)`` (M members or draws, N points); returns ``(mean, total_std)``,
    each ``(N,)``: ``mean = pred_means.mean(0)`` and ``total_std = sqrt(Var_m f_m + σ²)``
    with the population variance (``ddof=0``) over the M predictions. The tutorial's band is
    ``mean ± 2 total_std``. ``sigma_obs`` is a scalar or broadcasts to ``(N,)``.
    """
    means = jnp.asarray(pred_means)
    if means.ndim < 1 or means.shape[0] < 1:
        raise ValueError(
            f"predictive_band: pred_means must be (M, N) with M >= 1 predictions, got shape "
            f"{means.shape}"
        )
    sigma = jnp.asarray(sigma_obs, means.dtype)
    if not isinstance(sigma, jax.core.Tracer) and bool(jnp.any(sigma < 0)):
        raise ValueError("predictive_band: sigma_obs must be >= 0 (a standard deviation)")
    mean = jnp.mean(means, axis=0)
    return mean, jnp.sqrt(jnp.var(means, axis=0) + sigma**2)


def _components(pred_means: ArrayLike, sigma: ArrayLike) -> tuple[jax.Array, jax.Array]:
    means = jnp.asarray(pred_means)
    if means.ndim != 2:
        raise ValueError(f"pred_means must have shape (M, N), got {means.shape}")
    return means, jnp.broadcast_to(jnp.asarray(sigma, means.dtype), means.shape)


def mixture_log_density(pred_means: ArrayLike, sigma: ArrayLike, y: ArrayLike) -> jax.Array:
    """Point-wise :math:`\\log p_i(y_i)`, shape ``(N,)``."""
    means, scales = _components(pred_means, sigma)
    log_pdf = norm.logpdf(jnp.asarray(y)[None, :], means, scales)
    return logsumexp(log_pdf, axis=0) - jnp.log(means.shape[0])


def mixture_nll(pred_means: ArrayLike, sigma: ArrayLike, y: ArrayLike) -> jax.Array:
    """Mean negative log predictive density :math:`-\\frac1N\\sum_i\\log p_i(y_i)`.

    Args:
        pred_means: component means, shape ``(M, N)``.
        sigma: aleatoric std, broadcastable to ``(M, N)``.
        y: observations, shape ``(N,)``.
    """
    return -jnp.mean(mixture_log_density(pred_means, sigma, y))


def mixture_cdf(pred_means: ArrayLike, sigma: ArrayLike, y: ArrayLike) -> jax.Array:
    """Mixture CDF :math:`F_i(y)`; ``y`` of shape ``(..., N)`` gives ``(..., N)``."""
    means, scales = _components(pred_means, sigma)
    return jnp.mean(norm.cdf((jnp.asarray(y)[..., None, :] - means) / scales), axis=-2)


@jax.jit
def _quantiles(means: jax.Array, scales: jax.Array, q: jax.Array) -> jax.Array:
    component = means[None] + scales[None] * norm.ppf(q)[:, None, None]  # (Q, M, N)
    bounds = (jnp.min(component, axis=1), jnp.max(component, axis=1))

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        below = mixture_cdf(means, scales, mid) < q[:, None]
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTION_STEPS, halve, bounds)
    return 0.5 * (lo + hi)


def mixture_quantiles(pred_means: ArrayLike, sigma: ArrayLike, q: ArrayLike) -> jax.Array:
    """Quantiles :math:`F_i^{-1}(q)` of every point's predictive mixture.

    Bisection on the closed-form CDF inside the bracket
    :math:`[\\min_m Q_m(q), \\max_m Q_m(q)]` of component quantiles; 64 halvings
    reach the floating-point resolution of the bracket.

    Args:
        pred_means: component means, shape ``(M, N)``.
        sigma: aleatoric std, broadcastable to ``(M, N)``.
        q: probability levels in ``(0, 1)``, a scalar or shape ``(Q,)``.

    Returns:
        Shape ``(N,)`` for scalar ``q``, else ``(Q, N)``.
    """
    means, scales = _components(pred_means, sigma)
    q = jnp.asarray(q, means.dtype)
    out = _quantiles(means, scales, jnp.atleast_1d(q))
    return out[0] if q.ndim == 0 else out


def central_interval(
    pred_means: ArrayLike, sigma: ArrayLike, level: ArrayLike
) -> tuple[jax.Array, jax.Array]:
    """Bounds of the central ``level`` interval: ``(N,)`` each, ``(L, N)`` for ``(L,)`` levels."""
    level = jnp.asarray(level)
    tail = 0.5 * (1.0 - level)
    return (
        mixture_quantiles(pred_means, sigma, tail),
        mixture_quantiles(pred_means, sigma, 1.0 - tail),
    )


def _inside(y: ArrayLike, lo: jax.Array, hi: jax.Array) -> jax.Array:
    y = jnp.asarray(y)
    return jnp.mean((y >= lo) & (y <= hi), axis=-1)


def coverage(
    pred_means: ArrayLike, sigma: ArrayLike, y: ArrayLike, level: ArrayLike = 0.95
) -> jax.Array:
    """Fraction of ``y`` inside the central ``level`` interval (scalar, or ``(L,)``)."""
    return _inside(y, *central_interval(pred_means, sigma, level))


def sharpness(pred_means: ArrayLike, sigma: ArrayLike, level: ArrayLike = 0.95) -> jax.Array:
    """Mean width of the central ``level`` interval (scalar, or ``(L,)``)."""
    lo, hi = central_interval(pred_means, sigma, level)
    return jnp.mean(hi - lo, axis=-1)


def calibration_curve(
    pred_means: ArrayLike,
    sigma: ArrayLike,
    y: ArrayLike,
    levels: ArrayLike = DEFAULT_LEVELS,
) -> CalibrationCurve:
    """Coverage and sharpness at each of ``levels`` (default 0.05, 0.10, ..., 0.95)."""
    levels = jnp.asarray(levels)
    lo, hi = central_interval(pred_means, sigma, levels)
    return CalibrationCurve(levels, _inside(y, lo, hi), jnp.mean(hi - lo, axis=-1))


def _report(
    rmse_truth: jax.Array, rmse_obs: jax.Array, nll: jax.Array, curve: CalibrationCurve
) -> dict:
    levels = np.asarray(curve.levels)
    at95 = np.flatnonzero(np.isclose(levels, 0.95))
    if at95.size == 0:
        raise ValueError(f"levels must include 0.95, got {levels}")
    at95 = int(at95[0])
    return {
        "rmse_truth": float(rmse_truth),
        "rmse_obs": float(rmse_obs),
        "nll": float(nll),
        "coverage_95": float(curve.coverage[at95]),
        "sharpness_95": float(curve.sharpness[at95]),
        "levels": levels,
        "coverage_curve": np.asarray(curve.coverage),
        "width_curve": np.asarray(curve.sharpness),
    }


def summary(
    pred_means: ArrayLike,
    sigma: ArrayLike,
    y_truth: ArrayLike,
    y_obs: ArrayLike,
    levels: ArrayLike = DEFAULT_LEVELS,
) -> dict:
    """Exact goodness-of-fit summary of a Gaussian-mixture predictive.

    Args:
        pred_means: component means, shape ``(M, N)``.
        sigma: aleatoric std, broadcastable to ``(M, N)``.
        y_truth: noiseless targets, shape ``(N,)`` (used for ``rmse_truth`` only).
        y_obs: noisy observations, shape ``(N,)``.
        levels: nominal levels of the calibration curve; 0.95 should be among them.

    Returns:
        ``{"rmse_truth", "rmse_obs", "nll", "coverage_95", "sharpness_95"}`` as floats,
        plus ``"levels"``, ``"coverage_curve"``, ``"width_curve"`` as ``(L,)`` arrays.
    """
    mean = jnp.mean(jnp.asarray(pred_means), axis=0)
    return _report(
        rmse(mean, y_truth),
        rmse(mean, y_obs),
        mixture_nll(pred_means, sigma, y_obs),
        calibration_curve(pred_means, sigma, y_obs, levels),
    )


def sampled_summary(
    pred_means: ArrayLike,
    sigma: ArrayLike,
    y_truth: ArrayLike,
    y_obs: ArrayLike,
    *,
    num_samples: int = 500,
    seed: int = 987,
    levels: ArrayLike = DEFAULT_LEVELS,
) -> dict:
    """Monte-Carlo version of :func:`summary` (same keys; RMSE and NLL stay exact).

    Draws ``num_samples`` joint predictive samples per test point (a component index
    per sample, shared across points, then Gaussian noise) from ``PRNGKey(seed)`` and
    reads the interval bounds off their empirical quantiles. With a few hundred
    samples the 95 % bounds carry visible Monte-Carlo error; use it to compare with
    sample-based evaluations, :func:`summary` otherwise.
    """
    means, scales = _components(pred_means, sigma)
    index_key, noise_key = jr.split(jr.PRNGKey(seed))
    member = jr.randint(index_key, (num_samples,), 0, means.shape[0])
    noise = jr.normal(noise_key, (num_samples, means.shape[1]), means.dtype)
    draws = means[member] + scales[member] * noise  # (S, N)
    levels = jnp.asarray(levels)
    tail = 0.5 * (1.0 - levels)
    lo = jnp.quantile(draws, tail, axis=0)  # (L, N)
    hi = jnp.quantile(draws, 1.0 - tail, axis=0)
    curve = CalibrationCurve(levels, _inside(y_obs, lo, hi), jnp.mean(hi - lo, axis=-1))
    mean = jnp.mean(means, axis=0)
    return _report(
        rmse(mean, y_truth),
        rmse(mean, y_obs),
        mixture_nll(means, scales, y_obs),
        curve,
    )
