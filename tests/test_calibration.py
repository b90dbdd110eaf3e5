"""Simulation-based calibration: the rank, chi-square, ECDF-band and coverage code against
scipy and closed forms; prior draws and simulated data against their definitions; SBC of the
guide's two-coefficient problem (slow)."""

import math

import blackjax
import jax
import numpy as np
import pytest
from scipy import stats

import jno
from jno.bayesian import calibration as cal
from jno.bayesian.simulation import Simulator

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


def _conjugate(num, draws, rng, shrink=1.0):
    """θ ~ N(0, 1), y ~ N(θ, 1): the posterior is N(y/2, 1/2); ``shrink`` scales its sd."""
    theta = rng.normal(size=(num, 1))
    y = theta + rng.normal(size=(num, 1))
    post = y[:, None, :] / 2 + shrink * math.sqrt(0.5) * rng.normal(size=(num, draws, 1))
    return theta, post


def test_ranks_count_the_thinned_draws_below_theta():
    rng = np.random.default_rng(0)
    theta, post = _conjugate(30, 400, rng)
    ranks = cal.ranks_of(theta, post, 99)
    idx = np.round(np.linspace(0, 399, 99)).astype(int)
    assert len(set(idx)) == 99
    for s in range(30):
        assert ranks[s, 0] == sum(post[s, i, 0] < theta[s, 0] for i in idx)
    with pytest.raises(ValueError, match="max_rank=500 needs at least"):
        cal.ranks_of(theta, post, 500)


def test_chi_square_equals_scipy():
    rng = np.random.default_rng(1)
    ranks = rng.integers(0, 100, size=(200, 3))
    ranks[:, 2] = np.minimum(ranks[:, 2], 60)  # a far from uniform column
    stat, p = cal.chi_square(ranks, 99, 10)
    for j in range(3):
        counts = np.histogram(ranks[:, j], bins=10, range=(0, 100))[0]
        ref = stats.chisquare(counts)
        assert stat[j] == pytest.approx(ref.statistic, rel=1e-12)
        assert p[j] == pytest.approx(ref.pvalue, rel=1e-4, abs=1e-12)
    assert p[2] < 1e-10
    with pytest.raises(ValueError, match="must divide"):
        cal.chi_square(ranks, 99, 7)


def test_ecdf_band_against_its_definition():
    s, big_l, level = 100, 49, 0.9
    band = cal.ecdf_band(s, big_l, level, num_null=2000, seed=3)
    z = np.arange(1, big_l + 1) / (big_l + 1)
    np.testing.assert_allclose(band.z, z)
    # the limits are the counts k with gamma_i(k) >= gamma, from scipy's binomial: the
    # smallest k with F(k) >= gamma/2 and the largest with P(X >= k) >= gamma/2 (gamma is an
    # atom that lies on some limit exactly: both sides use the same 1e-9 relative slack)
    k = np.arange(s + 1)
    cut = band.gamma / 2 * (1 - 1e-9)
    ok_low = stats.binom.cdf(k[None], s, z[:, None]) >= cut
    ok_high = stats.binom.sf(k[None] - 1, s, z[:, None]) >= cut
    np.testing.assert_array_equal(np.round(band.lower * s), ok_low.argmax(axis=1))
    np.testing.assert_array_equal(np.round(band.upper * s), s - ok_high[:, ::-1].argmax(axis=1))
    assert np.all(np.diff(band.lower) >= 0) and np.all(band.lower <= z) and np.all(band.upper >= z)
    # gamma is the (1 - level) quantile of min_i gamma_i over uniform rank sets; recompute
    # min_i gamma_i with scipy on fresh rank sets (another seed)
    fresh = np.random.default_rng(99).integers(0, big_l + 1, size=(2000, s))
    counts = np.stack([[np.sum(r < i) for i in range(1, big_l + 1)] for r in fresh])
    g = np.min(
        2 * np.minimum(stats.binom.cdf(counts, s, z), stats.binom.sf(counts - 1, s, z)), axis=1
    )
    np.testing.assert_allclose(
        cal._gamma(counts, cal._binomial_cdf(s, z)), g, rtol=1e-9, atol=1e-12
    )
    inside = np.all((counts / s >= band.lower) & (counts / s <= band.upper), axis=1)
    np.testing.assert_array_equal(inside, g >= band.gamma - 1e-12)
    # simultaneous coverage 1 - level: the quantile and the fresh sets each carry binomial
    # error, 4.5 sd of both; the distribution of gamma has atoms, so test both sides of it
    alpha = 1 - level
    tol = 4.5 * math.sqrt(alpha * (1 - alpha) * (1 / 2000 + 1 / 2000))
    assert np.mean(g < band.gamma - 1e-12) <= alpha + tol
    assert np.mean(g <= band.gamma + 1e-12) >= alpha - tol
    assert not inside.all() and inside.mean() > 0.5


def test_ecdf_p_value_and_coverage_on_exact_and_overconfident_posteriors():
    rng = np.random.default_rng(4)
    num = 2000
    theta, post = _conjugate(num, 1000, rng)
    cov = cal.coverage_of(theta, post)
    for q, c in cov.items():
        # interval end points from 1000 draws add a little spread: 5 binomial sd
        assert abs(c[0] - q) < 5 * math.sqrt(q * (1 - q) / num), (q, c)
    _, over = _conjugate(num, 1000, np.random.default_rng(4), shrink=0.5)
    cov = cal.coverage_of(theta, over)
    for q, c in cov.items():
        # sd halved: the central q interval is ±z_q/2 posterior sds: coverage 2Φ(z_q/2) - 1
        truth = 2 * stats.norm.cdf(stats.norm.ppf((1 + q) / 2) / 2) - 1
        assert abs(c[0] - truth) < 5 * math.sqrt(truth * (1 - truth) / num), (q, c, truth)
    s = 200
    band = cal.ecdf_band(s, 99, 0.95, seed=0)
    good = cal.ranks_of(theta[:s], post[:s], 99)
    bad = cal.ranks_of(theta[:s], over[:s], 99)
    p = band.p_value(np.concatenate([good, bad], axis=1), 99)
    # the p-value is the fraction of simulated gamma at or below the observed one
    g = cal._gamma(cal.ecdf_counts(bad, 99), cal._binomial_cdf(s, band.z))[0]
    assert p[1] == np.mean(band.null_gamma <= g + 1e-12)
    assert p[1] < 0.001 and cal.chi_square(bad, 99, 10)[1][0] < 1e-6


@pytest.mark.parametrize(
    "prior, var",
    [
        (jno.bayesian.priors.gaussian(2.0), 4.0),
        (jno.bayesian.priors.laplace(0.5), 2 * 0.25),
        (jno.bayesian.priors.student_t(5.0, 1.5), 1.5**2 * 5 / 3),
        (jno.bayesian.priors.layerwise_gaussian(3.0, 0.7), 0.7**2),
    ],
)
def test_prior_draws_have_the_prior_variance(prior, var):
    like = np.zeros((20000,), np.float32)
    raw = prior.sample(jax.random.PRNGKey(0), like)
    assert raw.shape == like.shape and raw.dtype == np.float32
    x = np.asarray(raw, np.float64)
    # the sample variance of n draws has sd sqrt((m4 - var^2) / n)
    m4 = np.mean((x - x.mean()) ** 4)
    assert abs(x.var() - var) < 5 * math.sqrt((m4 - x.var() ** 2) / x.size)
    assert abs(x.mean()) < 5 * math.sqrt(var / x.size)
    w = np.zeros((64, 16), np.float32)
    if isinstance(prior, jno.bayesian.priors.LayerwiseGaussian):  # a weight: 3/sqrt(16)
        drawn = np.asarray(prior.sample(jax.random.PRNGKey(1), {"w": w})["w"])
        assert abs(drawn.std() - 0.75) < 5 * 0.75 / math.sqrt(2 * drawn.size)


def _guide(std_likelihood=0.1, warmup=200, keep=400, mesh=0.01):
    """The guide's two-coefficient problem with a proper prior N(0, 2²)."""
    π = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    target = 3.14 * jno.np.sin(π * x) - 2.71 * jno.np.cos(π * x) + jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=warmup, keep=keep, prior=jno.bayesian.priors.gaussian(2.0))
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) - target
    crux = jno.core([residual.gaussian(std=std_likelihood)], seed=0)
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    return crux, a, b, x, target, phi


def test_simulated_data_follow_the_model_at_the_prior_draws():
    crux, a, b, x, target, phi = _guide(keep=10, warmup=10)
    sim = Simulator(crux)
    theta, (noise,) = sim.batch(4000, seed=2)
    th = np.concatenate([np.asarray(t, np.float64) for t in theta], axis=1)
    # the crux reads target = 3.14 sin - 2.71 cos + noise': it must equal θ_s·φ + N(0, 0.1²)
    data = 3.14 * phi[:, 0] - 2.71 * phi[:, 1] + np.asarray(noise, np.float64)
    eps = data - th @ phi.T
    assert abs(eps.std() - 0.1) < 5 * 0.1 / math.sqrt(2 * eps.size)
    assert abs(th.std(axis=0) - 2.0).max() < 5 * 2.0 / math.sqrt(2 * th.shape[0])
    corr = np.corrcoef(np.c_[th, eps[:, :2]].T)
    assert np.abs(corr[np.triu_indices(4, 1)]).max() < 5 / math.sqrt(th.shape[0])
    # simulate= with the crux's own expressions gives the same law: new noise on y
    y = jno.np.sin(jno.np.pi * x)  # not data: refused
    with pytest.raises(TypeError, match="cannot replace"):
        Simulator(crux, {y: y})
    sim.check_affine(theta)


def test_simulation_errors_name_the_fix():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=10, keep=10, prior=lambda p: -0.5 * (p**2).sum())
    with pytest.raises(TypeError, match="cannot be sampled"):
        Simulator(jno.core([(a * x - 1.0).gaussian(std=0.1)]))
    b = jno.np.parameter((1,), name="b")
    b.bayesian(blackjax.nuts, warmup=10, keep=10, prior=jno.bayesian.priors.gaussian(1.0))
    with pytest.raises(ValueError, match="read none"):
        Simulator(jno.core([(b * x - 1.0).gaussian(std=0.1)]))
    eps = jno.noise.gaussian(std=0.1)
    crux = jno.core([(b * x - (x + eps) ** 2).gaussian(std=0.1)])
    sim = Simulator(crux)
    with pytest.raises(ValueError, match="not affine in its noise"):
        sim.check_affine(sim.batch(2, 0)[0])


def _sbc_result(seed=0):
    rng = np.random.default_rng(seed)
    theta, post = _conjugate(200, 400, rng)
    _, over = _conjugate(200, 400, np.random.default_rng(seed), shrink=0.5)
    t = np.c_[theta, theta]
    d = np.concatenate([post, over], axis=2)
    ranks = cal.ranks_of(t, d, 99)
    stat, p = cal.chi_square(ranks, 99, 10)
    band = cal.ecdf_band(200, 99, 0.95, seed=seed)
    return cal.SBCResult(
        ["exact", "overconfident"],
        t,
        ranks,
        99,
        10,
        stat,
        p,
        band,
        band.p_value(ranks, 99),
        cal.coverage_of(t, d),
    )


def test_sbc_ecdf_plot_draws_the_ecdf_differences_and_the_band():
    from figures import lines_by_label

    res = _sbc_result()
    fig = jno.plot.sbc_ecdf(res)
    assert len(fig.axes) == 2
    for p, ax in enumerate(fig.axes):
        lines = lines_by_label(ax)
        z = res.band.z
        np.testing.assert_allclose(lines["band lower"][1], res.band.lower - z)
        np.testing.assert_allclose(lines["band upper"][1], res.band.upper - z)
        (label,) = [k for k in lines if k.startswith(res.names[p])]
        np.testing.assert_allclose(lines[label][0], z)
        np.testing.assert_allclose(lines[label][1], res.ecdf[p] - z)
        # the ECDF is the fraction of ranks below i at z_i = i / (L + 1)
        np.testing.assert_allclose(res.ecdf[p][9], np.mean(res.ranks[:, p] < 10))
    assert res.inside_band.tolist() == [True, False]
    assert "overconfident" in res.coverage_table() and "95%" in res.coverage_table()
    with pytest.raises(ValueError, match="unknown parameter"):
        jno.plot.sbc_ecdf(res, parameters=["c"])
    matplotlib.pyplot.close("all")


def _check_sbc(res, calibrated):
    assert res.names == ["a[0]", "b[0]"] and res.ranks.shape == (200, 2)
    s = res.num_simulations
    for q, c in res.coverage.items():
        se = math.sqrt(q * (1 - q) / s)
        if calibrated:
            assert np.all(np.abs(c - q) < 4.5 * se), (q, c)
        elif q >= 0.8:
            assert np.all(c < q - 4.5 * se), (q, c)


@pytest.mark.slow
def test_sbc_two_coefficients_nuts_is_calibrated():
    """200 simulations of the guide's problem with its own likelihood: ranks uniform."""
    crux, *_ = _guide()
    res = jno.bayesian.sbc(crux, num_simulations=200, seed=1)
    assert np.all(res.p_values > 0.01), res
    _check_sbc(res, calibrated=True)


@pytest.mark.slow
def test_sbc_detects_a_likelihood_std_half_the_noise():
    """The likelihood's std is half the simulated noise's: overconfident, detected."""
    crux, *_ = _guide(std_likelihood=0.05)
    res = jno.bayesian.sbc(crux, num_simulations=200, seed=1)
    assert np.all(res.p_values < 0.01), res
    assert np.all(res.ecdf_p_values < 0.01) and not res.inside_band.any()
    _check_sbc(res, calibrated=False)


@pytest.mark.slow
def test_sbc_with_simulate_expressions_for_attached_data():
    """Data attached with dom.variable, simulated by the crux's own expressions plus a noise
    leaf: calibrated, and the simulated data are the expression at the prior draws."""
    π = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    y = dom.variable("y", np.zeros((x.pointset.size, 1)))
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=200, keep=400, prior=jno.bayesian.priors.gaussian(2.0))
    model = a * jno.np.sin(π * x) + b * jno.np.cos(π * x)
    crux = jno.core([(model - y).gaussian(std=0.1)], seed=0)
    simulate = {y: model + jno.noise.gaussian(std=0.1)}
    theta, (ys,) = Simulator(crux, simulate).batch(200, seed=2)
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    th = np.concatenate([np.asarray(t, np.float64) for t in theta], axis=1)
    eps = np.asarray(ys, np.float64)[..., 0] - th @ phi.T
    assert abs(eps.std() - 0.1) < 5 * 0.1 / math.sqrt(2 * eps.size)
    res = jno.bayesian.sbc(crux, num_simulations=200, simulate=simulate, seed=2, group=1)
    np.testing.assert_allclose(res.theta, th, rtol=1e-6)
    assert np.all(res.p_values > 0.01), res
    _check_sbc(res, calibrated=True)


def _exact_posterior_draws(phi, theta, rng, draws, std=0.1, prior_sd=2.0, shrink=1.0):
    """Data ``y_s = φ θ_s + N(0, std²)`` and ``draws`` of the exact posterior of ``(a, b)``
    under the prior ``N(0, prior_sd² I)`` (its sd scaled by ``shrink``): ``(S, N, 2)``."""
    y = theta @ phi.T + std * rng.normal(size=(theta.shape[0], phi.shape[0]))
    prec = phi.T @ phi / std**2 + np.eye(2) / prior_sd**2
    cov = np.linalg.inv(prec)
    mean = (y @ phi / std**2) @ cov
    z = rng.normal(size=(theta.shape[0], draws, 2)) @ np.linalg.cholesky(cov).T
    return mean[:, None, :] + shrink * z


def test_predictive_coverage_of_the_exact_posterior_of_a_sin_plus_b_cos():
    """u(x) = a sin(πx) + b cos(πx) evaluated by the predictive code at θ_s and at exact
    posterior draws: its values are φθ, its central intervals cover u(θ_s) with probability
    q at every point, and 2Φ(z_q/2) - 1 when the posterior sd is halved."""
    crux, a, b, x, _, phi = _guide(keep=10, warmup=10, mesh=0.05)
    sim = Simulator(crux)
    assert [m.model for m, _ in sim.members] == [a, b]
    u = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x)
    pred = cal._Predictive(crux, sim, {"u": u})
    rng = np.random.default_rng(5)
    num, draws = 1000, 400
    theta = 2.0 * rng.normal(size=(num, 2))
    exact = _exact_posterior_draws(phi, theta, rng, draws)
    split = lambda t: [t[..., :1].astype(np.float32), t[..., 1:].astype(np.float32)]  # noqa: E731
    (truth,) = pred.values(split(theta))
    (values,) = pred.draws(split(exact))
    np.testing.assert_allclose(truth, theta @ phi.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(values[:3], exact[:3] @ phi.T, rtol=1e-5, atol=1e-5)
    for shrink in (1.0, 0.5):
        post = (
            exact if shrink == 1.0 else _exact_posterior_draws(phi, theta, rng, draws, shrink=0.5)
        )
        (values,) = pred.draws(split(post))
        for q, c in cal.coverage_of(truth, values).items():
            zq = stats.norm.ppf((1 + q) / 2)
            want = q if shrink == 1.0 else 2 * stats.norm.cdf(zq / 2) - 1
            se = math.sqrt(want * (1 - want) / num)
            # every point is a binomial fraction of num simulations; 5 sd (quantiles of 400
            # draws add a little spread); their mean has at most the same sd
            assert c.shape == (phi.shape[0],) and np.all(np.abs(c - want) < 5 * se), (q, c)
            assert abs(c.mean() - want) < 4 * se, (q, c.mean(), want)
    eps = jno.noise.gaussian(std=0.1)
    with pytest.raises(ValueError, match="read jno.noise leaves"):
        cal._Predictive(crux, sim, {"noisy": u + eps})
    with pytest.raises(TypeError, match="predictive must be a dict"):
        cal._Predictive(crux, sim, [u])
    # data the simulations replace are not what the crux holds: refused
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    xd, _ = dom.variable("interior")
    y = dom.variable("y", np.zeros((xd.pointset.size, 1)))
    c = jno.np.parameter((1,), name="c", init=0.0)
    c.bayesian(blackjax.nuts, warmup=10, keep=10, prior=jno.bayesian.priors.gaussian(1.0))
    crux_y = jno.core([(c * xd - y).gaussian(std=0.1)])
    sim_y = Simulator(crux_y, {y: c * xd + jno.noise.gaussian(std=0.1)})
    with pytest.raises(ValueError, match="reads data that the simulations replace"):
        cal._Predictive(crux_y, sim_y, {"r": c * xd - y})
    cal._Predictive(crux_y, sim_y, {"cx": c * xd})


@pytest.mark.slow
def test_sbc_predictive_uses_the_draws_of_each_simulation():
    """A predictive expression equal to a parameter has that parameter's coverage exactly;
    the pooled table names every expression."""
    crux, a, b, x, _, phi = _guide(warmup=100, keep=150, mesh=0.1)
    u = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x)
    res = jno.bayesian.sbc(
        crux,
        num_simulations=12,
        seed=3,
        group=1,
        max_rank=49,
        bins=10,
        predictive={"a": a * 1.0, "b": b + 0.0, "u": u},
    )
    for q in res.coverage:
        assert res.predictive["a"][q].tolist() == [res.coverage[q][0]]
        assert res.predictive["b"][q].tolist() == [res.coverage[q][1]]
        assert res.predictive["u"][q].shape == (phi.shape[0],)
    table = res.predictive_table()
    assert all(n in table for n in ("a", "b", "u")) and "95%" in table
