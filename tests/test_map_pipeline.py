"""``jno.bayesian.map_pipeline``: multi-start MAP search, distinct modes, curvature, chain starts.

Fast tests call the initializer directly on closed-form log-densities: the linear-Gaussian
posterior of ``tests/test_initializers_solve.py`` (exact MAP and covariance) and Gaussian
mixtures (known modes and weights). The slow test runs it inside ``crux.solve`` with NUTS.
Each call compiles its own Adam and L-BFGS programs (about 2-4 s on a shared 2-core CPU).
"""

from __future__ import annotations

import logging

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.stats import norm
from test_initializers_solve import PHI, SIGMA, Y, exact_posterior, linear_gaussian

import jno

from stats import assert_gaussian_within

PRIOR_SIGMA = 2.0


def linear_gaussian_logdensity(theta: jax.Array) -> jax.Array:
    """``log p(θ | y)`` of the linear-Gaussian problem up to a constant (float32)."""
    r = jnp.asarray(PHI, jnp.float32) @ theta - jnp.asarray(Y[:, 0], jnp.float32)
    return -0.5 * r @ r / SIGMA**2 - 0.5 * theta @ theta / PRIOR_SIGMA**2


def mixture(weight: float, sd: float = 0.3):
    """``log(w N(θ; -2, sd²) + (1 - w) N(θ; 2, sd²))`` on ``{"a": (1,)}``."""

    def logdensity(position):
        x = position["a"][0]
        return jnp.logaddexp(
            jnp.log(weight) + norm.logpdf(x, -2.0, sd), jnp.log1p(-weight) + norm.logpdf(x, 2.0, sd)
        )

    return logdensity


def test_linear_gaussian_mode_and_dense_covariance_are_exact():
    """One mode at the closed-form MAP (posterior mean) within 1e-3 sd, and the dense IMM is
    the closed-form covariance. Tolerance: the Hessian of this quadratic is exact up to the
    float32 rounding of ΦᵀΦ/σ² (~1e-7 relative); inverting a precision of condition number
    ~5e3 amplifies that to at most ~5e-4 of sd_i·sd_j (measured: 2e-7)."""
    precision, mean, cov = exact_posterior(prior_sigma=PRIOR_SIGMA)
    sd = np.sqrt(np.diag(cov))
    mp = jno.bayesian.map_pipeline(adam_steps=300)  # fewer than the default 2000: test time
    starts, extra = mp(jax.random.key(1), linear_gaussian_logdensity, jnp.zeros(3), 4)
    assert mp.chains_per_mode.tolist() == [4] and mp.modes.shape == (1,)
    mode = np.asarray(mp.mode_positions)[0]
    assert np.all(np.abs(mode - mean) < 1e-3 * sd), (mode - mean) / sd
    f_map = -float(linear_gaussian_logdensity(jnp.asarray(mean, jnp.float32)))
    np.testing.assert_allclose(mp.modes[0], f_map, rtol=1e-5)
    imm = np.asarray(extra["inverse_mass_matrix"])
    assert imm.shape == (3, 3)
    assert np.all(np.abs(imm - cov) < 1e-3 * np.outer(sd, sd)), (imm - cov) / np.outer(sd, sd)
    starts = np.asarray(starts)
    assert starts.shape == (4, 3) and len({tuple(row) for row in starts}) == 4
    assert np.all(np.abs(starts - mean) < 5 * sd)  # draws from N(MAP, H⁻¹)
    # 8 starts x 300 Adam steps, then a vmapped L-BFGS (8 gradients per evaluation)
    assert mp.last_num_grad_evals > 8 * 300 and mp.last_num_grad_evals % 8 == 0
    assert set(mp.timings) == {"adam", "lbfgs", "curvature", "total"}


def test_diagonal_curvature_above_dense_limit_and_single_chain():
    """D > dense_limit: IMM = 1/diag(H) (the conditional variances); K=1 starts at the MAP."""
    precision, mean, cov = exact_posterior(prior_sigma=PRIOR_SIGMA)
    mp = jno.bayesian.map_pipeline(num_starts=2, adam_steps=0, dense_limit=2, max_rank=0)
    start, extra = mp(jax.random.key(0), linear_gaussian_logdensity, jnp.zeros(3), 1)
    np.testing.assert_allclose(extra["inverse_mass_matrix"], 1 / np.diag(precision), rtol=1e-4)
    assert np.all(np.abs(np.asarray(start) - mean) < 1e-3 * np.sqrt(np.diag(cov)))


def test_low_rank_curvature_above_dense_limit():
    """D = 40 > dense_limit, a Gaussian whose precision has a long ridge and a short
    direction: the diagonal plus rank-4 matrix has ``σ² = 1/diag(H)``, its eigenvalues
    ``1/Λ`` are the extreme eigenvalues of the whitened Hessian (numpy's ``eigh``), and it
    inverts H on the directions it holds (``M⁻¹ H w = w``)."""
    rng = np.random.default_rng(0)
    dim = 40
    q, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    spectrum = np.exp(rng.uniform(-1.0, 1.0, dim))
    spectrum[:2] = [1e-3, 2e-3]  # two long directions (a ridge)
    spectrum[2:4] = [300.0, 100.0]  # two short ones
    precision = (q * spectrum) @ q.T
    mean = rng.normal(size=dim)
    h32, m32 = jnp.asarray(precision, jnp.float32), jnp.asarray(mean, jnp.float32)

    def logdensity(theta):
        d = theta - m32
        return -0.5 * d @ h32 @ d

    mp = jno.bayesian.map_pipeline(num_starts=1, adam_steps=0, dense_limit=10, max_rank=4)
    _, extra = mp(jax.random.key(0), logdensity, jnp.zeros(dim), 1)
    imm = extra["inverse_mass_matrix"]
    assert isinstance(imm, blackjax.mcmc.metrics.LowRankInverseMassMatrix)
    sigma, u, lam = (np.asarray(a, np.float64) for a in imm)
    assert u.shape == (dim, 4) and "low_rank" in mp.timings
    np.testing.assert_allclose(sigma**2, 1 / np.diag(precision), rtol=1e-4)
    whitened = precision * np.outer(sigma, sigma)
    exact, vectors = np.linalg.eigh(whitened)  # ascending
    order = np.argsort(1 / lam)
    np.testing.assert_allclose((1 / lam)[order], np.r_[exact[:2], exact[-2:]], rtol=1e-3)
    ends = np.c_[vectors[:, :2], vectors[:, -2:]]
    np.testing.assert_array_less(0.999, np.abs(np.sum(u[:, order] * ends, axis=0)))
    m = sigma[:, None] * (np.eye(dim) + (u * (lam - 1)) @ u.T) * sigma[None, :]
    w = sigma[:, None] * u  # the directions the correction holds; float32 products at a
    # condition number of 3e5 leave the longest directions' vectors ~1e-3 off
    np.testing.assert_allclose(m @ precision @ w, w, atol=1e-2 * np.abs(w).max())


def test_bimodal_two_modes_and_chains_split(caplog):
    """Equal-weight mixture, starts spread wide: 2 modes of equal -log p, 2 chains in each
    within 5 sd; the start θ₀ = 0 is a stationary maximum of p (zero gradient), where the
    search stops: that optimum is dropped as not a mode."""
    mp = jno.bayesian.map_pipeline(num_starts=8, start_scale=3.0, adam_steps=300)
    with caplog.at_level(logging.INFO, logger="jno"):
        starts, extra = mp(jax.random.key(0), mixture(0.5), {"a": jnp.array([0.0])}, 4)
    assert mp.modes.shape == (2,) and mp.chains_per_mode.tolist() == [2, 2]
    np.testing.assert_allclose(mp.modes[0], mp.modes[1], rtol=1e-5)
    modes = np.sort(np.asarray(mp.mode_positions["a"])[:, 0])
    np.testing.assert_allclose(modes, [-2.0, 2.0], atol=1e-4)
    a = np.sort(np.asarray(starts["a"])[:, 0])
    assert np.all(np.abs(a - [-2, -2, 2, 2]) < 5 * 0.3), a
    np.testing.assert_allclose(extra["inverse_mass_matrix"], [[0.09]], rtol=1e-4)
    assert "dropped an optimum" in caplog.text
    assert "2 distinct mode(s)" in caplog.text


def test_evidence_allocation_follows_the_mode_weights():
    """Weights 0.75 / 0.25 (same width): the Laplace evidence recovers them and 4 chains are
    split 3 / 1; round-robin would give 2 / 2."""
    mp = jno.bayesian.map_pipeline(num_starts=8, start_scale=3.0, adam_steps=200)
    starts, _ = mp(jax.random.key(2), mixture(0.75), {"a": jnp.array([-0.5])}, 4)
    np.testing.assert_allclose(mp.mode_weights, [0.75, 0.25], rtol=1e-3)
    assert mp.chains_per_mode.tolist() == [3, 1]
    assert np.sum(np.asarray(starts["a"]) < 0) == 3


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"num_starts": 0}, "num_starts"),
        ({"num_starts": 2.5}, "num_starts"),
        ({"damping": -1.0}, "damping"),
        ({"start_scale": -0.1}, "start_scale"),
        ({"adam_lr": 0.0}, "adam_lr"),
        ({"allocation": "uniform"}, "allocation"),
        ({"merge_tol": float("nan")}, "merge_tol"),
    ],
)
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        jno.bayesian.map_pipeline(**kwargs)


def test_flat_direction_without_damping_is_a_clear_error():
    """θ₁ does not enter the log-density: H is singular, the error names the fix; damping
    gives θ₁ the sd 1/√δ. No search (adam_steps = lbfgs_steps = 0): the Hessian of this
    quadratic is the same everywhere."""

    def logdensity(theta):
        return -0.5 * theta[0] ** 2

    kw = dict(num_starts=1, adam_steps=0, lbfgs_steps=0)
    with pytest.raises(ValueError, match="damping"):
        jno.bayesian.map_pipeline(**kw)(jax.random.key(0), logdensity, jnp.ones(2), 1)
    _, extra = jno.bayesian.map_pipeline(damping=0.25, **kw)(
        jax.random.key(0), logdensity, jnp.ones(2), 1
    )
    np.testing.assert_allclose(extra["inverse_mass_matrix"], np.diag([1 / 1.25, 4.0]), rtol=1e-5)


@pytest.mark.slow  # statistical check; ~5 s: two NUTS solves
@pytest.mark.parametrize(
    "kernel_kw",
    [
        {"adapt": False, "step_size": 0.7, "warmup": 0},
        {"warmup": 100, "is_mass_matrix_diagonal": False},
        {"warmup": 100},
    ],
    ids=["fixed", "dense-adaptation", "diagonal-adaptation"],
)
def test_nuts_posterior_in_solve(kernel_kw):
    """Inside crux.solve: 4 NUTS chains from the pipeline's starts and dense IMM reproduce the
    closed-form posterior moments (fixed kernel, dense window adaptation started from the
    Laplace covariance, or the default diagonal adaptation started from its diagonal)."""
    _, mean, cov = exact_posterior(prior_sigma=PRIOR_SIGMA)
    theta, likelihood = linear_gaussian(start=0.0)
    mp = jno.bayesian.map_pipeline(adam_steps=200)
    theta.initialize(mp).bayesian(
        blackjax.nuts,
        prior=jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA),
        keep=500,
        num_chains=4,
        **kernel_kw,
    )
    crux = jno.core([likelihood])
    crux.solve()
    imm = np.asarray(crux.solver.state.blocks[0].tuned["inverse_mass_matrix"])
    diagonal_adaptation = kernel_kw.get("warmup") and kernel_kw.get("is_mass_matrix_diagonal", True)
    assert imm.shape == ((4, 3) if diagonal_adaptation else (4, 3, 3))
    if not kernel_kw.get("warmup"):
        sd = np.sqrt(np.diag(cov))
        assert np.all(np.abs(imm - cov) < 1e-3 * np.outer(sd, sd))
    assert mp.chains_per_mode.tolist() == [4]
    assert_gaussian_within(np.asarray(theta.posterior_samples), mean, np.sqrt(np.diag(cov)))


@pytest.mark.slow  # statistical check: one NUTS solve
def test_low_rank_metric_from_the_pipeline_drives_nuts():
    """Above ``dense_limit`` the pipeline's diagonal plus rank-2 matrix reaches a fixed NUTS
    kernel that keeps rank 1 (``max_rank=1``: its leading, longest direction): the draws
    reproduce the closed-form posterior."""
    _, mean, cov = exact_posterior(prior_sigma=PRIOR_SIGMA)
    theta, likelihood = linear_gaussian(start=0.0)
    mp = jno.bayesian.map_pipeline(adam_steps=200, dense_limit=1, max_rank=2)
    theta.initialize(mp).bayesian(
        blackjax.nuts,
        prior=jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA),
        keep=500,
        num_chains=4,
        adapt=False,
        step_size=0.5,
        warmup=0,
        max_rank=1,
    )
    crux = jno.core([likelihood])
    crux.solve()
    imm = crux.solver.state.blocks[0].tuned["inverse_mass_matrix"]
    assert isinstance(imm, blackjax.mcmc.metrics.LowRankInverseMassMatrix)
    assert np.shape(imm.U) == (4, 3, 1) and np.all(np.asarray(imm.lam) != 1.0)
    assert_gaussian_within(np.asarray(theta.posterior_samples), mean, np.sqrt(np.diag(cov)))
