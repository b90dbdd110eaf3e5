"""Adaptive tempered SMC (``.bayesian(blackjax.adaptive_tempered_smc, num_particles=P)``) and
``crux.evidence()``.

Independent truths: the evidence of a conjugate linear-Gaussian model,
``y ~ N(0, σ²I + s²ΦΦᵀ)`` in float64 scipy; its posterior in closed form; and the mode
weights of a two-mode posterior (``y_i ~ N(θ², σ²)``, a prior off-centre) by quadrature on a
grid. Tolerances are Monte-Carlo standard errors from the spread of K independent SMC runs.
"""

import blackjax
import numpy as np
import pytest
from scipy.stats import multivariate_normal

import jno
from jno.constraints import positive
from jno.solve.blocks.smc import log_evidence
from jno.solve.plan import ConstrainedPrior

from stats import assert_gaussian_within

SIGMA, PRIOR = 0.1, 1.0


def _linear(num_particles=2000, num_chains=16, **kw):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 1.0 * x - 0.5 + jno.noise.gaussian(std=SIGMA)
    th = jno.np.parameter((2,), name="theta")
    th.bayesian(
        blackjax.adaptive_tempered_smc,
        num_particles=num_particles,
        num_chains=num_chains,
        prior=jno.bayesian.priors.gaussian(sigma=PRIOR),
        **kw,
    )
    crux = jno.core([(th[0] * x + th[1] - target).gaussian(std=SIGMA)], seed=1)
    crux.solve()
    xs = np.asarray(dom.points("interior")[:, 0], np.float64)
    y = np.asarray(crux.eval([target])[:, 0], np.float64)
    phi = np.stack([xs, np.ones_like(xs)], axis=1)
    return crux, th, phi, y


@pytest.mark.slow
def test_evidence_and_posterior_of_a_conjugate_linear_model():
    crux, th, phi, y = _linear()
    exact = multivariate_normal(
        np.zeros(len(y)), SIGMA**2 * np.eye(len(y)) + PRIOR**2 * phi @ phi.T
    )
    log_z, se = crux.evidence()
    assert np.isfinite(se) and 0 < se < 0.1
    assert abs(log_z - exact.logpdf(y)) < 4 * se, (log_z, se, exact.logpdf(y))
    # the particles are the posterior draws, (runs, particles, *param)
    draws = np.asarray(th.posterior_samples)
    assert draws.shape == (16, 2000, 2)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + np.eye(2) / PRIOR**2)
    mean = cov @ phi.T @ y / SIGMA**2
    for i in range(2):
        assert_gaussian_within(draws[..., i], mean[i], np.sqrt(cov[i, i]), what=f"theta[{i}]")
    _, steps = crux.history.metrics["tempering_steps:'theta'"]  # run 0's, one solve step
    assert steps.shape == (1,) and steps[0] > 1


# two modes, θ ≈ ±1: the likelihood is symmetric, the prior N(0.3, 1) favours θ > 0
Y_MODES = np.array([0.96, 1.05, 0.99, 1.02, 0.98])[:, None]
SIGMA_MODES, PRIOR_MEAN = 0.1, 0.3


def _modes_problem():
    dom = jno.domain(constructor=jno.domain.points(np.linspace(0, 1, len(Y_MODES))[:, None]))
    y = dom.variable("y", Y_MODES)
    th = jno.np.parameter((1,), name="theta", init=1.0)
    return th, (th[0] ** 2 - y).gaussian(std=SIGMA_MODES)


def _positive_mode_weight() -> float:
    t = np.linspace(-3, 3, 600001)
    log_post = (
        -0.5 * np.sum((t[:, None] ** 2 - Y_MODES[:, 0]) ** 2, axis=1) / SIGMA_MODES**2
        - 0.5 * (t - PRIOR_MEAN) ** 2
    )
    w = np.exp(log_post - log_post.max())
    return float(w[t > 0].sum() / w.sum())


class _Shifted:
    """N(PRIOR_MEAN, 1) on a scalar-like parameter, with the draws SMC needs."""

    def __call__(self, theta):
        return jno.bayesian.priors.gaussian(sigma=1.0)(theta - PRIOR_MEAN)

    def sample(self, key, like):
        return PRIOR_MEAN + jno.bayesian.priors.gaussian(sigma=1.0).sample(key, like)


@pytest.mark.slow
def test_smc_weighs_two_modes_where_nuts_chains_stay_in_one():
    truth = _positive_mode_weight()
    assert 0.6 < truth < 0.75  # both modes carry mass

    th, constraint = _modes_problem()
    th.bayesian(blackjax.adaptive_tempered_smc, num_particles=2000, num_chains=8, prior=_Shifted())
    jno.core([constraint], seed=3).solve()
    frac = np.mean(np.asarray(th.posterior_samples)[..., 0] > 0, axis=1)  # per run
    se = np.std(frac, ddof=1) / np.sqrt(len(frac))
    pooled = np.sqrt(truth * (1 - truth) / frac.size / 2000)  # a floor: binomial at i.i.d.
    tol = 4 * max(se, pooled)
    assert abs(frac.mean() - truth) < tol, (frac, truth, tol)

    th, constraint = _modes_problem()
    th.bayesian(
        blackjax.nuts, warmup=300, keep=300, num_chains=4, init_jitter=0.1, prior=_Shifted()
    )
    jno.core([constraint], seed=3).solve()
    nuts = float(np.mean(np.asarray(th.posterior_samples)[..., 0] > 0))
    assert abs(nuts - truth) > 4 * tol  # the chains never cross the barrier at θ = 0


def test_constrained_prior_draws_follow_the_prior_restricted_to_the_support():
    import jax

    prior = ConstrainedPrior(jno.bayesian.priors.gaussian(sigma=1.0), positive, jacobian=True)
    u = jax.vmap(lambda k: prior.sample(k, np.zeros(1, np.float32)))(
        jax.random.split(jax.random.key(0), 20000)
    )
    theta = np.exp(np.asarray(u, np.float64)[:, 0])
    # a standard normal restricted to θ > 0 is the half-normal: mean sqrt(2/π), sd sqrt(1-2/π)
    sd = np.sqrt(1 - 2 / np.pi)
    assert abs(theta.mean() - np.sqrt(2 / np.pi)) < 4 * sd / np.sqrt(theta.size)


def test_log_evidence_combines_runs_by_their_mean_evidence():
    values = np.log([1.0, 2.0, 3.0, 6.0])
    log_z, se = log_evidence(values)
    assert log_z == pytest.approx(np.log(3.0))
    assert se == pytest.approx(np.std([1 / 3, 2 / 3, 1.0, 2.0], ddof=1) / 2)
    assert np.isnan(log_evidence([0.5])[1])


def test_configuration_errors_name_the_argument():
    th = jno.np.parameter((2,), name="theta")
    smc = blackjax.adaptive_tempered_smc
    with pytest.raises(ValueError, match="num_particles=1"):
        th.bayesian(smc, num_particles=1)
    with pytest.raises(ValueError, match="target_ess=1.5"):
        th.bayesian(smc, target_ess=1.5)
    with pytest.raises(TypeError, match=r"num_steps=\.\.\.\): not a keyword"):
        th.bayesian(smc, num_steps=3)
    with pytest.raises(TypeError, match="use blackjax.adaptive_tempered_smc"):
        th.bayesian(blackjax.tempered_smc)
    with pytest.raises(ValueError, match="together"):
        th.bayesian(smc, mcmc_step_fn=blackjax.rmh.build_kernel())
    with pytest.raises(TypeError, match="sample\\(key, like\\)"):
        th.bayesian(smc, prior=lambda p: 0.0)


def test_smc_must_be_alone_and_evidence_needs_smc():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((), name="a")
    b = jno.np.parameter((), name="b")
    a.bayesian(blackjax.adaptive_tempered_smc, num_particles=10)
    crux = jno.core([(a * x + b - x).gaussian(std=0.1)], seed=0)
    with pytest.raises(ValueError, match="only trained models"):
        crux.solve()
    with pytest.raises(ValueError, match="adaptive_tempered_smc"):
        crux.evidence()
