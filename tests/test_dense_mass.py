"""NUTS with a dense inverse mass matrix adapted in warm-up (``is_mass_matrix_diagonal=False``)
and ``target_acceptance_rate``: both go to ``blackjax.window_adaptation``.

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


def test_adaptation_keywords_are_checked():
    th = jno.np.parameter((2,), name="theta")
    with pytest.raises(ValueError, match="target_acceptance_rate=1.5"):
        th.bayesian(blackjax.nuts, target_acceptance_rate=1.5)
    with pytest.raises(TypeError, match="is_mass_matrix_diagonal='no'"):
        th.bayesian(blackjax.nuts, is_mass_matrix_diagonal="no")
    with pytest.raises(TypeError, match="does not accept `is_mass_matrix_diagonal`"):
        th.bayesian(blackjax.mala, step_size=0.1, is_mass_matrix_diagonal=False)
