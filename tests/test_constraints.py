"""Constrained parameters (``jno.np.parameter(..., constraint=...)``, ``jno.constraints``).

Truths: NumPyro's ``biject_to`` for the transforms and their log-Jacobians; the conjugate
Gamma posterior of a Gaussian precision under a Gamma prior (written on the constrained value);
a quadrature of a posterior truncated to an interval (wrong without the Jacobian); the
closed-form maximum-likelihood noise scale for an optimiser moving the unconstrained value.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno

from stats import assert_gaussian_within

CONSTRAINTS = [
    ("positive", jno.constraints.positive),
    ("unit_interval", jno.constraints.unit_interval),
    ("greater_than", jno.constraints.greater_than(1.5)),
    ("less_than", jno.constraints.less_than(3.0)),
    ("interval", jno.constraints.interval(-1.0, 2.0)),
]


@pytest.mark.parametrize("name, c", CONSTRAINTS)
def test_transforms_are_numpyros(name, c):
    dist = pytest.importorskip("numpyro.distributions")
    ours = {"greater_than": dist.constraints.greater_than(1.5),
            "less_than": dist.constraints.less_than(3.0),
            "interval": dist.constraints.interval(-1.0, 2.0)}.get(name)
    ours = ours if ours is not None else getattr(dist.constraints, name)
    t = dist.transforms.biject_to(ours)
    u = jnp.linspace(-4.0, 4.0, 17)
    np.testing.assert_allclose(c.forward(u), t(u), rtol=1e-6)
    np.testing.assert_allclose(c.inverse(t(u)), u, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        float(c.log_abs_det_jacobian(u)), float(jnp.sum(t.log_abs_det_jacobian(u, t(u)))),
        rtol=1e-5,
    )
    assert c.contains(t(u)) or name == "unit_interval"  # sigmoid(±4) is inside (0, 1)


def _precision_problem(n=40, seed=0):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1.0 / (n + 1)))
    x, _ = dom.variable("interior")
    n = dom.points("interior").shape[0]
    ys = np.random.default_rng(seed).normal(0.0, 0.5, size=n)  # precision 4
    y = dom.variable("y", ys.astype(np.float32))
    return x, y, ys


def test_gamma_prior_on_a_positive_precision_gives_the_conjugate_posterior():
    alpha, beta = 2.0, 1.0
    x, y, ys = _precision_problem()
    tau = jno.np.parameter((1,), name="tau", constraint=jno.constraints.positive)
    prior = lambda t: jnp.sum(jax.scipy.stats.gamma.logpdf(t, alpha, scale=1.0 / beta))  # noqa: E731
    tau.bayesian(blackjax.nuts, warmup=500, keep=1000, num_chains=4, init_jitter=0.3,
                 prior=prior)
    crux = jno.core([(y + 0.0 * x).gaussian(std=tau**-0.5)], seed=2)
    crux.solve(print_rate=500)
    draws = np.asarray(tau.posterior_samples)[..., 0]
    a_post, b_post = alpha + ys.size / 2, beta + np.sum(ys**2) / 2  # Gamma(a, rate b)
    assert_gaussian_within(draws, a_post / b_post, np.sqrt(a_post) / b_post, what="tau")
    assert np.all(draws > 0) and float(tau.module[0]) > 0
    # eval pushes the constrained draws (not u) through expressions
    np.testing.assert_allclose(crux.eval([2.0 * tau])[..., 0], 2.0 * draws, rtol=1e-5)


def test_interval_posterior_is_the_truncated_one():
    """A flat prior on (0, 1) and Gaussian data near the upper end: the posterior is the
    likelihood truncated to (0, 1), which the Jacobian of the sigmoid makes the draws follow."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    n = dom.points("interior").shape[0]
    ys = 0.9 + 0.5 * np.random.default_rng(3).normal(size=n)
    y = dom.variable("y", ys.astype(np.float32))
    p = jno.np.parameter((1,), name="p", constraint=jno.constraints.unit_interval)
    p.bayesian(blackjax.nuts, warmup=500, keep=1500, num_chains=4, init_jitter=0.3,
               prior=lambda t: 0.0 * jnp.sum(t))
    jno.core([(p - y).gaussian(std=0.5)], seed=1).solve(print_rate=500)
    grid = np.linspace(0.0, 1.0, 200001)[1:-1]
    logp = -0.5 * np.sum((grid[:, None] - ys[None]) ** 2, axis=1) / 0.25
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = float(np.sum(w * grid))
    sd = float(np.sqrt(np.sum(w * (grid - mean) ** 2)))
    draws = np.asarray(p.posterior_samples)[..., 0]
    assert np.all((draws > 0) & (draws < 1))
    assert_gaussian_within(draws, mean, sd, what="p")


def test_an_optimiser_finds_the_constrained_maximum_likelihood():
    """``Σ r²/(2σ²) + n log σ`` is least at ``σ = sqrt(mean r²)``: L-BFGS on ``u = log σ``."""
    x, y, ys = _precision_problem(seed=5)
    sigma = jno.np.parameter((1,), name="sigma", constraint=jno.constraints.positive)
    sigma.optimizer(optax.lbfgs())
    assert float(sigma.module[0]) == 1.0  # T(0): the centre of the support
    jno.core([(y + 0.0 * x).gaussian(std=sigma)]).solve(40, print_rate=40)
    np.testing.assert_allclose(float(sigma.module[0]), np.sqrt(np.mean(ys**2)), rtol=1e-4)


def test_bad_constraints_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="outside the support of constraint=positive"):
        jno.np.parameter((1,), name="s", init=-1.0, constraint=jno.constraints.positive)
    s_pos = jno.np.parameter((1,), name="s", constraint=jno.constraints.positive)
    with pytest.raises(ValueError, match="outside the support of constraint=positive"):
        s_pos.initialize(jnp.array([-0.5]))
    with pytest.raises(TypeError, match="constraint must be one of jno.constraints"):
        jno.np.parameter((1,), name="s", constraint="positive")
    with pytest.raises(ValueError, match="lower must be below upper"):
        jno.constraints.interval(2.0, 1.0)
    with pytest.raises(ValueError, match="must be finite"):
        jno.constraints.greater_than(float("inf"))
    x, y, _ = _precision_problem()
    s = jno.np.parameter((1,), name="s", constraint=jno.constraints.positive)
    s.bayesian(blackjax.nuts, warmup=10, keep=10)
    crux = jno.core([(y + 0.0 * x).gaussian(std=s)])
    with pytest.raises(ValueError, match="has a constraint; streamed draws"):
        crux.solve(store=tmp_path / "draws.zarr")


@pytest.mark.slow
def test_mean_field_vi_on_a_positive_precision_reaches_the_closed_form_optimum():
    """Mean-field VI moves ``u = log τ``. Under the Gamma(a, b) posterior the density of ``u``
    is ``∝ exp(a u - b e^u)`` (the Jacobian included), and the Gaussian ``q = N(m, s²)``
    maximising the ELBO solves ``a = b e^{m + s²/2}`` and ``s² = 1/a``:
    ``m* = log(a/b) - 1/(2a)``, ``s* = 1/sqrt(a)``. Without the Jacobian the optimum is the same
    formula at ``a - 1`` (here 0.14 lower in ``m``, 35 MCSE)."""
    alpha, beta = 2.0, 1.0
    x, y, ys = _precision_problem(n=10, seed=1)
    a, b = alpha + ys.size / 2, beta + np.sum(ys**2) / 2
    m_star, s_star = np.log(a / b) - 1 / (2 * a), 1 / np.sqrt(a)
    tau = jno.np.parameter((1,), name="tau", constraint=jno.constraints.positive)
    prior = lambda t: jnp.sum(jax.scipy.stats.gamma.logpdf(t, alpha, scale=1.0 / beta))  # noqa: E731
    schedule = optax.cosine_decay_schedule(0.05, 3000, alpha=0.01)
    tau.vi(blackjax.meanfield_vi, optimizer=optax.adam(schedule), num_samples=32,
           posterior_draws=8000, prior=prior)
    jno.core([(y + 0.0 * x).gaussian(std=tau**-0.5)], seed=2).solve(3000, print_rate=1000)
    draws = np.asarray(tau.posterior_samples)
    assert np.all(draws > 0)
    # i.i.d. draws of q: MCSE = s/sqrt(8000) for the mean, s/sqrt(2·8000) for the sd; 0.01 is
    # the stated allowance for the variational parameters' last stochastic-gradient steps
    u = np.log(draws).ravel()
    assert abs(u.mean() - m_star) < 4 * s_star / np.sqrt(u.size) + 0.01
    assert abs(u.std() - s_star) < 5 * s_star / np.sqrt(2 * u.size) + 0.01


@pytest.mark.slow
@pytest.mark.parametrize("initializer", ["pathfinder", "laplace"])
def test_log_density_initializers_start_in_the_unconstrained_space(initializer):
    """Pathfinder and Laplace run on the same log-density of ``u`` (Jacobian included); the
    NUTS chains they start reach the conjugate Gamma posterior of the precision."""
    alpha, beta = 2.0, 1.0
    x, y, ys = _precision_problem()
    tau = jno.np.parameter((1,), name="tau", constraint=jno.constraints.positive)
    prior = lambda t: jnp.sum(jax.scipy.stats.gamma.logpdf(t, alpha, scale=1.0 / beta))  # noqa: E731
    tau.bayesian(blackjax.nuts, warmup=300, keep=1000, num_chains=4, prior=prior)
    tau.initialize(getattr(jno.bayesian, initializer)())
    jno.core([(y + 0.0 * x).gaussian(std=tau**-0.5)], seed=2).solve(print_rate=650)
    a_post, b_post = alpha + ys.size / 2, beta + np.sum(ys**2) / 2
    draws = np.asarray(tau.posterior_samples)[..., 0]
    assert_gaussian_within(draws, a_post / b_post, np.sqrt(a_post) / b_post, what="tau")


@pytest.mark.slow
def test_a_checkpoint_resumes_in_u_and_refuses_another_constraint(tmp_path):
    def build(constraint):
        x, y, _ = _precision_problem()
        s = jno.np.parameter((1,), name="s", constraint=constraint)
        s.bayesian(blackjax.nuts, warmup=20, keep=20, num_chains=2, init_jitter=0.1)
        return jno.core([(y + 0.0 * x).gaussian(std=s)], seed=1), s

    path = tmp_path / "run.ckpt"
    crux, s = build(jno.constraints.positive)
    crux.solve(print_rate=20, checkpoint=path)
    again, s2 = build(jno.constraints.positive)
    again.solve(print_rate=20, resume_from=path)
    np.testing.assert_array_equal(s2.posterior_samples, s.posterior_samples)
    assert np.all(np.asarray(s2.posterior_samples) > 0)
    other, _ = build(jno.constraints.greater_than(0.01))
    with pytest.raises(jno.CheckpointError, match="constraint=positive"):
        other.solve(print_rate=20, resume_from=path)
