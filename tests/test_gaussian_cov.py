"""``r.gaussian(cov=...)``: the correlated Gaussian likelihood (and ``jno.kernels``).

Truths: ``scipy.stats.multivariate_normal.logpdf``; the Matérn and squared-exponential
formulas at chosen distances; the closed-form posterior of a linear coefficient under
correlated Gaussian noise (generalised least squares with a Gaussian prior).
"""

import blackjax
import numpy as np
import pytest
from scipy import stats

import jno

from stats import assert_gaussian_within


def problem(n_mesh=0.05, seed=0, kernel=None):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=n_mesh))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    kernel = kernel or jno.kernels.matern52(0.2, 0.04)
    k = kernel(xs[:, None], xs[:, None]) + 1e-4 * np.eye(xs.size)
    noise = np.random.default_rng(seed).multivariate_normal(np.zeros(xs.size), k)
    ys = 1.5 * np.sin(np.pi * xs) + noise
    y = dom.variable("y", ys.astype(np.float32))
    return x, y, xs, ys, k


def test_kernels_are_their_formulas():
    r = np.array([[0.0], [0.3], [1.0]])
    rho = np.abs(r - r.T) / 0.5
    np.testing.assert_allclose(jno.kernels.squared_exponential(0.5, 2.0)(r, r),
                               2.0 * np.exp(-0.5 * rho**2))
    np.testing.assert_allclose(jno.kernels.matern32(0.5)(r, r),
                               (1 + np.sqrt(3) * rho) * np.exp(-np.sqrt(3) * rho))
    np.testing.assert_allclose(jno.kernels.matern52(0.5)(r, r),
                               (1 + np.sqrt(5) * rho + 5 * rho**2 / 3) * np.exp(-np.sqrt(5) * rho))


@pytest.mark.parametrize("form", ["array", "kernel_plus_std", "kernel_plus_learned_std"])
def test_value_is_the_multivariate_normal_log_density(form):
    x, y, xs, ys, k = problem()
    a = jno.np.parameter((1,), name="a", init=1.2)
    r = a * jno.np.sin(jno.np.pi * x) - y
    kern = jno.kernels.matern52(0.2, 0.04)
    if form == "array":
        c, cov = r.gaussian(cov=k), k
    elif form == "kernel_plus_std":
        c, cov = r.gaussian(std=0.01, cov=kern), kern(xs[:, None], xs[:, None]) + 1e-4 * np.eye(
            xs.size)
    else:
        s = jno.np.parameter((1,), name="s", init=0.01)
        c, cov = r.gaussian(std=s, cov=kern), kern(xs[:, None], xs[:, None]) + 1e-4 * np.eye(
            xs.size)
    want = -stats.multivariate_normal(np.zeros(xs.size), cov).logpdf(1.2 * np.sin(np.pi * xs) - ys)
    crux = jno.core([c])
    np.testing.assert_allclose(float(crux.eval([c])), want, rtol=1e-4)
    np.testing.assert_array_equal(crux.program.calibrated, [True])


def test_nuts_matches_the_generalised_least_squares_posterior():
    x, y, xs, ys, k = problem(seed=1)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=400, keep=1000, num_chains=4, init_jitter=0.3)
    jno.core([(a * jno.np.sin(jno.np.pi * x) - y).gaussian(cov=k)], seed=3).solve(print_rate=700)
    f = np.sin(np.pi * xs)
    kinv_f = np.linalg.solve(k, f)
    precision = f @ kinv_f + 1.0 / 10.0**2  # default prior N(0, 10²)
    mean = (kinv_f @ ys) / precision
    draws = np.asarray(a.posterior_samples)[..., 0]
    assert_gaussian_within(draws, mean, np.sqrt(1.0 / precision), what="a")


def test_bad_covariances_are_clear_errors():
    x, y, xs, ys, k = problem()
    n = xs.size
    with pytest.raises(ValueError, match=f"must be \\({n}, {n}\\)"):
        (x - y).gaussian(cov=np.eye(3))
    with pytest.raises(ValueError, match="not positive definite"):
        (x - y).gaussian(cov=-np.eye(xs.size))
    with pytest.raises(ValueError, match="not symmetric"):
        (x - y).gaussian(cov=np.eye(xs.size) + np.triu(np.ones((xs.size, xs.size)), 1))
    with pytest.raises(ValueError, match="one component per point"):
        jno.np.concat([x - y, x], axis=-1).gaussian(cov=k)
    with pytest.raises(ValueError, match="give std= \\(independent noise\\) or cov="):
        (x - y).gaussian()
    with pytest.raises(ValueError, match="lengthscale must be finite and > 0"):
        jno.kernels.matern52(0.0)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=10, keep=10)
    crux = jno.core([(a * x - y).gaussian(cov=k)])
    with pytest.raises(ValueError, match="cannot be subsampled"):
        crux.solve(batch_size=5)
