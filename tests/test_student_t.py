"""``r.student_t(df, scale)``: the exact Student-t negative log-likelihood, calibrated.

Truths: ``scipy.stats.t.logpdf`` for the value, ``jax.grad`` of the density written by hand
for the gradient, ``scipy.optimize`` for the MAP of a location under Student-t noise.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import sympy as sp
from jax.scipy.special import gammaln
from scipy import optimize, stats

import jno
from jno.lower.evaluate import model_key, ps_key, subsample_inputs

DF, SCALE = 3.0, 0.4


def problem(seed=0):
    """A line's interior points with data ``y = 0.8 x + 0.4 T_3`` (heavy-tailed), seeded."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    ys = 0.8 * xs + SCALE * np.random.default_rng(seed).standard_t(DF, size=xs.size)
    y = dom.variable("y", ys.astype(np.float32))
    return x, y, xs, ys


def scipy_nll(r, df, scale):
    return -float(np.sum(stats.t.logpdf(r, df, scale=scale)))


@pytest.mark.parametrize("form", ["number", "per_point", "parameter"])
def test_value_is_the_exact_negative_log_likelihood(form):
    x, y, xs, ys = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    scales = np.linspace(0.3, 0.6, xs.size)
    scale = {
        "number": SCALE,
        "per_point": scales.astype(np.float32),
        "parameter": jno.np.parameter((1,), name="s", init=SCALE),
    }[form]
    df = jno.np.parameter((1,), name="nu", init=DF) if form == "parameter" else DF
    c = (a * x - y).student_t(df=df, scale=scale)
    want = scipy_nll(0.6 * xs - ys, DF, scales if form == "per_point" else SCALE)
    crux = jno.core([c])
    np.testing.assert_allclose(float(crux.eval([c])), want, rtol=1e-5)
    assert crux.program.names == ["student_t_0"]


def test_vector_residual_broadcasts_a_per_component_scale():
    x, y, xs, ys = problem()
    r = jno.np.concat([x - y, 2 * x - y], axis=-1)
    s = np.array([0.3, 0.7], dtype=np.float32)
    c = r.student_t(df=5.0, scale=s)
    res = np.stack([xs - ys, 2 * xs - ys], axis=1)
    np.testing.assert_allclose(float(jno.core([c]).eval([c])), scipy_nll(res, 5.0, s), rtol=1e-5)


def test_calibrated_not_tempered_by_likelihood_scale():
    x, y, _, _ = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    crux = jno.core([(a * x - y).student_t(df=DF, scale=SCALE), (a - 1.0).mse])
    np.testing.assert_array_equal(crux.program.calibrated, [True, False])
    np.testing.assert_allclose(crux.program.loglik_weights(0.25), [1.0, 0.25])


def test_subsample_scales_by_n_over_n():
    x, y, xs, ys = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    c = (a * x - y).student_t(df=DF, scale=SCALE)
    program = jno.core([c]).program
    idx = np.arange(0, xs.size, 3)
    inputs = subsample_inputs(program.inputs, {ps_key(x.pointset): jnp.asarray(idx)})
    got = float(program.losses(program.initial_params(), inputs)[0])
    r = 0.6 * xs - ys
    want = xs.size / idx.size * scipy_nll(r[idx], DF, SCALE)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_gradient_matches_the_hand_written_density():
    x, y, xs, ys = problem()
    a = jno.np.parameter((1,), name="a", init=0.6)
    s = jno.np.parameter((1,), name="s", init=SCALE)
    nu = jno.np.parameter((1,), name="nu", init=DF)
    program = jno.core([(a * x - y).student_t(df=nu, scale=s)]).program
    X, Y = jnp.asarray(xs, jnp.float32), jnp.asarray(ys, jnp.float32)

    def by_hand(av, sv, nv):
        z = (av * X - Y) / sv
        return jnp.sum(
            gammaln(nv / 2)
            - gammaln((nv + 1) / 2)
            + 0.5 * jnp.log(nv * jnp.pi)
            + jnp.log(sv)
            + (nv + 1) / 2 * jnp.log(1 + z**2 / nv)
        )

    grads = jax.grad(lambda p: program.losses(p)[0])(program.initial_params())
    want = jax.grad(by_hand, argnums=(0, 1, 2))(0.6, SCALE, DF)
    for model, w in zip((a, s, nu), want):
        np.testing.assert_allclose(float(grads[model_key(model)][0]), float(w), rtol=1e-4)


def test_sympy_display():
    x, y, _, _ = problem()
    c = (2 * x - y).student_t(df=DF, scale=0.5)
    X, Yd = sp.symbols("x y", real=True)
    assert c.to_sympy() == sp.Function("student_t_nll")(2 * X - Yd, 3, sp.Float(0.5, 6))
    assert "student_t_nll" in str(c) and jno.sym.latex(c)


def test_map_of_a_location_matches_scipy():
    """The location of heavy-tailed data: the MAP under Student-t noise (not the mean)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    n = dom.points("interior").shape[0]
    ys = 1.5 + SCALE * np.random.default_rng(1).standard_t(2.0, size=n)
    y = dom.variable("y", ys.astype(np.float32))
    mu = jno.np.parameter((1,), name="mu", init=float(np.median(ys)))
    mu.optimizer(optax.lbfgs())
    crux = jno.core([(mu - y).student_t(df=2.0, scale=SCALE)])
    crux.solve(30, print_rate=30)
    want = optimize.minimize_scalar(
        lambda m: scipy_nll(m - ys, 2.0, SCALE),
        bounds=(ys.min(), ys.max()),
        method="bounded",
        options={"xatol": 1e-9},
    ).x
    np.testing.assert_allclose(float(mu.module[0]), want, atol=1e-4)
    assert abs(want - ys.mean()) > 1e-2  # the MAP is not the least-squares fit


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"df": 0.0, "scale": 1.0}, "df must be finite and > 0"),
        ({"df": -2, "scale": 1.0}, "df must be finite and > 0"),
        ({"df": float("inf"), "scale": 1.0}, "df must be finite and > 0"),
        ({"df": 3.0, "scale": 0.0}, "scale must be finite and > 0"),
        ({"df": 3.0, "scale": np.array([0.1, -0.1])}, "scale must be finite and > 0"),
        ({"df": 3.0, "scale": "wide"}, "scale must be a positive number"),
        ({"df": 3.0, "scale": np.ones(3)}, "scale of shape \\(3,\\) does not broadcast"),
    ],
)
def test_invalid_arguments_are_clear_value_errors(kwargs, match):
    x, y, _, _ = problem()
    with pytest.raises(ValueError, match=match):
        (x - y).student_t(**kwargs)


def test_a_point_wise_scale_on_another_point_set_is_refused():
    x, y, _, _ = problem()
    other = jno.domain(constructor=jno.domain.line(mesh_size=0.25))
    u, _ = other.variable("interior")
    with pytest.raises(ValueError, match="scale is point-wise on"):
        (x - y).student_t(df=3.0, scale=1.0 + u**2)
