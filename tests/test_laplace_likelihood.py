"""``r.laplace(scale)``: the exact Laplace negative log-likelihood, calibrated.

Truths: ``scipy.stats.laplace.logpdf`` for the value; ``jax.grad`` of the density written by
hand for the gradient; the closed-form maximum-likelihood scale ``b̂ = mean |r|``; a
quadrature of the location's posterior under Laplace noise for NUTS's draws.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from scipy import stats

import jno
from jno.lower.evaluate import model_key

from stats import assert_gaussian_within

SCALE = 0.3


def problem(seed=0, mesh=0.05):
    """A line's interior points with data ``y = 0.8 x + Laplace(0, 0.3)``, seeded."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    ys = 0.8 * xs + np.random.default_rng(seed).laplace(0.0, SCALE, size=xs.size)
    y = dom.variable("y", ys.astype(np.float32))
    return x, y, xs, ys


def scipy_nll(r, scale):
    return -float(np.sum(stats.laplace.logpdf(r, scale=scale)))


@pytest.mark.parametrize("form", ["number", "per_point", "parameter"])
def test_value_is_the_exact_negative_log_likelihood(form):
    x, y, xs, ys = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    scales = np.linspace(0.2, 0.5, xs.size)
    scale = {
        "number": SCALE,
        "per_point": scales.astype(np.float32),
        "parameter": jno.np.parameter((1,), name="b", init=SCALE),
    }[form]
    c = (a * x - y).laplace(scale=scale)
    want = scipy_nll(0.6 * xs - ys, scales if form == "per_point" else SCALE)
    crux = jno.core([c])
    np.testing.assert_allclose(float(crux.eval([c])), want, rtol=1e-5)
    assert crux.program.names == ["laplace_0"]
    np.testing.assert_array_equal(crux.program.calibrated, [True])


def test_gradient_matches_the_hand_written_density():
    x, y, xs, ys = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    b = jno.np.parameter((1,), name="b", init=SCALE)
    program = jno.core([(a * x - y).laplace(scale=b)]).program
    X, Y = jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)

    def by_hand(av, bv):
        return jnp.sum(jnp.abs(av * X - Y) / bv + jnp.log(2 * bv))

    grads = jax.grad(lambda p: program.losses(p)[0])(program.initial_params())
    want = jax.grad(by_hand, argnums=(0, 1))(0.6, SCALE)
    for model, w in zip((a, b), want):
        np.testing.assert_allclose(float(grads[model_key(model)][0]), float(w), rtol=1e-4)


def test_learned_scale_is_the_mean_absolute_residual():
    """With the location known, ``Σ |r|/b + n log 2b`` is least at ``b = mean |r|``."""
    x, y, xs, ys = problem(seed=3)
    b = jno.np.parameter((1,), name="b", init=0.5)
    b.optimizer(optax.lbfgs())
    crux = jno.core([(0.8 * x - y).laplace(scale=b)])
    crux.solve(40, print_rate=40)
    want = np.mean(np.abs(0.8 * xs - ys))
    np.testing.assert_allclose(float(b.module[0]), want, rtol=1e-4)


def test_sympy_display():
    x, y, _, _ = problem()
    c = (2 * x - y).laplace(scale=0.5)
    X, Yd = sp.symbols("x y", real=True)
    assert c.to_sympy() == sp.Function("laplace_nll")(2 * X - Yd, sp.Float(0.5, 6))


@pytest.mark.parametrize(
    "scale, match",
    [(0.0, "scale must be finite and > 0"), ("wide", "scale must be a positive number"),
     (np.ones(3), "scale of shape \\(3,\\) does not broadcast")],
)
def test_invalid_scales_are_clear_value_errors(scale, match):
    x, y, _, _ = problem()
    with pytest.raises(ValueError, match=match):
        (x - y).laplace(scale=scale)


@pytest.mark.slow
def test_nuts_draws_of_a_location_match_the_quadrature_posterior():
    """``y_i = μ + Laplace(0, b)``: the posterior of μ (N(0, 10²) prior) on a fine grid."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    n = dom.points("interior").shape[0]
    ys = 1.5 + np.random.default_rng(7).laplace(0.0, SCALE, size=n)
    y = dom.variable("y", ys.astype(np.float32))
    mu = jno.np.parameter((1,), name="mu")
    mu.bayesian(blackjax.nuts, warmup=500, keep=1500, num_chains=4, init_jitter=0.3)
    jno.core([(mu - y).laplace(scale=SCALE)], seed=1).solve(print_rate=500)
    grid = np.linspace(ys.min() - 1, ys.max() + 1, 200001)
    logp = -np.abs(grid[:, None] - ys[None]).sum(1) / SCALE - 0.5 * (grid / 10.0) ** 2
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = float(np.sum(w * grid))
    sd = float(np.sqrt(np.sum(w * (grid - mean) ** 2)))
    assert_gaussian_within(np.asarray(mu.posterior_samples)[..., 0], mean, sd, what="mu")
