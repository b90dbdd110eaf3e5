"""Gaussian random fields for unknown coefficient fields: ``k = jno.fields.grf(points, kernel)``.

A field ``f ~ GP(mean, k)`` on a region is represented by its truncated Karhunen–Loève
expansion on reference points ``X`` (``(n, d)``, e.g. a domain's interior nodes): with the
eigenpairs ``K(X, X) = V Λ Vᵀ`` (descending) and the first ``m`` of them,

    f(x) = mean + k(x, X) V_m Λ_m^{-1/2} ξ,        ξ ~ N(0, I_m),

the Nyström extension of the eigenvectors to any point ``x``. At the reference points the
field's covariance is ``V_m Λ_m V_mᵀ``, the best rank-``m`` approximation of ``K``; ``m`` is
``modes``, or the smallest count whose eigenvalues hold ``energy`` of the trace. The
coefficients ``ξ`` are an ordinary Parameter (``field.coefficients``): ``field.bayesian(...)``
samples them under their ``N(0, I)`` prior, and ``field(x)`` is a jno expression (derivatives
included) usable anywhere, e.g. as the diffusivity of a PDE residual, or ``jno.np.exp(field(x))``
for a positive one.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from .bayesian import priors
from .kernels import Kernel
from .np import parameter
from .np import sum as component_sum
from .trace.node import Placeholder, apply


class GaussianRandomField:
    """A truncated Karhunen–Loève field (see the module docstring).

    Attributes:
        coefficients: the ``(m,)`` Parameter ``ξ``.
        modes: ``m``.
        energy: the fraction of ``trace K(X, X)`` the ``m`` modes hold.
        eigenvalues: all eigenvalues of ``K(X, X)``, descending.
    """

    def __init__(self, points, kernel: Kernel, modes=None, energy=0.99, mean=0.0, name="field"):
        where = f"jno.fields.grf(name={name!r})"
        if not isinstance(kernel, Kernel) or not kernel.fixed:
            raise TypeError(
                f"{where}: kernel must be one of jno.kernels with numeric lengthscale and "
                f"variance, got {kernel!r}"
            )
        x = np.asarray(points, dtype=np.float64)
        x = x.reshape(len(x), -1)
        lam, vec = np.linalg.eigh(kernel(x, x))
        lam, vec = lam[::-1], vec[:, ::-1]
        lam = np.clip(lam, 0.0, None)
        share = np.cumsum(lam) / np.sum(lam)
        if modes is None:
            if not 0.0 < energy <= 1.0:
                raise ValueError(f"{where}: energy must be in (0, 1], got {energy!r}")
            modes = int(np.searchsorted(share, energy - 1e-12) + 1)
        if not isinstance(modes, int) or not 1 <= modes <= len(x):
            raise ValueError(f"{where}: modes must be an int in 1..{len(x)}, got {modes!r}")
        if lam[modes - 1] <= 1e-10 * lam[0]:
            raise ValueError(
                f"{where}: mode {modes} has a negligible eigenvalue; use fewer modes (or more "
                "reference points, or a shorter lengthscale)"
            )
        self.kernel, self.reference, self.mean, self.name = kernel, x, float(mean), name
        self.modes, self.energy, self.eigenvalues = modes, float(share[modes - 1]), lam
        self.weights = vec[:, :modes] / np.sqrt(lam[:modes])  # (n, m): V_m Λ_m^{-1/2}
        self.coefficients = parameter((modes,), name=name)

    def features(self, x) -> jnp.ndarray:
        """``k(x, X) V_m Λ_m^{-1/2}`` at one point ``x`` (``(d,)``): the ``(m,)`` basis values."""
        ref = jnp.asarray(self.reference, x.dtype)
        d2 = jnp.sum((jnp.reshape(x, (1, -1)) - ref) ** 2, axis=-1)
        dist = jnp.sqrt(d2 + 1e-12)  # smooth at a reference point (derivatives of the field)
        k = self.kernel.matrix(dist, self.kernel.lengthscale, self.kernel.variance)
        return k @ jnp.asarray(self.weights, x.dtype)

    def __call__(self, x: Placeholder) -> Placeholder:
        """The field at the points of ``x`` (per-point shape ``(1,)``), a jno expression."""
        basis = apply(self.features, x, name=f"{self.name}_basis")
        return self.mean + component_sum(basis * self.coefficients)

    def bayesian(self, factory, **kwargs):
        """``coefficients.bayesian(factory, ...)`` with the field's ``N(0, I)`` prior (unless
        ``prior=`` is given)."""
        kwargs.setdefault("prior", priors.gaussian(sigma=1.0))
        self.coefficients.bayesian(factory, **kwargs)
        return self


def grf(points, kernel: Kernel, modes: int | None = None, energy: float = 0.99,
        mean: float = 0.0, name: str = "field") -> GaussianRandomField:
    """A Gaussian random field ``GP(mean, kernel)`` on the reference ``points`` (``(n, d)``),
    truncated to ``modes`` Karhunen–Loève modes or to the fewest that hold ``energy`` of the
    variance (see :class:`GaussianRandomField`)."""
    return GaussianRandomField(points, kernel, modes, energy, mean, name)


__all__ = ["GaussianRandomField", "grf"]
