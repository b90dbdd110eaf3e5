"""Run tutorials/constraints_and_likelihoods.py end to end and check it against truths
computed here from the tutorial's data, not taken from the tutorial:

* a Gaussian precision τ under a Gamma(α, rate β) prior: the conjugate Gamma posterior;
* a line a + b x under Gaussian, Student-t (ν = 3) and Laplace likelihoods with fixed scale
  and the default N(0, 10²) prior: the linear-Gaussian closed form and a 2-D grid quadrature
  of the posterior with scipy's log-densities;
* a coefficient a in y = a sin(πx) + e under an independent and a correlated (Matérn-5/2,
  written out here) Gaussian likelihood: the generalised-least-squares posterior, and the
  frequentist coverage of its 90 % interval in closed form (the posterior mean is linear in y).
"""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from figures import lines_by_label, run_tutorial
from stats import assert_gaussian_within, ess_bulk, mcse_mean

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "constraints_and_likelihoods.py"
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow
Z90 = stats.norm.ppf(0.95)
PRIOR_VAR = 10.0**2  # jno's default prior N(0, 10²)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("constraints_and_likelihoods")
    namespace, figures = run_tutorial(TUTORIAL, out)
    namespace["RESULTS"]["figure_objects"] = figures
    return namespace["RESULTS"], out


def gamma_posterior(res):
    t = res["tau"]
    y = np.asarray(t["data"], np.float64)
    return t["alpha"] + y.size / 2, t["beta"] + np.sum(y**2) / 2  # shape, rate


def quantile_margin_needed(draws, sd):
    """4 Monte-Carlo standard errors of a 5 % / 95 % quantile estimated from ``draws``:
    ``sqrt(p(1-p)/ESS) / density(q)``, with the density of a Gaussian of sd ``sd`` at
    1.645 sd."""
    dens = stats.norm.pdf(Z90) / sd
    return 4 * np.sqrt(0.05 * 0.95 / ess_bulk(draws)) / dens


# --- 1. positive precision -------------------------------------------------------------------


def test_tau_draws_are_the_conjugate_gamma_posterior(results):
    res, _ = results
    a, b = gamma_posterior(res)
    c = np.asarray(res["tau"]["draws"])
    assert c.shape == (4, 1000)
    assert np.all(c > 0)
    assert_gaussian_within(c, a / b, np.sqrt(a) / b, what="tau")
    # without the log-Jacobian the draws would follow Gamma(a - 1, b): rejected at 4 MCSE
    mcse, _ = mcse_mean(c)
    assert abs(c.mean() - (a - 1) / b) > 4 * mcse
    assert res["tau"]["summary"]["rhat"] < 1.01
    assert res["tau"]["exact_mean"] == pytest.approx(a / b, rel=1e-9)


# --- 2. robust regression ----------------------------------------------------------------------


LOGPDF = {
    "student_t": lambda r, s: stats.t.logpdf(r, 3, scale=s),
    "laplace": lambda r, s: stats.laplace.logpdf(r, scale=s),
}


def line_posterior(xs, y, sigma, family):
    """Marginal ``{param: (mean, sd, q05, q95)}`` of (a, b) in ``y = a + b x``."""
    if family == "gaussian":  # linear-Gaussian closed form
        phi = np.column_stack([np.ones_like(xs), xs])
        cov = np.linalg.inv(phi.T @ phi / sigma**2 + np.eye(2) / PRIOR_VAR)
        mean = cov @ phi.T @ y / sigma**2
        sd = np.sqrt(np.diag(cov))
        return {p: (mean[i], sd[i], mean[i] - Z90 * sd[i], mean[i] + Z90 * sd[i])
                for i, p in enumerate("ab")}

    def on_grid(ag, bg):
        r = ag[:, None, None] + bg[None, :, None] * xs - y  # (A, B, n)
        logp = LOGPDF[family](r, sigma).sum(-1) - 0.5 * (ag[:, None] ** 2 + bg[None] ** 2) / PRIOR_VAR
        w = np.exp(logp - logp.max())
        return w / w.sum()

    def moments(ag, bg, w):
        out = {}
        for p, g, m in (("a", ag, w.sum(1)), ("b", bg, w.sum(0))):
            mean = np.sum(m * g)
            cdf = np.cumsum(m) - m / 2  # the cdf at the grid points (midpoint rule)
            out[p] = (mean, np.sqrt(np.sum(m * (g - mean) ** 2)), np.interp(0.05, cdf, g),
                      np.interp(0.95, cdf, g))
        return out

    ag, bg = np.linspace(-1.0, 2.0, 301), np.linspace(-1.0, 3.0, 401)  # coarse: find the mass
    coarse = moments(ag, bg, on_grid(ag, bg))
    ag, bg = (np.linspace(coarse[p][0] - 10 * coarse[p][1], coarse[p][0] + 10 * coarse[p][1], 401)
              for p in "ab")
    return moments(ag, bg, on_grid(ag, bg))


@pytest.fixture(scope="module")
def line_truths(results):
    res, _ = results
    r = res["robust"]
    xs, y = np.asarray(r["xs"], np.float64), np.asarray(r["y"], np.float64)
    return {f: line_posterior(xs, y, r["sigma"], f) for f in ("gaussian", "student_t", "laplace")}


def test_line_data_have_gross_outliers(results):
    r = results[0]["robust"]
    xs, y, out = np.asarray(r["xs"]), np.asarray(r["y"]), np.asarray(r["outliers"])
    res = y - (r["a_true"] + r["b_true"] * xs)
    inliers = np.setdiff1d(np.arange(xs.size), out)
    assert xs.size == 51 and out.size == 5 and np.all(xs[out] > 0.6)
    assert np.all(res[out] > 10 * r["sigma"])  # +1.5 on N(0, 0.1²) noise
    assert np.all(np.abs(res[inliers]) < 5 * r["sigma"])


@pytest.mark.parametrize("family", ["gaussian", "student_t", "laplace"])
def test_line_draws_match_the_exact_posterior(results, line_truths, family):
    fit = results[0]["robust"]["fits"][family]
    for p in "ab":
        c = np.asarray(fit[p])
        assert c.shape == (4, 1000)
        mean, sd, _, _ = line_truths[family][p]
        assert_gaussian_within(c, mean, sd, what=f"{family} {p}")
        assert fit[f"{p}_summary"]["rhat"] < 1.01


@pytest.mark.parametrize("family", ["gaussian", "student_t", "laplace"])
def test_only_the_gaussian_fit_is_pulled_off_the_truth(results, line_truths, family):
    """The claims of the text, on the exact posterior: the Gaussian 90 % intervals miss the
    true intercept and slope, the Student-t and Laplace ones contain them. The tutorial's
    printed flags agree wherever the truth is further from the exact interval's end than 4
    Monte-Carlo standard errors of the draws' quantile."""
    r = results[0]["robust"]
    fit = r["fits"][family]
    for p, truth in (("a", r["a_true"]), ("b", r["b_true"])):
        mean, sd, lo, hi = line_truths[family][p]
        covers = lo < truth < hi
        assert covers == (family != "gaussian"), f"{family} {p}: exact 90 % [{lo:.3f}, {hi:.3f}]"
        margin = min(abs(truth - lo), abs(truth - hi))
        assert margin > quantile_margin_needed(np.asarray(fit[p]), sd)
        assert fit[f"{p}_summary"]["covers"] == covers
    # the Gaussian slope is far off, not marginally: more than 5 posterior sds
    if family == "gaussian":
        mean, sd, _, _ = line_truths["gaussian"]["b"]
        assert (mean - r["b_true"]) / sd > 5


# --- 3. correlated noise -----------------------------------------------------------------------


def matern52(xs, ell, var):
    rho = np.abs(xs[:, None] - xs[None]) / ell
    return var * (1 + np.sqrt(5) * rho + 5 * rho**2 / 3) * np.exp(-np.sqrt(5) * rho)


def correlated_setup(res):
    c = res["correlated"]
    xs, y = np.asarray(c["xs"], np.float64), np.asarray(c["y"], np.float64)
    k = matern52(xs, 0.2, 0.04) + 0.01**2 * np.eye(xs.size)
    covs = {"independent": (0.04 + 0.01**2) * np.eye(xs.size), "correlated": k}
    return c, xs, y, k, covs


def gls(f, y, cov):
    cinv_f = np.linalg.solve(cov, f)
    precision = f @ cinv_f + 1.0 / PRIOR_VAR
    return cinv_f, precision, (cinv_f @ y) / precision, precision**-0.5


def test_correlated_covariance_is_the_matern_formula(results):
    c, xs, _, k, _ = correlated_setup(results[0])
    np.testing.assert_allclose(np.asarray(c["K"]), k, rtol=1e-5, atol=1e-8)
    assert c["std_indep"] == pytest.approx(np.sqrt(0.04 + 0.01**2))


@pytest.mark.parametrize("model", ["independent", "correlated"])
def test_correlated_noise_draws_match_gls(results, model):
    c, xs, y, _, covs = correlated_setup(results[0])
    f = np.sin(np.pi * xs)
    _, _, mean, sd = gls(f, y, covs[model])
    fit = c["fits"][model]
    draws = np.asarray(fit["a"])
    assert draws.shape == (4, 1000)
    assert_gaussian_within(draws, mean, sd, what=f"{model} a")
    assert fit["exact_mean"] == pytest.approx(mean, rel=1e-6)
    assert fit["exact_std"] == pytest.approx(sd, rel=1e-6)
    # the claim on this data set: the independent 90 % interval misses a = 1.5, the correlated
    # one contains it, each with a margin above the draws' quantile error
    lo, hi = mean - Z90 * sd, mean + Z90 * sd
    covers = lo < c["a_true"] < hi
    assert covers == (model == "correlated")
    assert min(abs(c["a_true"] - lo), abs(c["a_true"] - hi)) > quantile_margin_needed(draws, sd)
    assert fit["summary"]["covers"] == covers


def test_coverage_over_replicates_is_the_closed_form(results):
    """Over data sets y = a f + e, e ~ N(0, K), the posterior mean ``cᵀy / p`` is Gaussian with
    mean ``a cᵀf / p`` and sd ``sqrt(cᵀKc) / p``: the 90 % interval's coverage in closed form.
    The tutorial's Monte-Carlo frequency is within 4 binomial standard errors of it."""
    c, xs, _, k, covs = correlated_setup(results[0])
    f, a, m = np.sin(np.pi * xs), c["a_true"], c["replicates"]
    exact = {}
    for model, cov in covs.items():
        cinv_f, precision, _, sd = gls(f, np.zeros_like(f), cov)
        mu, omega = a * (cinv_f @ f) / precision, np.sqrt(cinv_f @ k @ cinv_f) / precision
        exact[model] = stats.norm.cdf((a + Z90 * sd - mu) / omega) - stats.norm.cdf(
            (a - Z90 * sd - mu) / omega)
        got = c["coverage"][model]
        assert abs(got - exact[model]) < 4 * np.sqrt(exact[model] * (1 - exact[model]) / m), model
    assert exact["independent"] < 0.5  # over-confident: a "90 %" interval right less than half the time
    assert abs(exact["correlated"] - 0.90) < 0.005  # calibrated (the wide prior shifts it by < 0.1 %)


# --- the figure --------------------------------------------------------------------------------


def test_figure_draws_the_exact_posteriors(results):
    res, out = results
    path = Path(res["figure"])
    assert path.parent == out and path.stat().st_size > 10_000
    fig = res["figure_objects"][path.name]
    assert len(fig.axes) == 4
    a, b = gamma_posterior(res)
    grid, dens = lines_by_label(fig.axes[0])["exact posterior"]
    np.testing.assert_allclose(dens, stats.gamma.pdf(grid, a, scale=1 / b), rtol=1e-6)
    grid, dens = lines_by_label(fig.axes[0])["without the Jacobian"]
    np.testing.assert_allclose(dens, stats.gamma.pdf(grid, a - 1, scale=1 / b), rtol=1e-6)
    r = res["robust"]
    xs, line = lines_by_label(fig.axes[1])["truth"]
    np.testing.assert_allclose(line, r["a_true"] + r["b_true"] * xs)
    c, xs3, y, _, covs = correlated_setup(res)
    lines = lines_by_label(fig.axes[2])
    for model, cov in covs.items():
        _, _, mean, sd = gls(np.sin(np.pi * xs3), y, cov)
        grid, dens = lines[f"{model}, exact"]
        # rtol 1e-3: the tutorial's K is jno.kernels' float32 matrix, this one float64
        np.testing.assert_allclose(dens, stats.norm.pdf(grid, mean, sd), rtol=1e-3)
