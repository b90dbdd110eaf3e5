"""Layer-1 ensemble primitives against independent single-model computations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

from jno.inference import (
    EnsembleState,
    ensemble_init,
    ensemble_loss,
    ensemble_predict,
    ensemble_step,
    epoch_batches,
)

SIGMA = 0.3
E = 3


def init_mlp(key):
    return eqx.nn.MLP(1, 1, 8, 2, activation=jax.nn.tanh, key=key)


def predict(mlp, x):
    return jax.vmap(mlp)(x[:, None]).squeeze(-1)


def log_joint(mlp, x, y):
    loglik = -0.5 * jnp.sum((y - predict(mlp, x)) ** 2) / SIGMA**2
    weights = jax.tree.leaves(eqx.filter(mlp, eqx.is_inexact_array))
    return loglik, -0.5 * sum(jnp.sum(w**2) for w in weights)


@pytest.fixture(scope="module")
def data():
    kx, ky = jr.split(jr.PRNGKey(42))
    x = jr.uniform(kx, (24,), minval=-2.0, maxval=2.0)
    return x, jnp.sin(2 * x) + SIGMA * jr.normal(ky, (24,))


def member(params, e):
    return jax.tree.map(lambda a: a[e] if eqx.is_array(a) else a, params)


def flat(params):
    return np.concatenate(
        [np.ravel(a) for a in jax.tree.leaves(eqx.filter(params, eqx.is_inexact_array))]
    )


def test_init_stacks_arrays_and_shares_static_leaves():
    seed = jr.PRNGKey(7)
    state = ensemble_init(init_mlp, optax.adam(1e-2), ensemble_size=E, seed=seed)
    assert isinstance(state, EnsembleState)
    assert state.params.layers[0].weight.shape == (E, 8, 1)
    assert state.params.activation is jax.nn.tanh
    assert state.opt_state[0].count.shape == (E,)
    for e, key in enumerate(jr.split(seed, E)):
        np.testing.assert_array_equal(flat(member(state.params, e)), flat(init_mlp(key)))


@pytest.mark.slow
def test_ensemble_step_equals_independent_optax_steps(data):
    x, y = data
    optimizer = optax.adam(1e-2)
    seed = jr.PRNGKey(3)
    state = ensemble_init(init_mlp, optimizer, ensemble_size=E, seed=seed)
    step = eqx.filter_jit(
        lambda s: ensemble_step(s, x, y, log_joint=log_joint, optimizer=optimizer)
    )
    history = []
    for _ in range(5):
        state, losses = step(state)
        history.append(losses)

    for e, key in enumerate(jr.split(seed, E)):
        params, static = eqx.partition(init_mlp(key), eqx.is_inexact_array)
        opt_state = optimizer.init(params)

        def neg_log_joint(p, static=static):
            loglik, logprior = log_joint(eqx.combine(p, static), x, y)
            return -loglik - logprior

        for t in range(5):
            value, grads = jax.value_and_grad(neg_log_joint)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            np.testing.assert_allclose(history[t][e], value, rtol=1e-6)
        np.testing.assert_allclose(flat(member(state.params, e)), flat(params), atol=1e-6)


@pytest.mark.slow
def test_prior_weight_zero_gives_mle_gradient(data):
    x, y = data
    mlp = init_mlp(jr.PRNGKey(0))

    def nan_prior(params, xb, yb):
        return log_joint(params, xb, yb)[0], jnp.array(jnp.nan)

    loss = ensemble_loss(nan_prior, prior_weight=0.0)
    grads = eqx.filter_grad(loss)(mlp, x, y)
    mle = eqx.filter_grad(lambda m: -log_joint(m, x, y)[0])(mlp)
    np.testing.assert_allclose(flat(grads), flat(mle), rtol=1e-6, atol=1e-7)
    assert np.isfinite(float(loss(mlp, x, y)))

    lr = 1e-3
    state = ensemble_init(init_mlp, optax.sgd(lr), ensemble_size=E, seed=jr.PRNGKey(1))
    new, _ = ensemble_step(
        state, x, y, log_joint=nan_prior, optimizer=optax.sgd(lr), prior_weight=0.0
    )
    for e in range(E):
        before = member(state.params, e)
        g = eqx.filter_grad(lambda m: -log_joint(m, x, y)[0])(before)
        np.testing.assert_allclose(
            flat(member(new.params, e)), flat(before) - lr * flat(g), rtol=1e-5, atol=1e-7
        )


def test_prior_weight_scales_the_prior_term(data):
    x, y = data
    mlp = init_mlp(jr.PRNGKey(0))
    loglik, logprior = log_joint(mlp, x, y)
    value = ensemble_loss(log_joint, prior_weight=0.25, scale=2.0)(mlp, x, y)
    np.testing.assert_allclose(value, -2.0 * loglik - 0.25 * logprior, rtol=1e-6)
    with pytest.raises(ValueError, match="prior_weight"):
        ensemble_loss(log_joint, prior_weight=-1.0)


def test_minibatch_scale_makes_loss_unbiased(data):
    x, y = data
    n, b = x.shape[0], 6
    mlp = init_mlp(jr.PRNGKey(5))
    full = ensemble_loss(log_joint)
    full_value, full_grad = eqx.filter_value_and_grad(full)(mlp, x, y)
    batch_loss = eqx.filter_value_and_grad(ensemble_loss(log_joint, scale=n / b))
    batches = epoch_batches(jr.PRNGKey(9), n, b)
    assert batches.shape == (n // b, b)
    assert sorted(np.asarray(batches).ravel().tolist()) == list(range(n))
    values, grads = zip(*(batch_loss(mlp, x[idx], y[idx]) for idx in batches), strict=True)
    np.testing.assert_allclose(np.mean(values), full_value, rtol=1e-5)
    np.testing.assert_allclose(
        np.mean([flat(g) for g in grads], axis=0), flat(full_grad), rtol=1e-4, atol=1e-4
    )


def test_epoch_batches_drop_the_remainder_without_repeats():
    batches = np.asarray(epoch_batches(jr.PRNGKey(0), 10, 4))
    assert batches.shape == (2, 4)
    assert len(set(batches.ravel().tolist())) == 8


def test_ensemble_predict_matches_members():
    state = ensemble_init(init_mlp, optax.sgd(0.1), ensemble_size=E, seed=jr.PRNGKey(2))
    x = jnp.linspace(-1.0, 1.0, 11)
    preds = ensemble_predict(state.params, predict, x)
    assert preds.shape == (E, 11)
    for e in range(E):
        np.testing.assert_allclose(preds[e], predict(member(state.params, e), x), rtol=1e-6)


def test_dict_params_and_invalid_size():
    def init_line(key):
        return {"w": jr.normal(key, ()), "b": jnp.zeros(())}

    state = ensemble_init(init_line, optax.sgd(0.1), ensemble_size=4, seed=jr.PRNGKey(0))
    assert state.params["w"].shape == (4,)
    with pytest.raises(ValueError, match="ensemble_size"):
        ensemble_init(init_line, optax.sgd(0.1), ensemble_size=0, seed=jr.PRNGKey(0))
