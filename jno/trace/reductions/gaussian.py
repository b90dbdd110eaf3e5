"""``r.gaussian(std)``: the calibrated Gaussian likelihood of a residual; ``r.gaussian(cov=K)``
(and ``r.gaussian(std=σ, cov=K)``) the correlated one."""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.linalg
import numpy as np
import sympy

from ...kernels import Kernel, distances
from ..node import Placeholder, _describe, as_node
from .base import (
    Likelihood,
    _elementwise,
    broadcast_sum,
    positive_input,
    residual_method,
    scaled_sum,
)


@residual_method
class GaussianLikelihood(Likelihood):
    """Calibrated Gaussian likelihood constraint of this residual.

    With ``std`` alone its loss is the exact negative log-likelihood
    ``½ Σ r²/σ² + Σ log(σ √(2π))`` over every point and component; ``std`` is a number, an
    array broadcastable to the residual, an array with one row per point, or a Parameter
    (learned noise).

    With ``cov`` the ``N`` residuals of the point set (one component per point) are jointly
    Gaussian, ``r ~ N(0, Σ)`` with ``Σ = K + diag(σ²)`` (``σ²`` only when ``std`` is given):
    the loss is ``½ rᵀΣ⁻¹r + ½ log det Σ + (N/2) log 2π``, by a Cholesky factor of ``Σ``.
    ``cov`` is an ``(N, N)`` symmetric positive-definite array or a kernel
    (:mod:`jno.kernels`) on the point set's coordinates: evaluated once when the likelihood is
    built, or at every evaluation when its lengthscale or variance is a jno expression (a
    positive Parameter, learned or sampled: a Kennedy–O'Hagan discrepancy ``r = δ + ε``,
    ``δ ~ GP(0, k)``, marginalised in closed form). It couples all points: it cannot be
    subsampled (``batch_size``), and it is built on the point set's coordinates, so the point
    set must not be resampled.
    """

    op = kind = "gaussian"

    def __init__(self, residual, std=None, cov=None):
        residual = as_node(residual)
        where = f"{_describe(residual)}.gaussian(...)"
        if std is None and cov is None:
            raise ValueError(f"{where}: give std= (independent noise) or cov= (correlated)")
        args = [] if std is None else [positive_input(residual, std, self.kind, "std")]
        self.has_std = std is not None
        self.kernel = self.dist = None
        if isinstance(cov, Kernel) and not cov.fixed:
            _check_point_wise(residual, where)
            self.kernel = cov
            self.dist = distances(residual.pointset.coords, residual.pointset.coords)
            args += [_hyperparameter(cov.lengthscale, where, "lengthscale"),
                     _hyperparameter(cov.variance, where, "variance")]
            self.cov = None
        else:
            self.cov = None if cov is None else _covariance(residual, cov, where)
        self.correlated = cov is not None
        super().__init__(residual, *args)

    def lower(self, ev, args):
        if not self.correlated:
            return super().lower(ev, args)
        r, *rest = args
        std = rest[:1] if self.has_std else []
        n = self.residual.pointset.size
        if r.shape[0] != n:
            raise ValueError(
                f"{_describe(self.residual)}.gaussian(cov=...): the covariance couples all "
                f"{n} points of '{self.residual.pointset.label}', which cannot be subsampled "
                f"({r.shape[0]} rows here): leave batch_size out for this solve"
            )
        var = jnp.zeros(r.shape[:1], r.dtype)
        if std:
            s = _elementwise(std[0], self.args[1], r, self.residual).reshape(r.shape[0])
            var = s * s
        if self.kernel is not None:
            ell, amp = (jnp.reshape(v, ()) for v in rest[len(std):])
            k = self.kernel.matrix(jnp.asarray(self.dist, r.dtype), ell, amp)
        else:
            k = jnp.asarray(self.cov, r.dtype)
        return self.correlated_nll(r.reshape(r.shape[0]), k, var)

    @staticmethod
    def correlated_nll(r, k, var):
        """``-log N(r; 0, K + diag(var))`` by a Cholesky factor; ``r``, ``var``: ``(N,)``."""
        chol = jnp.linalg.cholesky(k + jnp.diag(var))
        z = jax.scipy.linalg.solve_triangular(chol, r, lower=True)
        logdet = jnp.sum(jnp.log(jnp.diagonal(chol)))
        return 0.5 * jnp.dot(z, z) + logdet + 0.5 * r.shape[0] * math.log(2 * math.pi)

    def reduce(self, r, s):
        return (
            0.5 * scaled_sum(jnp.square, 2, r, s)
            + broadcast_sum(jnp.log(s), r.shape)
            + 0.5 * r.size * math.log(2 * math.pi)
        )

    def sympy_form(self, args):
        if self.correlated:
            return sympy.Function("gaussian_cov_nll")(*args)
        return sympy.Function("gaussian_nll")(*args)


def _check_point_wise(residual: Placeholder, where: str) -> None:
    if residual.pointset is None:
        raise ValueError(f"{where}: cov= needs a point-wise residual (it correlates points)")
    if int(np.prod(residual.shape)) != 1:
        raise ValueError(
            f"{where}: cov= needs one component per point; the residual has per-point shape "
            f"{residual.shape} (write one constraint per component)"
        )


def _hyperparameter(value, where: str, arg: str) -> Placeholder:
    """A kernel's lengthscale or variance (a number or a jno expression) as a global node of
    one number."""
    if isinstance(value, float):
        return as_node(value)
    if not isinstance(value, Placeholder):
        raise TypeError(
            f"{where}: the kernel's {arg} must be a number or a jno expression, got "
            f"{type(value).__name__}"
        )
    node = as_node(value)
    if node.pointset is not None or int(np.prod(node.shape)) != 1:
        raise ValueError(
            f"{where}: the kernel's {arg} must be one global number (e.g. a (1,) Parameter "
            f"with constraint=jno.constraints.positive), got per-point shape {node.shape}"
        )
    return node


def _covariance(residual: Placeholder, cov, where: str) -> np.ndarray:
    """``cov`` as a checked ``(N, N)`` array on the residual's point set."""
    _check_point_wise(residual, where)
    ps = residual.pointset
    if callable(cov) and not isinstance(cov, np.ndarray):
        k = np.asarray(cov(ps.coords, ps.coords), dtype=np.float64)
    else:
        try:
            k = np.asarray(cov, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{where}: cov must be an (N, N) array or a kernel from jno.kernels, got "
                f"{type(cov).__name__}"
            ) from None
    n = ps.size
    if k.shape != (n, n):
        raise ValueError(
            f"{where}: cov has shape {k.shape}; point set '{ps.label}' has {n} points, so it "
            f"must be ({n}, {n})"
        )
    if not np.allclose(k, k.T, rtol=1e-6, atol=1e-12 * max(1.0, float(np.abs(k).max()))):
        raise ValueError(f"{where}: cov on point set '{ps.label}' is not symmetric")
    try:
        np.linalg.cholesky(k)
    except np.linalg.LinAlgError:
        raise ValueError(
            f"{where}: cov on point set '{ps.label}' is not positive definite (points too close "
            "for the kernel's lengthscale?); add noise with std= or a jitter to its diagonal"
        ) from None
    return k
