"""``jno.lower.narrow``: a program evaluated with unit trailing axes dropped computes the same
values and gradients as the program itself, and its element-wise work is on ``(n,)`` arrays.

The truth is the function evaluated by JAX as written (``Program._losses``, the lowering
without narrowing; plain functions for the primitives narrowing treats specially). The
property-based guard (``test_lowering_properties.py``) also runs every random tree through
``Program.losses``, which is narrowed.
"""

from __future__ import annotations

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno
from jno.lower.evaluate import model_key
from jno.lower.narrow import ELEMENTWISE, narrow_shape, narrowed

N = 37


@pytest.mark.parametrize(
    "shape, short",
    [((5, 1), (5,)), ((5, 1, 1), (5,)), ((1, 1), ()), ((5, 2), (5, 2)), ((1,), (1,)),
     ((), ()), ((3, 1, 4), (3, 1, 4)), ((3, 4, 1), (3, 4))],
)
def test_narrow_shape(shape, short):
    assert narrow_shape(shape) == short


def _rows(seed=0, n=N, d=1):
    return np.random.default_rng(seed).uniform(0.1, 1.0, (n, d)).astype(np.float32)


def _assert_same(fn, *args):
    """Values and gradients (w.r.t. the first argument) of ``narrowed(fn)`` equal ``fn``'s."""
    want, got = fn(*args), narrowed(fn)(*args)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6), want, got)
    assert jax.tree.structure(want) == jax.tree.structure(got)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(np.shape(a), np.shape(b)), want, got)
    scalar = lambda f: lambda *a: sum(jnp.sum(v) for v in jax.tree.leaves(f(*a)))  # noqa: E731
    g_want = jax.grad(scalar(fn))(*args)
    g_got = jax.grad(scalar(narrowed(fn)))(*args)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 g_want, g_got)


def test_primitives_narrowing_treats_specially():
    """Element-wise operations with scalar and unit-broadcast operands, broadcast_in_dim,
    reductions over kept and dropped axes, a nested jit (jnp.where), a custom_jvp
    (jax.nn.softplus), control flow (lax.scan, lax.cond), integer and boolean arrays, and
    outputs of every shape kind."""
    x = jnp.asarray(_rows(1))
    k = jnp.arange(N)[:, None]

    def fn(t, x, k):
        def per_point(xi, ki):
            z = t[0:1] * jnp.sin(jnp.pi * xi) + t[1:2] ** 2 - 0.5
            z = jnp.where(xi > 0.5, z, jnp.tanh(z)) + jax.nn.softplus(t[2:3] * xi)
            return z * (ki % 3), jnp.stack([z, 2 * z], -1)

        z, pair = jax.vmap(per_point)(x, k)
        s = jax.lax.scan(lambda c, zi: (c + zi * c, None), jnp.ones(1), z[:5])[0]
        c = jax.lax.cond(s[0] > 0, lambda: z.max(axis=0), lambda: z.min(axis=0))
        return {"rows": z, "pair": pair, "sum": z.sum(), "col": z.sum(axis=0),
                "scan": s, "cond": c, "mean1": pair.mean(axis=(0, 2))}

    _assert_same(fn, jnp.array([0.7, -1.2, 0.4]), x, k)


def _linear(n=N):
    xs = _rows(2, n)
    y = (2.0 * np.sin(np.pi * xs) - 1.0).astype(np.float32)
    dom = jno.domain(constructor=jno.domain.points(xs))
    x, _ = dom.variable("interior")
    obs = dom.variable("y", y)
    th = jno.np.parameter((3,), name="th", init=0.0)
    r = th[0:1] * jno.np.sin(jno.np.pi * x) + th[1:2] * jno.np.cos(jno.np.pi * x) + th[2:3] - obs
    return th, jno.core([r.gaussian(std=0.1), (r * x).mse]).program


def test_linear_program_equals_its_unnarrowed_lowering():
    th, program = _linear()
    key = model_key(th)
    t = jnp.array([1.5, -0.3, 0.2])
    for inputs in (program.inputs, program.hoist(program.inputs)):
        _assert_same(lambda t, inp: program._losses({key: t}, inp), t, inputs)
        np.testing.assert_allclose(program.losses({key: t}, inputs),
                                   program._losses({key: t}, inputs), rtol=1e-6)


def test_pinn_with_a_network_and_derivatives_equals_its_unnarrowed_lowering():
    pts = _rows(3, d=2)
    dom = jno.domain(constructor=jno.domain.points(pts))
    x, t, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(2, 1, hidden_dims=8, num_layers=2,
                                 key=jax.random.PRNGKey(0)), name="u")
    lam = jno.np.parameter((1,), name="lam", init=0.3)
    u = net(jno.np.concat([x, t], axis=-1))
    f = jno.diff(u, t) + lam * u * jno.diff(u, x) - 0.01 * jno.diff(u, x, order=2)
    program = jno.core([f.mse, (u - jno.np.sin(x)).mse]).program
    params = program.initial_params()
    _assert_same(lambda p: program._losses(p, program.inputs), params)


def test_element_wise_work_of_a_narrowed_gradient_is_on_rows_not_columns():
    """The property narrowing exists for: no element-wise operation of the compiled gradient
    of the linear model's log-density acts on an ``(n, 1)`` array (the unnarrowed lowering
    has many)."""
    n = 101
    th, program = _linear(n)
    key = model_key(th)

    def column_ops(loss):
        jaxpr = jax.make_jaxpr(jax.grad(loss))(jnp.ones(3)).jaxpr
        return [e for e in _all_eqns(jaxpr) if e.primitive.name in ELEMENTWISE
                and any(tuple(getattr(v.aval, "shape", ())) == (n, 1) for v in e.outvars)]

    inputs = program.hoist(program.inputs)
    assert len(column_ops(lambda t: program._losses({key: t}, inputs).sum())) > 5
    assert column_ops(lambda t: program.losses({key: t}, inputs).sum()) == []


def _all_eqns(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for p in e.params.values():
            inner = getattr(p, "jaxpr", None)
            if inner is not None and hasattr(inner, "eqns"):
                yield from _all_eqns(inner)
            elif hasattr(p, "eqns"):
                yield from _all_eqns(p)


def test_solve_draws_equal_with_and_without_narrowing(monkeypatch):
    """A seeded NUTS solve gives the same draws narrowed and unnarrowed (to float32
    round-off over the chain)."""
    def draws():
        xs = _rows(2)
        y = (2.0 * np.sin(np.pi * xs) - 1.0).astype(np.float32)
        dom = jno.domain(constructor=jno.domain.points(xs))
        x, _ = dom.variable("interior")
        obs = dom.variable("y", y)
        th = jno.np.parameter((2,), name="th", init=0.0)
        r = th[0:1] * jno.np.sin(jno.np.pi * x) + th[1:2] - obs
        th.bayesian(blackjax.nuts, warmup=100, keep=50)
        crux = jno.core([r.gaussian(std=0.1)])
        crux.solve(150, print_rate=1000, progress=False)
        return np.asarray(th.posterior_samples)

    narrowed_draws = draws()
    monkeypatch.setattr(jno.lower.program.Program, "losses",
                        lambda self, p, inputs=None: self._losses(
                            p, self.inputs if inputs is None else inputs))
    plain_draws = draws()
    np.testing.assert_allclose(narrowed_draws, plain_draws, rtol=1e-3, atol=1e-4)
