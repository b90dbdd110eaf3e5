"""Parameter-free sub-expressions are evaluated once per chunk, not at every step.

The truth is the same program without hoisting (``Program.hoist`` replaced by the identity):
losses, gradients and draws agree to round-off, also after ``crux.condition`` and after a
resampling step moved the points; the hoisted arrays equal the sub-expressions by numpy.
"""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.lower.evaluate import hoist_key
from jno.lower.program import Program

XS = np.linspace(0.05, 0.95, 19, dtype=np.float32)[:, None]
Y = (2.0 + np.sin(np.pi * XS)).astype(np.float32)


def no_hoisting(monkeypatch):
    monkeypatch.setattr(Program, "hoist", lambda self, inputs: inputs)


def linear_problem():
    """``θ0 sin πx + θ1 log y`` against ``y``: ``sin πx`` and ``log y`` depend on no model."""
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    th = jno.np.parameter((2,), name="th", init=0.0)
    features = [jno.np.sin(jno.np.pi * x), jno.np.log(y)]
    r = th[0:1] * features[0] + th[1:2] * features[1] - y
    return dom, x, y, th, features, r


def test_the_hoisted_arrays_are_the_parameter_free_subexpressions():
    dom, x, y, th, features, r = linear_problem()
    crux = jno.core([r.gaussian(std=0.1)])
    program = crux.program
    (pk, ids), = program.plan.hoistable.items()
    assert sorted(ids) == sorted(f.id for f in features)
    hoisted = program.hoist(program.inputs)[pk]["hoisted"]
    np.testing.assert_allclose(hoisted[hoist_key(features[0])], np.sin(np.pi * XS), rtol=1e-6)
    np.testing.assert_allclose(hoisted[hoist_key(features[1])], np.log(Y), rtol=1e-6)
    # values and gradients of the losses are those of the unhoisted program
    p = {next(iter(program.initial_params())): jnp.array([0.7, -0.3])}
    grad = jax.grad(lambda q, inp: program.losses(q, inp).sum())
    np.testing.assert_allclose(program.losses(p, program.hoist(program.inputs)),
                               program.losses(p, program.inputs), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(grad(p, program.hoist(program.inputs))),
                    jax.tree.leaves(grad(p, program.inputs))):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_a_reduction_over_points_is_never_hoisted():
    """``y - mean(y)`` depends on no model, but its mean is over the rows a step sees (a
    subsample under ``batch_size``), so it stays in the step; ``sin πx`` beside it is hoisted.
    Found by tests/test_lowering_properties.py: hoisting it had evaluated the whole batch,
    parameters included, without parameters (a KeyError)."""
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    a = jno.np.parameter((1,), name="a", init=0.5)
    centred = y - y.mean
    feature = jno.np.sin(jno.np.pi * x)
    program = jno.core([(a * x).mse, (feature - centred).mse]).program
    assert sorted(i for ids in program.plan.hoistable.values() for i in ids) == [feature.id]
    p = program.initial_params()
    want = [np.mean((0.5 * XS) ** 2), np.mean((np.sin(np.pi * XS) - (Y - Y.mean())) ** 2)]
    np.testing.assert_allclose(program.losses(p, program.hoist(program.inputs)), want, rtol=1e-5)
    rows = {next(iter(program.inputs)): jnp.arange(0, 19, 3)}  # a subsample: 7 of 19 rows
    from jno.lower.evaluate import subsample_inputs

    sub = subsample_inputs(program.hoist(program.inputs), rows)
    ys, xs = Y[::3], XS[::3]
    want = [np.mean((0.5 * xs) ** 2), np.mean((np.sin(np.pi * xs) - (ys - ys.mean())) ** 2)]
    np.testing.assert_allclose(program.losses(p, sub), want, rtol=1e-5)


def test_nothing_that_moves_is_hoisted():
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    a = jno.np.parameter((1,), name="a", init=1.0)
    redrawn = jno.noise.gaussian(std=0.1, redraw=True)
    src = jno.np.exp(-x)  # hoistable
    u = net(x)
    r = jno.diff(u * jno.np.sin(jno.np.pi * x), x) + a * src + jno.np.cos(x) * redrawn
    crux = jno.core([r.mse])
    hoisted = {i for ids in crux.program.plan.hoistable.values() for i in ids}
    assert src.id in hoisted
    for node in (u, r, redrawn):
        assert node.id not in hoisted
    # a derivative through a hoistable factor still differentiates it: the loss equals the
    # one with hoisting switched off (the product rule needs d/dx sin πx)
    p = crux.program.initial_params()
    inputs = crux.program.redraw_noise(crux.program.inputs, jax.random.PRNGKey(1))
    np.testing.assert_allclose(crux.program.losses(p, crux.program.hoist(inputs)),
                               crux.program.losses(p, inputs), rtol=1e-6)


def _draws_after_condition(y_new):
    dom, x, y, th, features, r = linear_problem()
    th.bayesian(blackjax.nuts, warmup=100, keep=100, num_chains=2)
    crux = jno.core([r.gaussian(std=0.1)], seed=3)
    crux.solve()
    crux.condition({y: y_new})
    crux.solve()
    return np.asarray(th.posterior_samples)


@pytest.mark.slow
def test_draws_equal_the_unhoisted_program_after_condition(monkeypatch):
    y_new = (Y + 0.5).astype(np.float32)  # log(y) changes: the hoisted array must follow
    hoisted = _draws_after_condition(y_new)
    no_hoisting(monkeypatch)
    plain = _draws_after_condition(y_new)
    np.testing.assert_allclose(hoisted, plain, rtol=1e-4, atol=1e-5)
    assert np.ptp(hoisted) > 0


def _fit_with_resampling():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior", sample=16)
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=6, num_layers=2, key=jax.random.PRNGKey(2)))
    net.optimizer(optax.adam(1e-2))
    f = jno.np.pi**2 * jno.np.sin(jno.np.pi * x)  # hoisted; the points move under it
    crux = jno.core([(jno.diff(net(x), x, order=2) + f).mse])
    crux.solve(60, print_rate=20, resample=jno.sampling.rad(x, every=20, candidates=64))
    return jax.tree.leaves(net.module)


@pytest.mark.slow
def test_training_equals_the_unhoisted_program_across_resampling(monkeypatch):
    hoisted = _fit_with_resampling()
    no_hoisting(monkeypatch)
    plain = _fit_with_resampling()
    for a, b in zip(hoisted, plain):
        if hasattr(a, "shape"):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("batch_size", [7])
def test_minibatches_take_the_same_rows_of_hoisted_arrays(monkeypatch, batch_size):
    def run():
        dom, x, y, th, features, r = linear_problem()
        th.bayesian(blackjax.sgld, step_size=1e-5, warmup=0, keep=30)
        jno.core([r.gaussian(std=0.1)], seed=5).solve(batch_size=batch_size)
        return np.asarray(th.posterior_samples)

    hoisted = run()
    no_hoisting(monkeypatch)
    np.testing.assert_allclose(hoisted, run(), rtol=1e-5, atol=1e-6)
