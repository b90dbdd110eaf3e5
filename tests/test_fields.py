"""``jno.fields.grf``: a truncated Karhunen–Loève Gaussian random field as a model.

Truths: numpy's eigendecomposition of the kernel matrix (the truncation error of the field's
covariance at the reference points is the first discarded eigenvalue, in operator norm); the
closed-form posterior of a linear-Gaussian model in the field's coefficients (noisy direct
observations of the field); JAX's gradient of the basis for the field's derivative.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno

from stats import assert_gaussian_within

KERNEL = jno.kernels.squared_exponential(0.25, 1.0)


def field_on_a_line(**kw):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    xs = np.asarray(dom.points("interior"), np.float64)
    return dom, x, xs, jno.fields.grf(xs, KERNEL, **kw)


def basis_matrix(field, x):
    """``Φ`` (n, m): the field at the points for each unit coefficient vector, through jno."""
    crux = jno.core([(field(x) - 0.0).mse])
    cols = []
    for j in range(field.modes):
        field.coefficients.initialize(jnp.eye(field.modes)[j])
        cols.append(np.asarray(crux.eval([field(x)], samples="point"))[:, 0])
    return np.stack(cols, axis=1)


def test_modes_hold_the_energy_and_the_truncation_error_is_the_next_eigenvalue():
    _, x, xs, field = field_on_a_line(energy=0.999)
    k = KERNEL(xs, xs)
    lam = np.sort(np.linalg.eigvalsh(k))[::-1]
    share = np.cumsum(lam) / lam.sum()
    assert share[field.modes - 1] >= 0.999 > share[field.modes - 2]
    np.testing.assert_allclose(field.energy, share[field.modes - 1], rtol=1e-6)
    phi = basis_matrix(field, x)
    # at the reference points Cov f = ΦΦᵀ = V_m Λ_m V_mᵀ: the error's 2-norm is λ_{m+1}
    err = np.linalg.norm(k - phi @ phi.T, ord=2)
    np.testing.assert_allclose(err, lam[field.modes], rtol=1e-2, atol=1e-5)


def test_the_derivative_of_the_field_is_jaxs():
    _, x, xs, field = field_on_a_line(modes=5)
    xi = jnp.asarray(np.random.default_rng(0).normal(size=5), jnp.float32)
    field.coefficients.initialize(xi)
    crux = jno.core([(field(x) - 0.0).mse])
    got = np.asarray(crux.eval([jno.diff(field(x), x)], samples="point"))[:, 0]
    want = jax.vmap(jax.grad(lambda z: field.features(z[None]) @ xi))(jnp.asarray(xs[:, 0]))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_field_regression_matches_the_closed_form_posterior():
    dom, x, xs, field = field_on_a_line(modes=6)
    phi = basis_matrix(field, x)
    sigma = 0.1
    truth = phi @ np.random.default_rng(1).normal(size=6)
    ys = truth + sigma * np.random.default_rng(2).normal(size=truth.size)
    y = dom.variable("y", ys.astype(np.float32))
    field.coefficients.initialize(jnp.zeros(6))
    field.bayesian(blackjax.nuts, warmup=400, keep=1000, num_chains=4, init_jitter=0.3)
    crux = jno.core([(field(x) - y).gaussian(std=sigma)], seed=4)
    crux.solve(print_rate=700)
    cov = np.linalg.inv(phi.T @ phi / sigma**2 + np.eye(6))  # prior ξ ~ N(0, I)
    mean = cov @ phi.T @ ys / sigma**2
    draws = np.asarray(crux.eval([field(x)]))[..., 0]  # (4, 1000, n)
    for i in (0, xs.shape[0] // 2, xs.shape[0] - 1):
        sd = np.sqrt(phi[i] @ cov @ phi[i])
        assert_gaussian_within(draws[..., i], phi[i] @ mean, sd, what=f"f(x_{i})")


def test_bad_fields_are_clear_errors():
    xs = np.linspace(0, 1, 11)[:, None]
    ell = jno.np.parameter((1,), name="ell", init=0.3, constraint=jno.constraints.positive)
    with pytest.raises(TypeError, match="numeric lengthscale and variance"):
        jno.fields.grf(xs, jno.kernels.matern52(ell))
    with pytest.raises(ValueError, match="modes must be an int in 1..11"):
        jno.fields.grf(xs, KERNEL, modes=12)
    with pytest.raises(ValueError, match="negligible eigenvalue"):
        jno.fields.grf(xs, jno.kernels.squared_exponential(5.0), modes=11)
