"""MAMS (Metropolis-adjusted microcanonical sampling): ``.bayesian(blackjax.adjusted_mclmc_dynamic)``
and ``.bayesian(blackjax.adjusted_mclmc)`` with blackjax's own tuner.

Independent truths: the closed-form Gaussian posterior of a linear model whose two features are
nearly collinear (posterior correlation about -0.99), in float64 numpy (``tests/collinear.py``,
as in tests/test_dense_mass.py); the design of the dynamic kernel, whose number of integrator steps
has mean ``L / step_size``; and the deterministic length ``ceil(L / step_size)`` of the static
kernel.
"""

import blackjax
import numpy as np
import pytest

import jno
from jno.family import Tuner, kernel_family
from jno.solve.blocks.adjusted_mclmc import AdjustedMCLMCBlock

from collinear import collinear_problem
from stats import assert_gaussian_within, assert_mean_within


def _problem(factory=blackjax.adjusted_mclmc_dynamic, *, mesh=0.02, **kw):
    return collinear_problem(factory, mesh=mesh, **kw)


@pytest.mark.slow
def test_mams_matches_the_closed_form_posterior():
    """4 chains of the dynamic kernel, tuned in warm-up. A diagonal preconditioner cannot undo
    the -0.99 correlation: in whitened coordinates the ridge is ~14 times longer than it is
    wide, and the step size is set by the width. With blackjax's default of 2 integrator steps
    per transition the chains random-walk along the ridge (ESS ~6 of 4000 draws); 32 steps
    make a trajectory ``L = 32 ε`` about as long as the ridge (ESS ~950), enough for the sd
    check's factor-√2 guard."""
    steps = 32.0
    crux, th, mean, cov = _problem(
        warmup=500, keep=1000, num_chains=4, init_jitter=0.5, target_num_integration_steps=steps
    )
    assert crux.solver.plan.blocks[0].family == "mams"
    draws = np.asarray(th.posterior_samples)  # (4, 1000, 2)
    for i in range(2):
        assert_gaussian_within(draws[..., i], mean[i], np.sqrt(cov[i, i]), what=f"theta[{i}]")

    diag = th.posterior_diagnostics
    # Dual averaging drives the warm-up's mean acceptance to the target (0.9) and the kept
    # draws run at its final step size, so they accept about as often; 0.7 rules out a step
    # size tuned for another trajectory length (acceptance collapses to ~0.2 then).
    assert float(np.mean(diag["acceptance_rate"])) > 0.7
    assert not np.any(diag["is_divergent"]) and not np.any(diag["nonfinite"])

    tuned = crux.solver.state.blocks[0].tuned
    np.testing.assert_allclose(tuned["L"], steps * np.asarray(tuned["step_size"]), rtol=1e-5)
    assert np.asarray(tuned["inverse_mass_matrix"]).shape == (4, 2)  # one diagonal per chain
    # the dynamic kernel draws ceil(u · s) steps with E = L / step_size (i.i.d. draws: ESS ≈ N)
    n = np.asarray(diag["num_integration_steps"], np.float64)
    assert_mean_within(n.ravel(), steps, what="mean integrator steps")
    # grad_evals: the kept transitions' steps plus the tuner's, which ran 3 · floor(500 / 3)
    # transitions per chain of at least one step each
    assert crux.solver.grad_evals - n.sum() >= 4 * 3 * (500 // 3)


def test_mams_kernels_are_claimed_with_their_own_tuner():
    assert kernel_family(blackjax.adjusted_mclmc_dynamic, "test") is AdjustedMCLMCBlock
    assert kernel_family(blackjax.adjusted_mclmc, "test") is AdjustedMCLMCBlock
    assert AdjustedMCLMCBlock.tuner is Tuner.OWN


def test_mams_configuration_errors():
    th = jno.np.parameter((2,), name="theta")
    mams = blackjax.adjusted_mclmc_dynamic
    with pytest.raises(
        ValueError, match=r"model 'theta'.*without tuning .* needs L and step_size="
    ):
        th.bayesian(mams, adapt=False)
    with pytest.raises(ValueError, match=r"needs step_size=; or keep adapt=True"):
        th.bayesian(mams, warmup=0, L=1.0)
    with pytest.raises(ValueError, match="target_acceptance_rate=1.5"):
        th.bayesian(mams, target_acceptance_rate=1.5)
    with pytest.raises(ValueError, match="target_acceptance_rate=0"):
        th.bayesian(mams, target_acceptance_rate=0)
    with pytest.raises(TypeError, match="does not accept `num_leapfrog`"):
        th.bayesian(mams, num_leapfrog=5)
    with pytest.raises(TypeError, match="diagonal_preconditioning='yes'"):
        th.bayesian(mams, diagonal_preconditioning="yes")
    with pytest.raises(ValueError, match="target_num_integration_steps=1.0"):
        th.bayesian(mams, target_num_integration_steps=1.0)
    with pytest.raises(ValueError, match="integration_steps_params=.*give L="):
        th.bayesian(mams, integration_steps_params=(3,))
    with pytest.raises(ValueError, match="num_integration_steps=.*give L="):
        th.bayesian(blackjax.adjusted_mclmc, num_integration_steps=3)
    with pytest.raises(ValueError, match=r"diagonal only"):
        th.bayesian(mams, inverse_mass_matrix=np.eye(2))


@pytest.mark.slow
def test_mams_without_tuning_runs_with_the_given_L_and_step_size():
    """adapt=False: the static kernel runs ceil(L / step_size) = 3 steps every transition.
    Slow: compiling the solve alone takes ~5 s on 2 cores (as a NUTS solve of this size)."""
    crux, th, *_ = _problem(
        blackjax.adjusted_mclmc,
        mesh=0.1,
        warmup=5,
        keep=20,
        num_chains=2,
        adapt=False,
        L=0.025,
        step_size=0.01,
    )
    diag = th.posterior_diagnostics
    assert np.shape(diag["acceptance_rate"]) == (2, 20)
    assert np.all(np.asarray(diag["num_integration_steps"]) == 3)
    assert crux.solver.grad_evals == 3 * 2 * 25  # 3 steps, 2 chains, warm-up and kept steps


def _sharp_offset_posterior(factory, **kw):
    """``θ0 ~ N(100, 0.001²)`` and ``θ1 ~ N(0, 1)`` (conjugate, closed form): in float32 the
    tuners' streaming variance ``E[θ0²] - E[θ0]²`` cancels (``θ0² ≈ 1e4``, variance 1e-6,
    below float32's resolution there), to zero or below in some chains."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    n = dom.points("interior").shape[0]
    th = jno.np.parameter((2,), name="theta", init=0.0)
    th.initialize(np.array([100.0, 0.0], np.float32))
    th.bayesian(factory, **kw)
    sd = np.array([1e-3, 1.0])
    terms = [(th[0] + 0.0 * x - 100.0).gaussian(std=sd[0] * np.sqrt(n)),
             (th[1] + 0.0 * x).gaussian(std=sd[1] * np.sqrt(n))]
    crux = jno.core(terms, seed=2)
    crux.solve(print_rate=1000)
    precision = 1 / sd**2 + 1 / 10.0**2  # the default N(0, 10²) prior
    mean = np.array([100.0 / sd[0] ** 2, 0.0]) / precision
    return crux, th, mean, 1 / np.sqrt(precision)


@pytest.mark.parametrize("factory", [blackjax.adjusted_mclmc_dynamic, blackjax.mclmc])
def test_tuned_preconditioner_survives_float32_cancellation(factory):
    """The tuners' diagonal estimate can cancel to <= 0 (``positive_variances``);
    such entries fall back to the starting preconditioner, so no transition is NaN and MAMS's
    draws of the sharp coordinate match the closed form (MCLMC, unadjusted, is only required to
    stay finite)."""
    kw = {}
    if factory is blackjax.adjusted_mclmc_dynamic:  # started from the right scales, as after
        # map_pipeline's Laplace diagonal: a start at scale 1 makes the tuner's first pass
        # (L held while the step shrinks 1000-fold) take ~1e4 integrator steps a transition
        kw = {"target_num_integration_steps": 16.0, "inverse_mass_matrix": np.array([1e-6, 1.0])}
    crux, th, mean, sd = _sharp_offset_posterior(
        factory, warmup=300, keep=500, num_chains=4, init_jitter=0.0, **kw
    )
    imm = np.asarray(crux.solver.state.blocks[0].tuned["inverse_mass_matrix"])
    assert np.all(np.isfinite(imm)) and np.all(imm > 0)
    draws = np.asarray(th.posterior_samples, np.float64)  # (4, 500, 2)
    assert np.all(np.isfinite(draws))
    assert not np.any(th.posterior_diagnostics["nonfinite"])
    if factory is blackjax.adjusted_mclmc_dynamic:  # θ1 is left alone: chains whose estimate
        # cancelled to a positive but wrong value tune tiny steps for it (ESS ~30 of 2000)
        assert_gaussian_within(draws[..., 0], mean[0], sd[0], what="theta[0]")
