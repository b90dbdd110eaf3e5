"""``jno.forward_model``: a numerical solver inside the likelihood.

The forward model is the ODE ``du/dt = -k u``, ``u(0) = 1`` solved by diffrax (Tsit5) and read
at the observation times. Truths: the closed form ``exp(-k t)`` for its values; a quadrature
of the posterior of ``k`` for NUTS's draws, which differentiate through the solver.
"""

import blackjax
import jax.numpy as jnp
import numpy as np
import pytest

import jno

from stats import assert_gaussian_within

diffrax = pytest.importorskip("diffrax")
TIMES = np.linspace(0.1, 3.0, 15)
SIGMA = 0.02


def decay(coords, k):
    """``u(t_i)`` of ``du/dt = -k u`` at the rows' times (any order: solved sorted)."""
    t = coords[:, 0]
    order = jnp.argsort(t)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda s, u, args: -args * u),
        diffrax.Tsit5(),
        t0=0.0,
        t1=3.0,
        dt0=0.01,
        y0=jnp.ones(()),
        args=k[0],
        saveat=diffrax.SaveAt(ts=t[order]),
        stepsize_controller=diffrax.PIDController(rtol=1e-6, atol=1e-8),
        max_steps=4096,
        throw=False,  # a failed solve (warm-up tries huge k) is inf: a rejected proposal
    )
    return jnp.zeros_like(t).at[order].set(sol.ys)[:, None]


def observations(seed=0):
    dom = jno.domain(constructor=jno.domain.points(TIMES[:, None]))
    t, _ = dom.variable("interior")
    ys = np.exp(-0.7 * TIMES) + SIGMA * np.random.default_rng(seed).normal(size=TIMES.size)
    return t, dom.variable("y", ys.astype(np.float32)), ys


def test_values_are_the_ode_solution_at_the_points():
    t, _, _ = observations()
    k = jno.np.parameter((1,), name="k", init=0.7)
    u = jno.forward_model(decay, t, k)
    assert u.shape == (1,) and u.pointset is t.pointset
    got = np.asarray(jno.core([(u - 0.0).mse]).eval([u]))[:, 0]
    np.testing.assert_allclose(got, np.exp(-0.7 * TIMES), rtol=1e-5)


@pytest.mark.slow
def test_nuts_through_the_solver_matches_the_quadrature_posterior():
    t, y, ys = observations()
    k = jno.np.parameter((1,), name="k", init=0.5, constraint=jno.constraints.positive)
    k.bayesian(blackjax.nuts, warmup=300, keep=1000, num_chains=4, init_jitter=0.2)
    jno.core([(jno.forward_model(decay, t, k) - y).gaussian(std=SIGMA)], seed=1).solve(
        print_rate=650)
    grid = np.linspace(0.4, 1.0, 60001)
    pred = np.exp(-grid[:, None] * TIMES[None])
    logp = -0.5 * np.sum((pred - ys) ** 2, axis=1) / SIGMA**2 - 0.5 * (grid / 10.0) ** 2
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = float(np.sum(w * grid))
    sd = float(np.sqrt(np.sum(w * (grid - mean) ** 2)))
    assert_gaussian_within(np.asarray(k.posterior_samples)[..., 0], mean, sd, what="k")


def test_subsampled_rows_read_their_own_values():
    t, y, ys = observations()
    k = jno.np.parameter((1,), name="k", init=0.7)
    program = jno.core([(jno.forward_model(decay, t, k) - y).gaussian(std=SIGMA)]).program
    from jno.lower.evaluate import ps_key, subsample_inputs

    idx = np.array([9, 2, 14, 5])  # unsorted rows
    inputs = subsample_inputs(program.inputs, {ps_key(t.pointset): jnp.asarray(idx)})
    got = float(program.losses(program.initial_params(), inputs)[0])
    r = (np.exp(-0.7 * TIMES) - ys)[idx] / SIGMA
    want = TIMES.size / idx.size * np.sum(0.5 * r**2 + np.log(SIGMA * np.sqrt(2 * np.pi)))
    np.testing.assert_allclose(got, want, rtol=1e-4)


def test_bad_forward_models_are_clear_errors():
    t, y, _ = observations()
    k = jno.np.parameter((1,), name="k", init=0.7)
    with pytest.raises(ValueError, match="one row per point of"):
        jno.forward_model(lambda c, k: jnp.ones((3,)) * k, t, k, name="short")
    with pytest.raises(ValueError, match="is point-wise; a forward model takes global values"):
        jno.forward_model(decay, t, y)
    with pytest.raises(ValueError, match="x must be a point-wise variable"):
        jno.forward_model(decay, k, k)
