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


@pytest.mark.slow
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


def _drift_problem():
    """Data from ``u = sin πx + 0.2 x`` (the drift is the physics the model lacks) with noise
    ``σ = 0.02``; the model is ``a sin πx`` (truth a = 1)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    ys = np.sin(np.pi * xs) + 0.2 * xs + 0.02 * np.random.default_rng(0).normal(size=xs.size)
    return x, dom.variable("y", ys.astype(np.float32)), xs, ys


def test_hyperparameters_as_parameters_give_the_same_density():
    x, y, xs, ys = _drift_problem()
    a = jno.np.parameter((1,), name="a", init=1.1)
    ell = jno.np.parameter((1,), name="ell", init=0.3, constraint=jno.constraints.positive)
    amp = jno.np.parameter((1,), name="amp", init=0.01, constraint=jno.constraints.positive)
    c = (a * jno.np.sin(jno.np.pi * x) - y).gaussian(
        std=0.02, cov=jno.kernels.matern52(lengthscale=ell, variance=amp))
    k = jno.kernels.matern52(0.3, 0.01)(xs[:, None], xs[:, None]) + 0.02**2 * np.eye(xs.size)
    want = -stats.multivariate_normal(np.zeros(xs.size), k).logpdf(1.1 * np.sin(np.pi * xs) - ys)
    np.testing.assert_allclose(float(jno.core([c]).eval([c])), want, rtol=1e-4)
    mixed = (a * jno.np.sin(jno.np.pi * x) - y).gaussian(
        std=0.02, cov=jno.kernels.matern52(lengthscale=0.3, variance=amp))  # a number and a node
    np.testing.assert_allclose(float(jno.core([mixed]).eval([mixed])), want, rtol=1e-4)
    with pytest.raises(TypeError, match="evaluated inside a likelihood"):
        jno.kernels.matern52(ell)(xs, xs)


@pytest.mark.slow
def test_a_discrepancy_model_covers_the_truth_where_the_plain_likelihood_does_not():
    """Kennedy–O'Hagan: ``y = a sin πx + δ(x) + ε``, ``δ ~ GP(0, Matérn-5/2(ℓ=0.3, 0.1²))``.
    The posterior of ``a`` is Gaussian in closed form (generalised least squares with the
    N(0, 10²) prior) for both models; NUTS must match each, and on these data the plain
    likelihood puts the truth ~20 posterior sds away while the discrepancy model covers it."""
    x, y, xs, ys = _drift_problem()
    f = np.sin(np.pi * xs)
    kernel = jno.kernels.matern52(0.3, 0.1**2)
    fits = {}
    for name, cov in (("plain", 0.02**2 * np.eye(xs.size)),
                      ("discrepancy", kernel(xs[:, None], xs[:, None]) + 0.02**2 * np.eye(xs.size))):
        kf = np.linalg.solve(cov, f)
        precision = f @ kf + 1.0 / 10.0**2
        fits[name] = ((kf @ ys) / precision, precision**-0.5)
    assert abs(fits["plain"][0] - 1.0) > 10 * fits["plain"][1]
    assert abs(fits["discrepancy"][0] - 1.0) < 2 * fits["discrepancy"][1]
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=400, keep=1000, num_chains=4, init_jitter=0.3)
    residual = a * jno.np.sin(jno.np.pi * x) - y
    jno.core([residual.gaussian(std=0.02, cov=kernel)], seed=5).solve(print_rate=700)
    mean, sd = fits["discrepancy"]
    assert_gaussian_within(np.asarray(a.posterior_samples)[..., 0], mean, sd, what="a")
