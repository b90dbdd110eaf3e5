"""NUTS with a dense inverse mass matrix adapted in warm-up (``is_mass_matrix_diagonal=False``)
and ``target_acceptance_rate``: both go to ``blackjax.window_adaptation``; a diagonal plus
low-rank one (``max_rank=``) goes to ``blackjax.window_adaptation_low_rank``.

Independent truths: the closed-form Gaussian posterior of a linear model whose two features
are nearly collinear (posterior correlation about -0.99), in float64 numpy; the adapted dense
matrix against that covariance (the warm-up's last window estimates it, so its correlation
must be close to the exact one); and the cost of the diagonal metric on the same posterior,
which has to follow the long, thin ridge with many leapfrog steps per draw.
"""

import blackjax
import numpy as np
import pytest

import jno

from collinear import collinear_problem
from stats import assert_gaussian_within


def _problem(**kw):
    return collinear_problem(
        blackjax.nuts, warmup=500, keep=1000, num_chains=4, init_jitter=0.5, **kw
    )


@pytest.mark.slow
def test_dense_adaptation_learns_the_posterior_covariance():
    crux, th, mean, cov = _problem(is_mass_matrix_diagonal=False)
    rho = cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1])
    assert rho < -0.98
    draws = np.asarray(th.posterior_samples)  # (4, 1000, 2)
    for i in range(2):
        assert_gaussian_within(draws[..., i], mean[i], np.sqrt(cov[i, i]), what=f"theta[{i}]")
    imm = np.asarray(crux.solver.state.blocks[0].tuned["inverse_mass_matrix"])
    assert imm.shape == (4, 2, 2)  # one dense matrix per chain
    # each chain's matrix is its warm-up estimate of the covariance: the correlation of ~0.99
    # is what makes the metric work, and a diagonal could not hold it
    r = imm[:, 0, 1] / np.sqrt(imm[:, 0, 0] * imm[:, 1, 1])
    np.testing.assert_array_less(r, -0.9)
    np.testing.assert_allclose(np.sqrt(imm[:, 0, 0]), np.sqrt(cov[0, 0]), rtol=0.5)
    # the ridge costs the diagonal metric many more gradients per draw
    dense_grads = crux.solver.grad_evals
    diag, *_ = _problem()
    assert diag.solver.grad_evals > 3 * dense_grads


@pytest.mark.slow
def test_target_acceptance_rate_reaches_the_adaptation():
    low, th_low, *_ = _problem(target_acceptance_rate=0.6)
    high, th_high, *_ = _problem(target_acceptance_rate=0.95)
    acc_low = float(np.mean(th_low.posterior_diagnostics["acceptance_rate"]))
    acc_high = float(np.mean(th_high.posterior_diagnostics["acceptance_rate"]))
    step = lambda c: np.asarray(c.solver.state.blocks[0].tuned["step_size"])  # noqa: E731
    assert np.all(step(high) < step(low))
    # dual averaging tunes the warm-up's mean acceptance to the target; the kept draws land
    # near it (measured 0.96 and 0.76: a small step size overshoots a low target)
    assert acc_high > 0.9 and acc_high > acc_low + 0.1


def _low_rank_matrices(imm) -> np.ndarray:
    """``diag(σ)(I + U(Λ - I)Uᵀ)diag(σ)`` per chain, in float64."""
    s, u, lam = (np.asarray(a, np.float64) for a in imm)
    eye = np.eye(s.shape[-1])
    core = eye + np.einsum("cik,ck,cjk->cij", u, lam - 1.0, u)
    return s[:, :, None] * core * s[:, None, :]


@pytest.mark.slow
def test_low_rank_adaptation_learns_the_ridge():
    """``max_rank=1`` on the -0.99 ridge: one correlated direction is what a rank-1 correction
    holds, so the adapted matrix carries the posterior's correlation, the draws match the
    closed form, and the ridge costs far fewer gradients than under the diagonal metric."""
    crux, th, mean, cov = _problem(max_rank=1)
    draws = np.asarray(th.posterior_samples)  # (4, 1000, 2)
    for i in range(2):
        assert_gaussian_within(draws[..., i], mean[i], np.sqrt(cov[i, i]), what=f"theta[{i}]")
    imm = crux.solver.state.blocks[0].tuned["inverse_mass_matrix"]
    assert isinstance(imm, blackjax.mcmc.metrics.LowRankInverseMassMatrix)
    assert np.shape(imm.U) == (4, 2, 1)  # one (σ, U, Λ) per chain
    m = _low_rank_matrices(imm)
    r = m[:, 0, 1] / np.sqrt(m[:, 0, 0] * m[:, 1, 1])
    np.testing.assert_array_less(r, -0.9)
    np.testing.assert_allclose(np.sqrt(m[:, 0, 0]), np.sqrt(cov[0, 0]), rtol=0.5)
    low_rank_grads = crux.solver.grad_evals
    diag, *_ = _problem()
    assert diag.solver.grad_evals > 2 * low_rank_grads


@pytest.mark.slow
def test_low_rank_metric_from_an_initializer_without_adaptation():
    """``adapt=False``: the kernel runs with the Laplace initializer's diagonal as the
    low-rank form's ``σ² = 1 / diag(H)`` (Λ = 1), for the exact Hessian of a Gaussian."""
    th = jno.np.parameter((3,), name="theta")
    th.bayesian(blackjax.nuts, warmup=0, keep=5, num_chains=2, adapt=False, step_size=0.1,
                max_rank=2)
    th.initialize(jno.bayesian.laplace())
    prec = np.array([4.0, 25.0, 100.0])  # the precision of each coordinate (prior N(0, 10²) too)
    target = np.array([1.0, -2.0, 0.5])
    crux = jno.core([((th - target) * np.sqrt(prec)).gaussian(std=1.0)], seed=0)
    crux.solve()
    imm = crux.solver.state.blocks[0].tuned["inverse_mass_matrix"]
    assert isinstance(imm, blackjax.mcmc.metrics.LowRankInverseMassMatrix)
    exact = 1.0 / (prec + 1.0 / 10.0**2)
    np.testing.assert_allclose(np.asarray(imm.sigma) ** 2, np.broadcast_to(exact, (2, 3)),
                               rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(imm.lam), np.ones((2, 2)))


def test_adaptation_keywords_are_checked():
    th = jno.np.parameter((2,), name="theta")
    with pytest.raises(ValueError, match="target_acceptance_rate=1.5"):
        th.bayesian(blackjax.nuts, target_acceptance_rate=1.5)
    with pytest.raises(TypeError, match="is_mass_matrix_diagonal='no'"):
        th.bayesian(blackjax.nuts, is_mass_matrix_diagonal="no")
    with pytest.raises(TypeError, match="does not accept `is_mass_matrix_diagonal`"):
        th.bayesian(blackjax.mala, step_size=0.1, is_mass_matrix_diagonal=False)
    with pytest.raises(TypeError, match="max_rank=0"):
        th.bayesian(blackjax.nuts, max_rank=0)
    with pytest.raises(TypeError, match="max_rank=2.5"):
        th.bayesian(blackjax.nuts, max_rank=2.5)
    with pytest.raises(ValueError, match="choose one metric"):
        th.bayesian(blackjax.nuts, max_rank=2, is_mass_matrix_diagonal=False)
    with pytest.raises(ValueError, match="starts from a diagonal"):
        th.bayesian(blackjax.nuts, max_rank=1, inverse_mass_matrix=np.eye(2))
    with pytest.raises(TypeError, match="does not accept `max_rank`"):
        th.bayesian(blackjax.mala, step_size=0.1, max_rank=2)
