"""EnsembleMAP: the compiled lax.scan runner against a Python loop over ``update``."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from jno.inference import EnsembleMAP, ensemble_map, ensemble_predict, epoch_batches

SIGMA = 0.3
E = 3
N = 20


def init_mlp(key):
    return eqx.nn.MLP(1, 1, 8, 1, activation=jax.nn.tanh, key=key)


def predict(mlp, x):
    return jax.vmap(mlp)(x[:, None]).squeeze(-1)


def log_joint(mlp, x, y):
    loglik = -0.5 * jnp.sum((y - predict(mlp, x)) ** 2) / SIGMA**2
    weights = jax.tree.leaves(eqx.filter(mlp, eqx.is_inexact_array))
    return loglik, -0.5 * sum(jnp.sum(w**2) for w in weights)


@pytest.fixture(scope="module")
def data():
    kx, ky = jr.split(jr.PRNGKey(11))
    x = jr.uniform(kx, (N,), minval=-2.0, maxval=2.0)
    return x, jnp.cos(x) + SIGMA * jr.normal(ky, (N,))


@pytest.fixture(scope="module")
def runner():
    return EnsembleMAP(log_joint, init_mlp, optax.adam(1e-2), ensemble_size=E, prior_weight=0.5)


def python_loop(runner, seed, x, y, num_epochs, batch_size):
    """The documented key schedule of ``run``, written out step by step."""
    init_key, data_key = jr.split(seed)
    state = runner.init(init_key)
    update = eqx.filter_jit(runner.update)
    history = []
    for epoch_key in jr.split(data_key, num_epochs):
        perm_key, _ = jr.split(epoch_key)
        if batch_size is None:
            state, losses = update(state, x, y)
        else:
            losses_epoch = []
            for idx in epoch_batches(perm_key, N, batch_size):
                state, step_losses = update(state, x[idx], y[idx], scale=N / batch_size)
                losses_epoch.append(step_losses)
            losses = jnp.mean(jnp.stack(losses_epoch), axis=0)
        history.append(losses)
    return state, jnp.stack(history).T


@pytest.mark.parametrize("batch_size", [None, 6])
def test_run_equals_python_loop_over_update(runner, data, batch_size):
    x, y = data
    seed = jr.PRNGKey(4)
    result = runner.run(seed, x, y, num_epochs=4, batch_size=batch_size)
    state, losses = python_loop(runner, seed, x, y, 4, batch_size)
    assert result.losses.shape == (E, 4)
    np.testing.assert_allclose(result.losses, losses, rtol=1e-5)
    for a, b in zip(
        jax.tree.leaves(eqx.filter(result.params, eqx.is_array)),
        jax.tree.leaves(eqx.filter(state.params, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert result.params.activation is jax.nn.tanh


def test_oversized_batch_falls_back_to_full_batch(runner, data):
    x, y = data
    full = runner.run(jr.PRNGKey(0), x, y, num_epochs=3)
    big = runner.run(jr.PRNGKey(0), x, y, num_epochs=3, batch_size=10 * N)
    np.testing.assert_array_equal(full.losses, big.losses)
    with pytest.raises(ValueError, match="batch_size"):
        runner.run(jr.PRNGKey(0), x, y, num_epochs=3, batch_size=0)


def test_fit_continues_run(runner, data):
    x, y = data
    state = runner.init(jr.PRNGKey(1))
    state, first = runner.fit(state, x, y, jr.PRNGKey(2), 3)
    state, second = runner.fit(state, x, y, jr.PRNGKey(3), 3)
    assert first.shape == second.shape == (E, 3)
    assert jnp.all(second[:, -1] < first[:, 0])


def test_one_shot_fits_the_data(data):
    x, y = data
    result = ensemble_map(
        log_joint,
        init_mlp,
        x,
        y,
        optimizer=optax.adam(2e-2),
        num_epochs=300,
        seed=jr.PRNGKey(0),
        ensemble_size=4,
    )
    preds = ensemble_predict(result.params, predict, x)
    assert preds.shape == (4, N)
    residual = float(jnp.sqrt(jnp.mean((preds.mean(0) - y) ** 2)))
    assert residual < 1.5 * SIGMA
    assert jnp.all(result.losses[:, -1] < result.losses[:, 0])


def test_mismatched_data_raises(runner):
    with pytest.raises(ValueError, match="leading"):
        runner.run(jr.PRNGKey(0), jnp.zeros(5), jnp.zeros(6), num_epochs=1)
    with pytest.raises(ValueError, match="prior_weight"):
        EnsembleMAP(log_joint, init_mlp, optax.adam(1e-2), prior_weight=-0.1)


def _same_result(a, b):
    np.testing.assert_array_equal(np.asarray(a.losses), np.asarray(b.losses))
    for p, q in zip(jax.tree.leaves(eqx.filter(a.params, eqx.is_array)),
                    jax.tree.leaves(eqx.filter(b.params, eqx.is_array))):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(q))


def test_run_accepts_pyrox_and_numpyro_argument_order(runner, data):
    """``run(seed, num_epochs, x, y)`` (pyrox, NumPyro) and ``run(seed, x, y, num_epochs)``
    are the same call: the int after ``seed`` is the epoch count."""
    x, y = data
    seed = jr.PRNGKey(5)
    ref = runner.run(seed, x, y, 3)
    assert np.asarray(ref.losses).shape == (E, 3)
    _same_result(runner.run(seed, 3, x, y), ref)
    _same_result(runner.run(seed, np.int64(3), x, y), ref)
    _same_result(runner.run(seed, num_epochs=3, x=x, y=y), ref)
    _same_result(runner.run(seed, 3, x, y, batch_size=6), runner.run(seed, x, y, 3, 6))


def test_run_argument_errors_name_both_orders(runner, data):
    x, y = data
    with pytest.raises(TypeError, match=r"num_epochs must be an int.*run\(seed, num_epochs, x, y\)"):
        runner.run(jr.PRNGKey(0), x, y, 3.0)
    with pytest.raises(TypeError, match="missing num_epochs"):
        runner.run(jr.PRNGKey(0), x, y)
    with pytest.raises(TypeError, match="both by position and by keyword"):
        runner.run(jr.PRNGKey(0), 3, x, y, num_epochs=3)
    with pytest.raises(ValueError, match="num_epochs must be >= 1"):
        runner.run(jr.PRNGKey(0), 0, x, y)
