"""Tests of the log-density-aware initializers (pathfinder, laplace, svgd)."""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from blackjax.vi.svgd import rbf_kernel
from blackjax.vi.svgd import update_median_heuristic as median
from jax.flatten_util import ravel_pytree

from jno.bayesian.initializers import (
    SVGD,
    BayesianInitializer,
    Laplace,
    Pathfinder,
    laplace,
    pathfinder,
    svgd,
)
from jno.bayesian.initializers._base import GradCounter

from stats import assert_corr_within, assert_gaussian_within, assert_mean_within

# A correlated, anisotropic 4-d Gaussian: precision P (condition number ~26), mean MU.
PRECISION = np.array(
    [
        [4.0, 1.2, 0.0, 0.3],
        [1.2, 2.0, -0.5, 0.0],
        [0.0, -0.5, 1.0, 0.2],
        [0.3, 0.0, 0.2, 0.25],
    ]
)
MU = np.array([1.0, -2.0, 0.5, 3.0])
COVARIANCE = np.linalg.inv(PRECISION)  # float64 reference
MARGINAL_SD = np.sqrt(np.diag(COVARIANCE))


def gaussian_logdensity(x: jax.Array) -> jax.Array:
    d = x - MU
    return -0.5 * d @ jnp.asarray(PRECISION, jnp.float32) @ d


def distinct_rows(a: np.ndarray) -> bool:
    return len({tuple(row) for row in np.asarray(a).reshape(a.shape[0], -1)}) == a.shape[0]


# ----------------------------------------------------------------------------- protocol


def test_builtins_implement_the_protocol() -> None:
    for init in (pathfinder(), laplace(), svgd()):
        assert isinstance(init, BayesianInitializer)
        assert type(init).requires_logdensity is True
        assert init.last_num_grad_evals is None
    assert (pathfinder, laplace, svgd) == (Pathfinder, Laplace, SVGD)


def test_user_subclass_and_invalid_arguments() -> None:
    class Shift(BayesianInitializer):
        def __call__(self, rng_key, logdensity_fn, position, num_chains):
            return jax.tree.map(lambda x: x + 1.0, position), {}

    assert Shift().requires_logdensity
    with pytest.raises(TypeError, match="abstract"):
        BayesianInitializer()
    with pytest.raises(ValueError, match="hessian"):
        laplace(hessian="block")
    with pytest.raises(ValueError, match="dense_imm"):
        laplace(dense_imm=True)
    with pytest.raises(ValueError, match="num_particles"):
        svgd(num_particles=1)
    with pytest.raises(ValueError, match="num_chains"):
        laplace()(jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 0)


def test_grad_counter_counts_loops_and_vmapped_batches() -> None:
    counter = GradCounter()
    counted = counter.wrap(lambda x: -jnp.sum(jnp.sin(x)))

    @jax.jit
    def run(x):
        x = jax.lax.fori_loop(0, 7, lambda _, y: y - 0.1 * jax.grad(counted)(y), x)
        return x, jax.vmap(jax.grad(counted))(jnp.ones((5, 3)))

    outputs = run(jnp.ones(3))
    counted(jnp.ones(3))  # forward-only: not counted
    assert counter.total(outputs) == 12


# ----------------------------------------------------------------------------- laplace


def test_laplace_diag_map_and_inverse_hessian_diagonal() -> None:
    init = laplace(hessian="diag")
    position, extra = init(jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1)
    assert position.shape == (4,)
    np.testing.assert_allclose(position, MU, atol=1e-4)
    # "diag" keeps only diag(H): the inverse mass matrix is 1 / H_ii exactly.
    np.testing.assert_allclose(extra["inverse_mass_matrix"], 1.0 / np.diag(PRECISION), rtol=1e-4)
    assert isinstance(init.last_num_grad_evals, int) and 0 < init.last_num_grad_evals < 100


@pytest.mark.slow
def test_laplace_full_diagonal_of_inverse_and_dense_imm() -> None:
    position, extra = laplace(hessian="full")(
        jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1
    )
    np.testing.assert_allclose(position, MU, atol=1e-4)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], np.diag(COVARIANCE), rtol=1e-4)

    _, dense = laplace(hessian="full", dense_imm=True)(
        jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1
    )
    assert dense["inverse_mass_matrix"].shape == (4, 4)
    np.testing.assert_allclose(dense["inverse_mass_matrix"], COVARIANCE, rtol=1e-4, atol=1e-5)


def test_laplace_diag_multichain_starts() -> None:
    init = laplace(hessian="diag")
    starts, extra = init(jax.random.key(1), gaussian_logdensity, jnp.zeros(4), 6)
    assert starts.shape == (6, 4)
    assert extra["inverse_mass_matrix"].shape == (4,)
    assert np.all(np.isfinite(starts)) and distinct_rows(starts)
    # N(θ*, diag(H)^-1): per-coordinate spread sqrt(1 / H_ii), here sampled by six draws.
    assert np.all(np.asarray(starts).std(0) < 3.0 / np.sqrt(np.diag(PRECISION)))


def test_laplace_full_draws_follow_the_gaussian_approximation() -> None:
    """4000 i.i.d. starts from N(θ*, H⁻¹) with θ* = MU, H = PRECISION (exact for a Gaussian):
    each marginal mean at 4 MCSE, sd at 5 MCSE_sd, and every correlation at 5 MCSE of the
    exact covariance (tests/stats.py; ESS ≈ 4000, so the sd tolerance is ≈ 5.6 %)."""
    starts, _ = laplace(hessian="full")(jax.random.key(2), gaussian_logdensity, jnp.zeros(4), 4000)
    assert starts.shape == (4000, 4) and distinct_rows(starts)
    starts = np.asarray(starts, np.float64)
    assert_gaussian_within(starts, MU, MARGINAL_SD, what="laplace draws")
    corr = COVARIANCE / np.outer(MARGINAL_SD, MARGINAL_SD)
    for i in range(4):
        for j in range(i + 1, 4):
            assert_corr_within(starts[:, i], starts[:, j], corr[i, j], what=f"corr[{i},{j}]")


def test_laplace_optax_adam_optimizer() -> None:
    position, extra = laplace(optimizer=optax.adam(5e-2), num_steps=3000)(
        jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1
    )
    np.testing.assert_allclose(position, MU, atol=1e-3)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], 1.0 / np.diag(PRECISION), rtol=1e-4)


def _jaxpr_array_sizes(jaxpr: jax.extend.core.Jaxpr) -> list[int]:
    """Sizes of every array variable in ``jaxpr`` and all sub-jaxprs (jit, loops, conds)."""
    sizes = []
    for eqn in jaxpr.eqns:
        sizes += [int(np.prod(v.aval.shape)) for v in eqn.outvars if hasattr(v.aval, "shape")]
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                if isinstance(sub, jax.extend.core.ClosedJaxpr):
                    sizes += _jaxpr_array_sizes(sub.jaxpr)
                elif isinstance(sub, jax.extend.core.Jaxpr):
                    sizes += _jaxpr_array_sizes(sub)
    return sizes


def test_laplace_diag_large_dimension_never_builds_a_dense_matrix() -> None:
    # Tridiagonal precision: P_ii = a_i, P_{i,i+1} = P_{i+1,i} = c. Never formed densely.
    dim, c = 2000, 0.3
    a = jnp.linspace(1.0, 4.0, dim)
    mean = jnp.sin(jnp.arange(dim, dtype=jnp.float32))

    def logdensity(x):
        d = x - mean
        return -0.5 * jnp.sum(a * d**2) - c * jnp.sum(d[:-1] * d[1:])

    init = laplace(hessian="diag")
    position, extra = init(jax.random.key(0), logdensity, jnp.zeros(dim), 1)
    np.testing.assert_allclose(position, mean, atol=1e-3)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], 1.0 / a, rtol=1e-4)

    def imm_of(mode):
        return lambda x: laplace(hessian=mode)(jax.random.key(0), logdensity, x, 1)[1]

    diag_sizes = _jaxpr_array_sizes(jax.make_jaxpr(imm_of("diag"))(jnp.zeros(dim)).jaxpr)
    full_sizes = _jaxpr_array_sizes(jax.make_jaxpr(imm_of("full"))(jnp.zeros(dim)).jaxpr)
    assert max(full_sizes) >= dim * dim  # the inspection does see dense Hessians
    assert max(diag_sizes) < dim * dim / 10


def test_laplace_traced_call_reports_no_count() -> None:
    init = laplace()
    jax.jit(lambda x: init(jax.random.key(0), gaussian_logdensity, x, 1)[0])(jnp.zeros(4))
    assert init.last_num_grad_evals is None


def test_laplace_singular_hessian_needs_damping() -> None:
    def flat_in_x1(x):  # no curvature at all along x[1]
        return -0.5 * (x[0] - 1.0) ** 2

    with pytest.raises(ValueError, match="positive definite"):
        laplace()(jax.random.key(0), flat_in_x1, jnp.zeros(2), 1)
    _, extra = laplace(damping=1e-2)(jax.random.key(0), flat_in_x1, jnp.zeros(2), 1)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], [1 / 1.01, 100.0], rtol=1e-5)


# ----------------------------------------------------------------------------- svgd


@pytest.mark.slow
def test_svgd_particles_match_gaussian_moments() -> None:
    mean, sd = np.array([1.0, -2.0]), np.array([0.5, 2.0])

    def logdensity(x):
        return -0.5 * jnp.sum(((x - mean) / sd) ** 2)

    """The 128 starts and the mass matrix equal blackjax.svgd run by hand with the same key,
    jitter (θ₀ + 0.1·ε), default optimizer and median-heuristic RBF kernel (an identity at
    float32 round-off). SVGD's finite-particle variance is biased low by construction
    (the docstring), so against the target only a factor-√2 error is ruled out."""
    init = svgd(num_steps=500)
    particles, extra = init(jax.random.key(0), logdensity, jnp.zeros(2), 128)
    particles = np.asarray(particles)
    assert particles.shape == (128, 2) and distinct_rows(particles)
    assert init.last_num_grad_evals == 128 * 500

    opt = optax.adam(optax.cosine_decay_schedule(0.1, 500, alpha=1e-3))
    algo = blackjax.svgd(
        jax.grad(logdensity), opt, kernel=rbf_kernel, update_kernel_parameters=median
    )
    x0 = 0.1 * jax.random.normal(jax.random.key(0), (128, 2))
    state = median(algo.init(x0, {"length_scale": 1.0}))
    state = jax.jit(lambda s: jax.lax.fori_loop(0, 500, lambda _, t: algo.step(t), s))(state)
    by_hand = np.asarray(state.particles)
    np.testing.assert_allclose(particles, by_hand, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], by_hand.var(0), rtol=1e-4)
    ratio = np.sqrt(by_hand.var(0)) / sd
    assert np.all((ratio > 2**-0.5) & (ratio < 2**0.5)), ratio


def test_svgd_single_chain_uses_minimum_particles_and_no_imm() -> None:
    init = svgd(num_steps=200)
    position, extra = init(jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1)
    assert position.shape == (4,) and extra == {}
    assert init.last_num_grad_evals == 8 * 200
    # The highest-density particle of 8: well inside the bulk of the target.
    assert np.linalg.norm((np.asarray(position) - MU) / MARGINAL_SD) < 2.0


# ----------------------------------------------------------------------------- pathfinder


@pytest.mark.slow
def test_pathfinder_single_chain_position_and_imm() -> None:
    init = pathfinder(maxiter=30, num_samples=200)
    position, extra = init(jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1)
    assert position.shape == (4,)
    assert np.all(np.abs(np.asarray(position) - MU) <= 0.01 * MARGINAL_SD)
    ratio = np.asarray(extra["inverse_mass_matrix"]) / np.diag(COVARIANCE)
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio
    assert isinstance(init.last_num_grad_evals, int) and 0 < init.last_num_grad_evals < 100


@pytest.mark.slow
def test_pathfinder_centre_is_a_quasi_newton_step_towards_the_mode() -> None:
    """With a 6-iterate path the single-chain start is μ = θ_l + Σ_l ∇log p(θ_l), built here
    by hand from blackjax's own pathfinder state (same key split, Σ_l = diag(α) + β γ βᵀ as a
    dense matrix), and the mass matrix is the variance of 200 draws of N(μ, Σ_l) made by hand
    with the same key. μ is nearer the mode than θ_l (a step towards it), in the target's
    own metric (blackjax 1.7.1's reflected centre would be farther)."""
    position, extra = pathfinder(maxiter=6)(
        jax.random.key(0), gaussian_logdensity, jnp.zeros(4), 1
    )
    key_fit, key_imm, _ = jax.random.split(jax.random.key(0), 3)
    state, _ = jax.jit(
        lambda key: blackjax.vi.pathfinder.approximate(
            key, gaussian_logdensity, jnp.zeros(4), 200, maxiter=6, maxcor=10, ftol=1e-5,
            gtol=1e-8, maxls=1000,
        )
    )(key_fit)
    theta = np.asarray(state.position, np.float64)
    sigma = np.diag(np.asarray(state.alpha, np.float64)) + np.asarray(
        state.beta, np.float64
    ) @ np.asarray(state.gamma, np.float64) @ np.asarray(state.beta, np.float64).T
    grad = -PRECISION @ (theta - MU)
    centre = theta + sigma @ grad
    np.testing.assert_allclose(position, centre, rtol=1e-4, atol=1e-4)
    zero = state._replace(grad_position=jnp.zeros_like(state.grad_position))
    draws = np.asarray(
        jax.jit(lambda k: blackjax.vi.pathfinder.sample(k, zero, 200)[0])(key_imm), np.float64
    )
    np.testing.assert_allclose(extra["inverse_mass_matrix"], draws.var(0), rtol=1e-3)

    def distance(x):
        return float((x - MU) @ PRECISION @ (x - MU))

    assert distance(np.asarray(position, np.float64)) < distance(theta)


# ----------------------------------------------------------------------------- pytrees

TREE_SHAPES = {"w": (2, 3), "b": (4,)}
TREE_DIM = 10


def tree_logdensity(tree) -> jax.Array:
    flat, _ = ravel_pytree(tree)
    scales = jnp.linspace(0.5, 1.5, TREE_DIM)
    return -0.5 * jnp.sum(((flat - 1.0) / scales) ** 2)


@pytest.mark.parametrize(
    ("init", "num_chains"),
    [
        (laplace(hessian="diag"), 1),
        (laplace(hessian="diag"), 3),
        (laplace(hessian="full"), 3),
        (svgd(num_steps=50, num_particles=16), 1),
        (svgd(num_steps=50, num_particles=16), 3),
    ],
    ids=[
        "laplace-diag-K1",
        "laplace-diag-K3",
        "laplace-full-K3",
        "svgd-K1",
        "svgd-K3",
    ],
)
def test_pytree_positions_round_trip(init: BayesianInitializer, num_chains: int) -> None:
    position = {name: jnp.zeros(shape) for name, shape in TREE_SHAPES.items()}
    starts, extra = init(jax.random.key(0), tree_logdensity, position, num_chains)
    assert jax.tree.structure(starts) == jax.tree.structure(position)
    lead = () if num_chains == 1 else (num_chains,)
    assert {k: v.shape for k, v in starts.items()} == {
        k: (*lead, *shape) for k, shape in TREE_SHAPES.items()
    }
    assert all(v.dtype == jnp.float32 for v in starts.values())
    assert extra["inverse_mass_matrix"].shape == (TREE_DIM,)
    if num_chains > 1:
        assert distinct_rows(np.asarray(starts["w"]))


@pytest.mark.slow
def test_pathfinder_multichain_starts_on_a_pytree() -> None:
    position = {name: jnp.zeros(shape) for name, shape in TREE_SHAPES.items()}
    starts, extra = pathfinder()(jax.random.key(3), tree_logdensity, position, 4)
    assert {k: v.shape for k, v in starts.items()} == {
        k: (4, *shape) for k, shape in TREE_SHAPES.items()
    }
    assert extra["inverse_mass_matrix"].shape == (TREE_DIM,)
    flat = np.asarray(jax.vmap(lambda tree: ravel_pytree(tree)[0])(starts))
    assert np.all(np.isfinite(flat)) and distinct_rows(flat)



@pytest.mark.slow
def test_pathfinder_draws_follow_the_target_on_a_gaussian() -> None:
    """4000 multi-chain starts are i.i.d. draws of pathfinder's q. On this diagonal Gaussian
    (mean 1, sds 0.5 to 1.5) q's mean is the mode to 5 MCSE, and each sd is within the
    factor √2 the suite is built to catch (q is an L-BFGS approximation of the covariance,
    not the exact one: a collapsed or exploded q fails, a 10-20 % error does not)."""
    position = {name: jnp.zeros(shape) for name, shape in TREE_SHAPES.items()}
    starts, _ = pathfinder()(jax.random.key(3), tree_logdensity, position, 4000)
    flat = np.asarray(jax.vmap(lambda tree: ravel_pytree(tree)[0])(starts))
    assert distinct_rows(flat)
    scales = np.linspace(0.5, 1.5, TREE_DIM)
    assert_mean_within(flat, np.ones(TREE_DIM), 5.0, sd=scales, what="pathfinder q mean")
    ratio = flat.std(0) / scales
    assert np.all((ratio > 2**-0.5) & (ratio < 2**0.5)), ratio
