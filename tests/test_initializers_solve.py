"""Log-density initializers inside ``crux.solve``, checked against closed forms.

The target is a linear-Gaussian inverse problem: ``y = Φ θ + ε``, ``ε ~ N(0, σ²)``, written
as ``(Φ(x) @ θ - y).gaussian(std=σ)`` with a ``priors.gaussian(sigma=s)`` prior. Its posterior
is exactly Gaussian with precision ``H = ΦᵀΦ/σ² + I/s²`` and mean ``H⁻¹ Φᵀ y / σ²``, so the
Laplace mass matrix, the MAP, the posterior moments and the head of a masked network all have
independent closed forms.
"""

from __future__ import annotations

import logging
import warnings

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from blackjax.vi.svgd import rbf_kernel
from blackjax.vi.svgd import update_median_heuristic as median

import jno
from jno.bayesian.initializers import BayesianInitializer
from jno.solve import streams as st

from stats import assert_gaussian_within, assert_mean_within

SIGMA = 0.2  # observation noise
N_OBS = 25
XS = np.linspace(0.0, 1.0, N_OBS)[:, None]
# Nearly orthogonal sine features with very different scales: posterior sds differ by 100x.
SCALES = np.array([3.0, 0.3, 0.03])
PHI = np.concatenate([np.sin(k * np.pi * XS) for k in (1, 2, 3)], axis=1) * SCALES
THETA_TRUE = np.array([1.5, -0.7, 0.4]) / SCALES
Y = PHI @ THETA_TRUE[:, None] + SIGMA * np.random.default_rng(0).normal(size=(N_OBS, 1))


def exact_posterior(prior_sigma):
    """Precision, mean and covariance of the linear-Gaussian posterior (float64)."""
    precision = PHI.T @ PHI / SIGMA**2 + np.eye(3) / prior_sigma**2
    cov = np.linalg.inv(precision)
    mean = cov @ (PHI.T @ Y[:, 0]) / SIGMA**2
    return precision, mean, cov


def linear_gaussian(start=0.0):
    """``(theta, constraint)`` of the linear-Gaussian problem; ``theta`` starts at ``start``."""
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    theta = jno.np.parameter((3,), name="theta", init=start)
    phi = jno.np.concat(
        [float(SCALES[k - 1]) * jno.np.sin(k * jno.np.pi * x) for k in (1, 2, 3)], axis=-1
    )
    residual = (phi @ theta)[..., None] - y
    return theta, residual.gaussian(std=SIGMA)


class Spy(BayesianInitializer):
    """Wraps an initializer and records what the solver handed it and what it returned."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = []

    def __call__(self, rng_key, logdensity_fn, position, num_chains):
        new, extra = self.inner(rng_key, logdensity_fn, position, num_chains)
        self.calls.append(
            {
                "position": position,
                "num_chains": num_chains,
                "logdensity": logdensity_fn,
                "start": jax.tree.map(np.asarray, new),
                "extra": {k: np.asarray(v) for k, v in extra.items()},
            }
        )
        self.last_num_grad_evals = self.inner.last_num_grad_evals
        return new, extra


class FixedStart(BayesianInitializer):
    """Returns the given starts and kernel arguments, computing nothing."""

    def __init__(self, start, extra):
        self.start, self.extra = start, extra

    def __call__(self, rng_key, logdensity_fn, position, num_chains):
        return jax.tree.map(lambda _: jnp.asarray(self.start), position), dict(self.extra)


def stay(logdensity_fn, step_size):
    """A kernel that never moves: every recorded draw is the chain's start."""
    del logdensity_fn, step_size

    def init(position):
        return {"position": position}

    def step(key, state):
        return state, {}

    return blackjax.base.SamplingAlgorithm(init, step)


def stay_with_imm(logdensity_fn, step_size, inverse_mass_matrix=None):
    """Like :func:`stay`, but the kernel takes an inverse mass matrix."""
    del inverse_mass_matrix
    return stay(logdensity_fn, step_size)


def only(tree):
    """The single leaf of a one-parameter block position (a dict keyed by the member)."""
    (leaf,) = jax.tree.leaves(tree)
    return np.asarray(leaf)


def member(tree):
    """The value of a one-member block position ``{member key: value}``."""
    (value,) = tree.values()
    return value


def tuned(crux, block=0):
    return {k: np.asarray(v) for k, v in crux.solver.state.blocks[block].tuned.items()}


@pytest.fixture(autouse=True)
def _quiet_jno():
    logger = logging.getLogger("jno")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


# ----------------------------------------------------------------------------- Laplace


@pytest.mark.slow
def test_laplace_mass_matrix_is_the_exact_inverse_hessian_diagonal():
    """adapt=False + laplace(): the kernel runs with IMM = 1/diag(H), the user's step size,
    and K distinct starts drawn from N(θ*, diag(H)⁻¹)."""
    precision, mean, _ = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=0.0)
    spy = Spy(jno.bayesian.laplace())
    theta.initialize(spy)
    theta.bayesian(
        blackjax.nuts,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=0.37,
        adapt=False,
        warmup=0,
        keep=30,
        num_chains=4,
    )
    crux = jno.core([likelihood])
    crux.solve()
    t = tuned(crux)
    np.testing.assert_allclose(
        t["inverse_mass_matrix"], np.broadcast_to(1 / np.diag(precision), (4, 3)), rtol=1e-4
    )
    np.testing.assert_array_equal(t["step_size"], np.full(4, 0.37, np.float32))
    (call,) = spy.calls
    assert call["num_chains"] == 4 and only(call["position"]).shape == (3,)
    starts = only(call["start"])
    assert starts.shape == (4, 3)
    assert len({tuple(row) for row in starts}) == 4  # K distinct starts
    z = (starts - mean) * np.sqrt(np.diag(precision))  # standardised by the Laplace sd
    assert np.all(np.abs(z) < 5), z
    assert spy.last_num_grad_evals > 0
    draws = theta.posterior_samples
    assert draws.shape == (4, 30, 3)
    assert len({tuple(np.round(d, 6)) for d in draws[:, 0]}) == 4  # the chains differ


def test_laplace_single_chain_start_is_the_exact_map():
    _, mean, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=5.0)
    spy = Spy(jno.bayesian.laplace())
    theta.initialize(spy).bayesian(
        stay, prior=jno.bayesian.priors.gaussian(sigma=2.0), step_size=1.0, warmup=0, keep=2
    )
    jno.core([likelihood]).solve()
    start = only(spy.calls[0]["start"])
    assert start.shape == (3,)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(start - mean) < 1e-3 * sd), (start - mean) / sd
    np.testing.assert_array_equal(theta.posterior_samples, np.broadcast_to(start, (2, 3)))


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.slow
def test_laplace_full_hessian_mass_matrix(dense):
    """hessian='full': IMM = diag(H⁻¹) (marginal variances) or, dense, H⁻¹ itself."""
    _, _, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian()
    theta.initialize(jno.bayesian.laplace(hessian="full", dense_imm=dense))
    theta.bayesian(
        blackjax.hmc,
        num_integration_steps=3,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=0.5,
        adapt=False,
        warmup=0,
        keep=5,
        num_chains=2,
    )
    crux = jno.core([likelihood])
    crux.solve()
    imm = tuned(crux)["inverse_mass_matrix"]
    expected = cov if dense else np.diag(cov)
    np.testing.assert_allclose(
        imm, np.broadcast_to(expected, (2, *expected.shape)), rtol=1e-3, atol=1e-6
    )


def test_solver_uses_initializer_starts_verbatim_and_ignores_init_jitter():
    starts = np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, -3.0], [0.5, 0.0, 9.0]], np.float32)
    theta, likelihood = linear_gaussian()
    theta.initialize(FixedStart(starts, {}))
    theta.bayesian(stay, step_size=1.0, warmup=0, keep=3, num_chains=3, init_jitter=10.0)
    jno.core([likelihood]).solve()
    np.testing.assert_array_equal(
        theta.posterior_samples, np.broadcast_to(starts[:, None], (3, 3, 3))
    )


# ----------------------------------------------------------------------------- pathfinder


def _pathfinder_or_plain(use_pathfinder: bool, warmup: int):
    """4-chain NUTS with window adaptation from θ₀ = 5 (hundreds of posterior sds away in the
    narrow direction); returns (initializer grads, solver grads, R-hat, ESS, chain)."""
    theta, likelihood = linear_gaussian(start=5.0)
    init = jno.bayesian.pathfinder(maxiter=30, num_samples=200) if use_pathfinder else None
    if init is not None:
        theta.initialize(init)
    theta.bayesian(
        blackjax.nuts,
        prior=jno.bayesian.priors.gaussian(sigma=10.0),
        warmup=warmup,
        keep=500,
        num_chains=4,
        init_jitter=1.0,
    )
    crux = jno.core([likelihood])
    crux.solve()
    chain = theta.posterior_samples
    return (
        0 if init is None else init.last_num_grad_evals,
        crux.solver.grad_evals,
        float(np.max(jno.bayesian.rhat(chain))),
        float(np.min(jno.bayesian.ess(chain))),
        chain,
    )


@pytest.mark.slow  # ~25 s: in CI's slow selection
def test_pathfinder_then_window_adaptation_needs_fewer_gradients(record_property):
    """Measured (seed 0, this problem, jax 0.10.2, blackjax 1.7.1): pathfinder 35 + solver
    8 360 = 8 395 gradients with warmup=50 (R-hat 1.002, min ESS 1 507); window adaptation
    alone: 45 255 (warmup=100, R-hat 1.006), 35 246 (200, R-hat 1.002), 38 888 (400, R-hat
    1.004). All keep 500 draws x 4 chains."""
    _, mean, cov = exact_posterior(prior_sigma=10.0)
    pf_init, pf_solver, pf_rhat, pf_ess, pf_chain = _pathfinder_or_plain(True, warmup=50)
    pl_init, pl_solver, pl_rhat, pl_ess, pl_chain = _pathfinder_or_plain(False, warmup=200)
    record_property("pathfinder_grads", (pf_init, pf_solver))
    record_property("plain_grads", pl_solver)
    print(
        f"\npathfinder: {pf_init} + {pf_solver} = {pf_init + pf_solver} grads, R-hat {pf_rhat:.4f}, "
        f"ESS {pf_ess:.0f}\nplain:      {pl_solver} grads, R-hat {pl_rhat:.4f}, ESS {pl_ess:.0f}"
    )
    assert pf_rhat < 1.01 and pl_rhat < 1.01
    assert 0 < pf_init < 200
    assert pf_init + pf_solver < 0.5 * pl_solver
    # both sample the right posterior (4 Monte-Carlo standard errors)
    for chain in (pf_chain, pl_chain):
        assert_mean_within(np.asarray(chain), mean, 4.0, sd=np.sqrt(np.diag(cov)))


# ----------------------------------------------------------------------------- SVGD


@pytest.mark.slow
def test_svgd_starts_and_mass_matrix():
    """K=4 SVGD starts (16 particles give an IMM), adapt=False, user step size; the NUTS
    chains then reproduce the exact posterior moments."""
    _, mean, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=0.0)
    spy = Spy(jno.bayesian.svgd(num_steps=250, num_particles=16))
    theta.initialize(spy)
    theta.bayesian(
        blackjax.nuts,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=0.5,
        adapt=False,
        warmup=50,
        keep=1000,  # 300 a chain left the sd's MCSE too wide for the sqrt(2) guard (ESS 283)
        num_chains=4,
    )
    crux = jno.core([likelihood])
    crux.solve()
    starts = only(spy.calls[0]["start"])
    assert starts.shape == (4, 3) and len({tuple(r) for r in starts}) == 4
    assert spy.last_num_grad_evals == 16 * 250
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(starts - mean) < 5 * sd)  # the particles sit in the posterior
    imm = tuned(crux)["inverse_mass_matrix"]
    np.testing.assert_array_equal(
        imm, np.broadcast_to(spy.calls[0]["extra"]["inverse_mass_matrix"], (4, 3))
    )
    # The mass matrix is the particle variance of blackjax.svgd run by hand on the exact
    # log-posterior with the solve's init key, jitter and optimizer.
    precision = np.linalg.inv(cov)
    grad = lambda z: -jnp.asarray(precision, jnp.float32) @ (z - jnp.asarray(mean, jnp.float32))
    opt = optax.adam(optax.cosine_decay_schedule(0.1, 250, alpha=1e-3))
    svgd = blackjax.svgd(grad, opt, kernel=rbf_kernel, update_kernel_parameters=median)
    key = st.init_key(crux.streams, 0)
    x0 = jnp.zeros(3) + 0.1 * jax.random.normal(key, (16, 3))
    state = median(svgd.init(x0, {"length_scale": 1.0}))
    state = jax.jit(lambda s: jax.lax.fori_loop(0, 250, lambda _, t: svgd.step(t), s))(state)
    np.testing.assert_allclose(imm[0], np.var(np.asarray(state.particles), axis=0), rtol=1e-3)
    np.testing.assert_allclose(starts, np.asarray(state.particles)[:4], rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(tuned(crux)["step_size"], np.full(4, 0.5, np.float32))
    assert_gaussian_within(np.asarray(theta.posterior_samples), mean, sd, what="theta")


# ----------------------------------------------------------------------------- behaviour matrix


@pytest.mark.parametrize("adapt", [False, True])
@pytest.mark.parametrize("with_init", [False, True])
@pytest.mark.slow
def test_behaviour_matrix(adapt, with_init):
    """The seed's table: which step size and IMM the kernel ends up with. HMC with a fixed
    number of leapfrog steps L also pins the gradient counter exactly: every transition,
    adaptation included, costs L gradients per chain."""
    precision, _, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=0.0)
    spy = Spy(jno.bayesian.laplace())
    if with_init:
        theta.initialize(spy)
    warmup, keep, leapfrog, chains = 60, 10, 3, 2
    theta.bayesian(
        blackjax.hmc,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=0.01,
        num_integration_steps=leapfrog,
        adapt=adapt,
        warmup=warmup,
        keep=keep,
        num_chains=chains,
    )
    crux = jno.core([likelihood])
    crux.solve()
    t = tuned(crux)
    assert len(spy.calls) == (1 if with_init else 0)
    assert crux.solver.grad_evals == leapfrog * (warmup + keep) * chains
    if not adapt:
        np.testing.assert_array_equal(t["step_size"], np.full(2, 0.01, np.float32))  # user's, kept
        expected = 1 / np.diag(precision) if with_init else np.ones(3)
        np.testing.assert_allclose(
            t["inverse_mass_matrix"], np.broadcast_to(expected, (2, 3)), rtol=1e-4
        )
    else:
        assert not np.any(t["step_size"] == np.float32(0.01))  # tuned by window adaptation
        assert len(set(t["step_size"].tolist())) == 2  # each chain adapts on its own
        assert not np.allclose(t["inverse_mass_matrix"], 1.0)
        if with_init:
            assert not np.allclose(
                t["inverse_mass_matrix"][0], spy.calls[0]["extra"]["inverse_mass_matrix"]
            )


def test_mala_takes_the_warm_start_and_drops_the_mass_matrix():
    """MALA has no inverse mass matrix: the Laplace IMM is dropped without a word (and adapt=True
    is ignored), the MAP start is used (a tiny MALA step stays at the MAP)."""
    _, mean, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=5.0)
    theta.initialize(jno.bayesian.laplace())
    theta.bayesian(
        blackjax.mala,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=1e-10,
        adapt=True,
        warmup=0,
        keep=3,
    )
    crux = jno.core([likelihood])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        crux.solve()
    assert "inverse_mass_matrix" not in tuned(crux)
    first = theta.posterior_samples[0]
    assert np.all(np.abs(first - mean) < 1e-2 * np.sqrt(np.diag(cov)))


def test_sgld_takes_the_warm_start():
    _, mean, cov = exact_posterior(prior_sigma=2.0)
    theta, likelihood = linear_gaussian(start=5.0)
    theta.initialize(jno.bayesian.laplace())
    theta.bayesian(
        blackjax.sgld,
        prior=jno.bayesian.priors.gaussian(sigma=2.0),
        step_size=1e-12,
        warmup=0,
        keep=2,
    )
    crux = jno.core([likelihood])
    crux.solve()
    assert "inverse_mass_matrix" not in tuned(crux)
    assert np.all(np.abs(theta.posterior_samples[0] - mean) < 1e-2 * np.sqrt(np.diag(cov)))


@pytest.mark.parametrize(
    ("factory", "keeps_imm"), [(stay, False), (stay_with_imm, True)], ids=["no-imm", "imm"]
)
def test_custom_kernel_signature_gates_the_mass_matrix(factory, keeps_imm):
    theta, likelihood = linear_gaussian()
    theta.initialize(FixedStart(np.zeros((2, 3)), {"inverse_mass_matrix": np.full(3, 0.25)}))
    theta.bayesian(factory, step_size=1.0, warmup=0, keep=2, num_chains=2)
    crux = jno.core([likelihood])
    crux.solve()
    t = tuned(crux)
    if keeps_imm:
        np.testing.assert_array_equal(t["inverse_mass_matrix"], np.full((2, 3), 0.25))
    else:
        assert "inverse_mass_matrix" not in t


# ----------------------------------------------------------------------------- masks


@pytest.mark.slow
def test_masked_pathfinder_sees_only_the_head():
    """net.mask(head).bayesian() + pathfinder: the initializer's position and log-density are
    the head's only; the body stays at its initial weights; the head's log-density is the
    linear-Gaussian one of the body's (fixed) features, whose mode pathfinder finds."""
    width = 6
    module = jno.nn.mlp(1, hidden_dims=width, num_layers=1, key=jax.random.PRNGKey(3))
    net = jno.nn.wrap(module, name="u")
    all_false = jax.tree.map(lambda _: False, net.module)
    head = eqx.tree_at(
        lambda m: m.output_layer,
        all_false,
        replace=jax.tree.map(lambda _: True, net.module.output_layer),
    )
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    spy = Spy(jno.bayesian.pathfinder(maxiter=30, num_samples=200))
    net.initialize(spy)
    prior_sigma = 1.0
    net.mask(head).bayesian(
        blackjax.hmc,
        num_integration_steps=3,
        prior=jno.bayesian.priors.gaussian(sigma=prior_sigma),
        step_size=0.01,
        adapt=False,
        warmup=0,
        keep=10,
    )
    crux = jno.core([(net(x) - y).gaussian(std=SIGMA)])
    crux.solve()
    (call,) = spy.calls
    leaves = jax.tree.leaves(call["position"])
    assert sorted(np.shape(leaf) for leaf in leaves) == [(1,), (1, width)]
    # exact head posterior given the fixed body features
    layer = module.layers[0]
    feats = np.tanh(XS @ np.asarray(layer.weight).T + np.asarray(layer.bias))  # (N, width)
    design = np.concatenate([feats, np.ones((N_OBS, 1))], axis=1)  # weight row, then bias
    precision = design.T @ design / SIGMA**2 + np.eye(width + 1) / prior_sigma**2
    mean = np.linalg.solve(precision, design.T @ Y[:, 0] / SIGMA**2)
    sd = np.sqrt(np.diag(np.linalg.inv(precision)))
    start = member(call["start"])
    got = np.concatenate([np.ravel(start.output_layer.weight), np.ravel(start.output_layer.bias)])
    assert np.all(np.abs(got - mean) < 0.1 * sd), (got - mean) / sd

    # the head's log-density as seen by the initializer: differences match the closed form
    def exact_logp(w):
        r = design @ w - Y[:, 0]
        return -0.5 * r @ r / SIGMA**2 - 0.5 * w @ w / prior_sigma**2

    shifted = jax.tree.map(lambda a: a + 0.01, call["position"])
    head0 = member(call["position"]).output_layer
    w0 = np.concatenate([np.ravel(head0.weight), np.ravel(head0.bias)])
    diff = float(call["logdensity"](shifted) - call["logdensity"](call["position"]))
    np.testing.assert_allclose(diff, exact_logp(w0 + 0.01) - exact_logp(w0), rtol=1e-3)
    imm = tuned(crux)["inverse_mass_matrix"]
    assert imm.shape == (1, width + 1)
    # body constant along the chain and equal to its initial value
    samples = net.posterior_samples
    np.testing.assert_array_equal(
        samples.layers[0].weight, np.broadcast_to(layer.weight, (10, width, 1))
    )
    assert np.ptp(np.asarray(samples.output_layer.bias)) > 0


# ----------------------------------------------------------------------------- errors


def test_vi_with_an_initializer_is_an_error_in_either_order():
    theta, _ = linear_gaussian()
    theta.initialize(jno.bayesian.pathfinder())
    with pytest.raises(ValueError, match="initializ"):
        theta.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2))
    theta2, _ = linear_gaussian()
    theta2.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2))
    with pytest.raises(ValueError, match="VI|vi"):
        theta2.initialize(jno.bayesian.pathfinder())


def test_substeps_with_an_initializer_is_an_error():
    theta, likelihood = linear_gaussian()
    offset = jno.np.parameter((1,), name="offset", init=0.0)
    theta.initialize(jno.bayesian.laplace())
    theta.bayesian(blackjax.nuts, step_size=0.1, adapt=False, warmup=0, keep=5)
    crux = jno.core([likelihood, (offset - 1.0).mse])
    with pytest.raises(ValueError, match="initializer"):
        crux.solve(10, substeps=[([likelihood], [theta]), ([1], [offset])])


# ----------------------------------------------------------------------------- regressions
# Found while writing this file and fixed in the solver (commit d0b14fe).


def test_initializer_sees_the_unjittered_initial_position():
    """init_jitter is overridden by an initializer, so the initializer starts from the model's
    own initial value (it used to receive chain 0's jittered start)."""
    theta, likelihood = linear_gaussian(start=0.0)
    spy = Spy(FixedStart(np.zeros((2, 3)), {}))
    theta.initialize(spy).bayesian(
        stay, step_size=1.0, warmup=0, keep=1, num_chains=2, init_jitter=3.0
    )
    jno.core([likelihood]).solve()
    np.testing.assert_array_equal(only(spy.calls[0]["position"]), np.zeros(3))


def test_laplace_stops_at_the_float32_floor():
    """From this start L-BFGS used to cycle between two float32-adjacent points whose
    objectives differ by 2 ulp (> the old ftol=1e-7), spending all 500 steps (4 673
    gradients) and warning, although it sat at the mode."""
    theta, likelihood = linear_gaussian()
    theta.initialize(np.array([4.673598, 1.5891685, -0.14731446], np.float32))
    lap = jno.bayesian.laplace()
    theta.initialize(lap).bayesian(
        stay, prior=jno.bayesian.priors.gaussian(sigma=2.0), step_size=1.0, warmup=0, keep=1
    )
    jno.core([likelihood]).solve()
    assert lap.last_num_grad_evals < 200, lap.last_num_grad_evals


def test_wrongly_shaped_initializer_output_is_a_clear_error():
    """Starts without the (K,) chain axis used to fail inside vmap ('inconsistent sizes')."""
    theta, likelihood = linear_gaussian()
    theta.initialize(FixedStart(np.zeros(3), {}))  # K=2 needs (2, 3)
    theta.bayesian(stay, step_size=1.0, warmup=0, keep=1, num_chains=2)
    with pytest.raises(ValueError, match="initializer"):
        jno.core([likelihood]).solve()
