"""Trained models sharing a transformation share one optimizer state (PITFALLS §18).

A network and a coefficient given the same ``optax.lbfgs()`` object are one L-BFGS over the
concatenated pytree: one curvature history, one line search. The truth is optax's documented
L-BFGS loop written by hand on a hand-written loss of the same problem.
"""

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.lower.evaluate import model_key

XS = np.linspace(0.0, 1.0, 21, dtype=np.float32)[:, None]


def problem(tx_net, tx_lam):
    """``u = net(x)`` fits ``sin πx`` and ``u' = λ π cos πx`` (truth λ = 1, start λ = 0)."""
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=6, num_layers=2, key=jax.random.PRNGKey(0)),
                      name="u")
    lam = jno.np.parameter((1,), name="lam", init=0.0)
    net.optimizer(tx_net)
    lam.optimizer(tx_lam)
    u = net(x)
    data = (u - jno.np.sin(jno.np.pi * x)).mse
    phys = (jno.diff(u, x) - lam * jno.np.pi * jno.np.cos(jno.np.pi * x)).mse
    return net, lam, jno.core([data, phys])


def hand_loss(static):
    xs = jnp.asarray(XS)

    def loss(p):
        net = eqx.combine(p["u"], static)
        u = jax.vmap(net)(xs)
        du = jax.vmap(jax.grad(lambda z: net(z)[0]))(xs)
        return jnp.mean((u - jnp.sin(jnp.pi * xs)) ** 2) + jnp.mean(
            (du - p["lam"] * jnp.pi * jnp.cos(jnp.pi * xs)) ** 2
        )

    return loss


def by_hand(tx, module, steps, value_fn_of=None):
    """optax's L-BFGS loop (``value_and_grad_from_state``) on ``{"u": net, "lam": λ}``;
    returns the parameters, the values and the objective evaluations: the first step's own
    value and gradient plus every line-search step (one evaluation each)."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    p = {"u": params, "lam": jnp.zeros(1)}
    loss = hand_loss(static)
    state, values, evals = tx.init(p), [], 1
    # optax's own loop reuses the line search's value and gradient; a partition's state
    # keeps a masked gradient, so there the gradient is taken afresh (the same numbers)
    value_and_grad = (optax.value_and_grad_from_state(loss) if value_fn_of is None
                      else lambda q, state: jax.value_and_grad(loss)(q))

    @jax.jit
    def step(p, state):
        value, grad = value_and_grad(p, state=state)
        value_fn = loss if value_fn_of is None else value_fn_of(loss, p)
        upd, state = tx.update(grad, state, p, value=value, grad=grad, value_fn=value_fn)
        return optax.apply_updates(p, upd), state, value

    for _ in range(steps):
        p, state, value = step(p, state)
        values.append(float(value))
        evals += sum(int(v) for _, v in optax.tree.get_all_with_path(state, "num_linesearch_steps"))
    return p, values, evals


def test_lbfgs_chunk_compiles_once_across_solves():
    """optax's L-BFGS ``init`` builds weakly typed scalars (its line-search info) that one
    step makes strongly typed; jno starts states strongly typed, so a second and third
    ``solve`` reuse the first call's compiled chunk instead of compiling it again."""
    tx = optax.lbfgs()
    _, _, crux = problem(tx, tx)
    for _ in range(3):
        crux.solve(4, print_rate=4)
    assert crux.solver.traces["chunk4/1/True/False"] == 1


@pytest.mark.slow
def test_one_lbfgs_object_is_one_lbfgs_over_network_and_coefficient():
    tx = optax.lbfgs()
    net, lam, crux = problem(tx, tx)
    start = net.module
    crux.solve(8)
    (group,) = crux.solver.state.blocks[0].kernel.opt_state  # one state for both models
    assert set(group.split("+")) == {model_key(net), model_key(lam)}
    p, values, evals = by_hand(optax.lbfgs(), start, 8)
    np.testing.assert_allclose(np.asarray(lam.module), np.asarray(p["lam"]), rtol=1e-3, atol=1e-5)
    # grad_evals counts the line search's evaluations: those of the hand-written loop
    assert crux.solver.grad_evals == evals > 8
    for got, want in zip(jax.tree.leaves(eqx.filter(net.module, eqx.is_inexact_array)),
                         jax.tree.leaves(p["u"])):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(crux.history.total_loss, values, rtol=1e-4)
    assert values[-1] < 0.2 * values[0]  # the comparison is of a run that moved


@pytest.mark.slow
def test_different_transformations_route_like_optax_partition():
    """L-BFGS on the network, Adam on λ: the iterates of ``optax.partition`` by hand (each
    group's line search varies its own parameters with the others held)."""
    net, lam, crux = problem(optax.lbfgs(), optax.adam(1e-2))
    start = net.module
    crux.solve(6)
    assert len(crux.solver.state.blocks[0].kernel.opt_state) == 2
    tx = optax.partition({"lbfgs": optax.lbfgs(), "adam": optax.adam(1e-2)},
                         {"u": "lbfgs", "lam": "adam"}, mask_compatible_extra_args=True)

    def value_fn_of(loss, p):
        def filled(q):  # the masked inner L-BFGS sees λ as a MaskedNode: hold it at p's value
            return loss({"u": q["u"], "lam": p["lam"]})

        return filled

    p, _, _ = by_hand(tx, start, 6, value_fn_of)
    np.testing.assert_allclose(np.asarray(lam.module), np.asarray(p["lam"]), rtol=1e-3, atol=1e-5)
    for got, want in zip(jax.tree.leaves(eqx.filter(net.module, eqx.is_inexact_array)),
                         jax.tree.leaves(p["u"])):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_models_at_the_default_share_one_state_and_frozen_models_stay_out():
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    c = jno.np.parameter((1,), name="c", init=0.5).freeze()
    crux = jno.core([((a + b + c) * x - x).mse])
    crux.solve(3)
    (group,) = crux.solver.state.blocks[0].kernel.opt_state
    assert sorted(group.split("+")) == sorted([model_key(a), model_key(b)])
    np.testing.assert_array_equal(np.asarray(c.module), [0.5])


def test_one_optimizer_split_over_substeps_is_a_clear_error():
    tx = optax.adam(1e-2)
    net, lam, crux = problem(tx, tx)
    data, phys = crux.program.constraints
    with pytest.raises(ValueError, match="share one optimizer.*transformation object of its own"):
        crux.solve(2, substeps=[([data], [net]), ([phys], [lam])])


@pytest.mark.slow
def test_history_every_records_every_kth_step_of_the_same_run():
    """``history_every=4``: the same L-BFGS iterates as optax's loop by hand (the steps
    between records run without the history's forward pass), the history at steps 3, 7, ...
    holding the hand loop's loss there."""
    tx = optax.lbfgs()
    net, lam, crux = problem(tx, tx)
    start = net.module
    crux.solve(10, history_every=4, print_rate=8)
    p, values, _ = by_hand(optax.lbfgs(), start, 10)
    np.testing.assert_allclose(np.asarray(lam.module), np.asarray(p["lam"]), rtol=1e-3, atol=1e-5)
    np.testing.assert_array_equal(crux.history.steps, [3, 7])  # step 11 is past the stop
    np.testing.assert_allclose(crux.history.total_loss, [values[3], values[7]], rtol=1e-4)


def test_history_every_is_checked():
    with pytest.raises(ValueError, match="print_rate=10 must be a multiple of history_every=4"):
        problem(optax.adam(1e-3), optax.adam(1e-3))[2].solve(10, history_every=4, print_rate=10)
    with pytest.raises(ValueError, match="history_every must be a positive int"):
        problem(optax.adam(1e-3), optax.adam(1e-3))[2].solve(10, history_every=0)
    net, lam, crux = problem(optax.adam(1e-3), optax.adam(1e-3))
    lam.bayesian(blackjax.nuts, step_size=0.1, adapt=False)
    with pytest.raises(ValueError, match="only for solves that optimise"):
        jno.core(crux.program.constraints).solve(10, history_every=2)
