"""jno.metrics against closed forms, scipy, and large seeded simulations."""

import math

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from scipy import optimize, stats

from jno import metrics


def mixture_draws(key, means, sigma, num):
    """``num`` draws per column from the equally weighted mixture of ``N(means[m], sigma^2)``."""
    k_idx, k_eps = jr.split(key)
    idx = jr.randint(k_idx, (num, means.shape[1]), 0, means.shape[0])
    return jnp.take_along_axis(means, idx, axis=0) + sigma * jr.normal(k_eps, idx.shape)


@pytest.fixture(scope="module")
def mixture():
    return jr.normal(jr.PRNGKey(0), (5, 6)) * jnp.array([0.1, 0.5, 1.0, 2.0, 0.0, 0.3])


def test_oracle_nll_is_the_gaussian_entropy():
    sigma, n = 0.1, 200_000
    kf, ke = jr.split(jr.PRNGKey(1))
    f = jr.normal(kf, (n,))
    y = f + sigma * jr.normal(ke, (n,))
    nll = float(metrics.mixture_nll(f[None, :], sigma, y))
    expected = 0.5 * math.log(2 * math.pi * sigma**2) + 0.5
    assert abs(nll - expected) < 4 * math.sqrt(0.5 / n)


def test_mixture_nll_matches_scipy(mixture):
    sigma = 0.4
    y = jr.normal(jr.PRNGKey(2), (6,))
    m, yn = np.asarray(mixture, float), np.asarray(y, float)
    expected = -np.mean(np.log(stats.norm.pdf(yn[None, :], m, sigma).mean(axis=0)))
    np.testing.assert_allclose(metrics.mixture_nll(mixture, sigma, y), expected, rtol=1e-5)


def test_mixture_quantiles_match_root_finding_and_sampling(mixture):
    sigma = 0.3
    q = np.array([0.025, 0.2, 0.5, 0.9, 0.975])
    got = np.asarray(metrics.mixture_quantiles(mixture, sigma, q))
    assert got.shape == (5, 6)
    m = np.asarray(mixture, float)
    for i in range(m.shape[1]):
        for j, qq in enumerate(q):
            root = optimize.brentq(
                lambda t, i=i, qq=qq: stats.norm.cdf((t - m[:, i]) / sigma).mean() - qq,
                -20,
                20,
                xtol=1e-12,
            )
            assert abs(got[j, i] - root) < 1e-5
    n = 400_000
    draws = np.asarray(mixture_draws(jr.PRNGKey(3), mixture, sigma, n))
    below = np.mean(draws[None, :, :] <= got[:, None, :], axis=1)  # empirical CDF at Q(q)
    assert np.all(np.abs(below - q[:, None]) < 4 * np.sqrt(q * (1 - q) / n)[:, None])
    scalar = metrics.mixture_quantiles(mixture, sigma, 0.5)
    assert scalar.shape == (6,)
    np.testing.assert_allclose(scalar, got[2], rtol=1e-6)


def test_single_gaussian_interval_is_closed_form():
    means = jnp.array([[0.0, 1.0, -2.0]])
    sigma = jnp.array([0.5, 1.0, 2.0])
    for level in (0.5, 0.9, 0.95):
        width = 2 * stats.norm.ppf(0.5 + level / 2) * np.asarray(sigma)
        np.testing.assert_allclose(metrics.sharpness(means, sigma, level), width.mean(), rtol=1e-5)


@pytest.mark.parametrize("level", [0.5, 0.8, 0.95])
def test_coverage_of_exact_gaussian_predictive(level):
    sigma, n = 0.2, 40_000
    kf, ke = jr.split(jr.PRNGKey(4))
    f = jr.uniform(kf, (n,), minval=-3, maxval=3)
    y = f + sigma * jr.normal(ke, (n,))
    cov = float(metrics.coverage(f[None, :], sigma, y, level))
    assert abs(cov - level) < 4 * math.sqrt(level * (1 - level) / n)


def test_coverage_of_mixture_predictive_over_the_curve():
    sigma, n = 0.3, 20_000
    means = jr.normal(jr.PRNGKey(5), (4, n))
    y = mixture_draws(jr.PRNGKey(6), means, sigma, 1)[0]
    curve = metrics.calibration_curve(means, sigma, y)
    levels = np.asarray(curve.levels)
    bound = 4 * np.sqrt(levels * (1 - levels) / n)
    assert np.all(np.abs(np.asarray(curve.coverage) - levels) < bound)
    assert np.all(np.diff(np.asarray(curve.sharpness)) > 0)
    np.testing.assert_allclose(
        curve.coverage[-1], metrics.coverage(means, sigma, y, 0.95), rtol=1e-6
    )


def test_summary_and_sampled_summary_agree(mixture):
    sigma = 0.25
    y_truth = jnp.mean(mixture, axis=0) + 0.05
    y_obs = y_truth + sigma * jr.normal(jr.PRNGKey(7), (6,))
    exact = metrics.summary(mixture, sigma, y_truth, y_obs)
    assert exact["rmse_truth"] == pytest.approx(0.05, rel=1e-4)
    assert exact["rmse_obs"] == pytest.approx(
        float(np.sqrt(np.mean((np.mean(mixture, 0) - y_obs) ** 2))), rel=1e-5
    )
    assert exact["nll"] == pytest.approx(float(metrics.mixture_nll(mixture, sigma, y_obs)))
    assert exact["sharpness_95"] == pytest.approx(float(metrics.sharpness(mixture, sigma)))
    assert exact["levels"].shape == exact["coverage_curve"].shape == (19,)
    sampled = metrics.sampled_summary(mixture, sigma, y_truth, y_obs, num_samples=100_000)
    # Each sampled bound is an empirical p-quantile of S = 1e5 draws: MCSE sqrt(p(1-p)/S)/f(q)
    # with f the mixture density at the exact quantile (found by root finding here). A width
    # hi - lo has MCSE at most se_lo + se_hi; the curve averages the points. At 4 such MCSE.
    m = np.asarray(mixture, np.float64)

    def cdf(x, j):
        return stats.norm.cdf(x, m[:, j], sigma).mean()

    def pdf(x, j):
        return stats.norm.pdf(x, m[:, j], sigma).mean()

    tol = []
    for level in np.asarray(exact["levels"], np.float64):
        se = []
        for j in range(m.shape[1]):
            bounds = []
            for p in (0.5 * (1 - level), 0.5 * (1 + level)):
                q = optimize.brentq(lambda x: cdf(x, j) - p, -20.0, 20.0, xtol=1e-12)
                bounds.append(math.sqrt(p * (1 - p) / 100_000) / pdf(q, j))
            se.append(sum(bounds))
        tol.append(4 * np.mean(se))
    err = np.abs(np.asarray(sampled["width_curve"]) - np.asarray(exact["width_curve"]))
    assert np.all(err < np.asarray(tol)), (err, tol)
    # Where the mixture density at a bound is small (between separated components) that MCSE
    # is wide; the sampled curve is also checked exactly against its draws made by hand from
    # the documented keys (a component index per sample, shared across points, then noise).
    k_idx, k_eps = jr.split(jr.PRNGKey(987))
    member = np.asarray(jr.randint(k_idx, (100_000,), 0, 5))
    noise = np.asarray(jr.normal(k_eps, (100_000, 6)), np.float64)
    draws = m[member] + sigma * noise
    tail = 0.5 * (1 - np.asarray(exact["levels"], np.float64))
    widths = np.quantile(draws, 1 - tail, axis=0) - np.quantile(draws, tail, axis=0)
    np.testing.assert_allclose(sampled["width_curve"], widths.mean(-1), rtol=1e-4)
    assert sampled["nll"] == exact["nll"]
    again = metrics.sampled_summary(mixture, sigma, y_truth, y_obs, num_samples=100_000)
    np.testing.assert_array_equal(again["width_curve"], sampled["width_curve"])


def test_bad_inputs_raise(mixture):
    with pytest.raises(ValueError, match="0.95"):
        metrics.summary(mixture, 0.1, mixture[0], mixture[0], levels=[0.5, 0.9])
    with pytest.raises(ValueError, match=r"\(M, N\)"):
        metrics.mixture_nll(mixture[0], 0.1, mixture[0])


def test_predictive_band_against_hand_computation():
    # three members on two points: means (1+2+6)/3 = 3 and (0+0+3)/3 = 1; population
    # variances ((1-3)²+(2-3)²+(6-3)²)/3 = 14/3 and (1+1+4)/3 = 2; σ = 0.5 adds 0.25
    preds = np.array([[1.0, 0.0], [2.0, 0.0], [6.0, 3.0]])
    mean, total_std = metrics.predictive_band(preds, 0.5)
    np.testing.assert_allclose(mean, [3.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(total_std, [np.sqrt(14 / 3 + 0.25), np.sqrt(2.25)], rtol=1e-6)
    # one member: the band is the aleatoric noise alone; σ may vary per point
    mean1, std1 = metrics.predictive_band(preds[:1], np.array([0.1, 0.2]))
    np.testing.assert_allclose(mean1, preds[0], rtol=1e-6)
    np.testing.assert_allclose(std1, [0.1, 0.2], rtol=1e-6)
    with pytest.raises(ValueError, match="sigma_obs"):
        metrics.predictive_band(preds, -1.0)
