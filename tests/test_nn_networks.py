"""Point-wise PINN networks: Fourier features, the modified MLP and random weight factorisation.

Every forward pass is compared with a hand-written numpy/jnp computation from the module's
own weights; the Fourier-feature embedding is shown to be untrainable (it is not an inexact
leaf) and to beat a plain MLP on a high-frequency fit at an equal budget, through the DSL.
"""

from __future__ import annotations

import logging

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.nn import FourierFeatures, RWFLinear


@pytest.fixture(autouse=True)
def _quiet_jno():
    logger = logging.getLogger("jno")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def _dense(layer, h):
    return np.asarray(layer.weight) @ h + np.asarray(layer.bias)


# ----------------------------------------------------------------------------- Fourier features
def test_fourier_features_match_the_formula():
    ff = FourierFeatures(2, 16, 3.0, jax.random.PRNGKey(0))
    B = np.asarray(ff.B)
    assert B.shape == (16, 2) and ff.out_features == 32
    # B ~ N(0, 3²): σ times jax.random.normal of the given key, drawn by hand
    np.testing.assert_allclose(B, 3.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(0), (16, 2))),
                               rtol=1e-6)
    x = np.array([0.3, -0.8])
    z = 2 * np.pi * B @ x
    np.testing.assert_allclose(
        ff(jnp.asarray(x)), np.concatenate([np.cos(z), np.sin(z)]), atol=1e-5
    )
    # An explicit B is stored bit for bit.
    given = np.array([[1.5], [-0.25], [np.pi]], np.float32)
    ff2 = FourierFeatures(1, 3, B=given)
    assert np.array_equal(np.asarray(ff2.B), given)
    z = 2 * np.pi * given[:, 0] * 0.1
    np.testing.assert_allclose(
        ff2(jnp.array([0.1])), np.concatenate([np.cos(z), np.sin(z)]), atol=1e-6
    )
    with pytest.raises(ValueError, match="one point of shape"):
        ff(jnp.ones(3))


def test_fourier_B_is_not_a_parameter():
    net = jno.nn.fourier_mlp(
        1, 1, num_features=8, sigma=5.0, hidden_dims=8, num_layers=1, key=jax.random.PRNGKey(1)
    )
    B0 = np.asarray(net.embedding.B)
    params = eqx.filter(net, eqx.is_inexact_array)
    assert params.embedding.B_bits is None  # not among the inexact (trainable) leaves
    assert not jnp.issubdtype(net.embedding.B_bits.dtype, jnp.inexact)

    xs = jnp.linspace(0, 1, 16)[:, None]

    def loss(p):
        model = eqx.combine(p, eqx.filter(net, eqx.is_inexact_array, inverse=True))
        return jnp.mean((jax.vmap(model)(xs)[:, 0] - jnp.sin(10 * xs[:, 0])) ** 2)

    tx = optax.sgd(1.0)
    grads = jax.grad(loss)(params)
    updates, _ = tx.update(grads, tx.init(params))
    stepped = eqx.combine(
        optax.apply_updates(params, updates), eqx.filter(net, eqx.is_inexact_array, inverse=True)
    )
    assert np.array_equal(np.asarray(stepped.embedding.B), B0)
    assert not np.allclose(stepped.mlp.output_layer.weight, net.mlp.output_layer.weight)


def _fit_high_frequency(module, steps=600):
    """Fit sin(20πx) on 257 points of [0, 1] by ``.mse`` through the DSL; relative L2 error."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / 256))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(module, name="u").optimizer(optax.adam(5e-3))
    crux = jno.core([(net(x) - jno.np.sin(20 * jno.np.pi * x)).mse])
    crux.solve(steps, print_rate=steps)
    pred = np.asarray(crux.eval(net(x)))[:, 0]
    truth = np.sin(20 * np.pi * dom.points("interior")[:, 0])
    return float(np.linalg.norm(pred - truth) / np.linalg.norm(truth)), net


def test_fourier_mlp_beats_plain_mlp_on_a_high_frequency_target():
    key = jax.random.PRNGKey(0)
    ff_module = jno.nn.fourier_mlp(
        1, 1, num_features=32, sigma=10.0, hidden_dims=32, num_layers=2, key=key
    )
    B0 = np.asarray(ff_module.embedding.B)
    ff_err, ff_net = _fit_high_frequency(ff_module)
    plain_err, _ = _fit_high_frequency(jno.nn.mlp(1, 1, hidden_dims=32, num_layers=2, key=key))
    message = f"Fourier-feature MLP error {ff_err:.3g}, plain MLP error {plain_err:.3g}"
    assert ff_err < 0.05, message
    assert plain_err > 0.5, message  # the spectral bias: a plain tanh MLP barely moves
    assert np.array_equal(np.asarray(ff_net.module.embedding.B), B0)  # B untouched by solve


# ----------------------------------------------------------------------------- modified MLP
def test_modified_mlp_forward_by_hand():
    net = jno.nn.modified_mlp(3, 2, hidden_dims=8, num_layers=3, key=jax.random.PRNGKey(2))
    assert len(net.layers) == 3
    assert [layer.weight.shape for layer in net.layers] == [(8, 3), (8, 8), (8, 8)]
    x = np.array([0.2, -0.5, 0.9])
    u = np.tanh(_dense(net.encoder_u, x))
    v = np.tanh(_dense(net.encoder_v, x))
    h = np.tanh(_dense(net.layers[0], x))
    for layer in net.layers[1:]:
        z = np.tanh(_dense(layer, h))
        h = (1 - z) * u + z * v
    expected = _dense(net.output_layer, h)
    np.testing.assert_allclose(net(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)
    assert jax.vmap(net)(jnp.ones((4, 3))).shape == (4, 2)


def test_modified_mlp_with_fourier_embedding_by_hand():
    key1, key2 = jax.random.split(jax.random.PRNGKey(3))
    ff = FourierFeatures(1, 4, 2.0, key1)
    net = jno.nn.modified_mlp(1, 1, hidden_dims=6, num_layers=2, embedding=ff, key=key2)
    assert net.encoder_u.weight.shape == (6, 8)
    x = np.array([0.37])
    z = 2 * np.pi * np.asarray(ff.B) @ x
    e = np.concatenate([np.cos(z), np.sin(z)])
    u, v = np.tanh(_dense(net.encoder_u, e)), np.tanh(_dense(net.encoder_v, e))
    h = np.tanh(_dense(net.layers[0], e))
    gate = np.tanh(_dense(net.layers[1], h))
    h = (1 - gate) * u + gate * v
    np.testing.assert_allclose(
        net(jnp.asarray(x)), _dense(net.output_layer, h), rtol=1e-5, atol=1e-6
    )


# ----------------------------------------------------------------------------- RWF
def test_rwf_layer_weight_is_diag_exp_s_times_v():
    layer = RWFLinear(5, 4, mean=1.0, std=0.1, key=jax.random.PRNGKey(4))
    s, V = np.asarray(layer.s), np.asarray(layer.V)
    W = np.diag(np.exp(s)) @ V
    np.testing.assert_allclose(layer.weight, W, rtol=1e-6)
    x = np.array([0.1, -0.2, 0.3, 0.7, -1.1])
    np.testing.assert_allclose(layer(jnp.asarray(x)), W @ x + np.asarray(layer.bias), rtol=1e-5)
    # The initial effective weight is Glorot normal: factorising only rescales V. By hand
    # with the same keys: W = sqrt(2 / (fan_in + fan_out)) ε_W, s = mean + std ε_s.
    wide = RWFLinear(200, 200, mean=1.0, std=0.1, key=jax.random.PRNGKey(5))
    k_w, k_s = jax.random.split(jax.random.PRNGKey(5))
    eps_w = np.asarray(jax.random.normal(k_w, (200, 200)))
    eps_s = np.asarray(jax.random.normal(k_s, (200,)))
    np.testing.assert_allclose(wide.weight, np.sqrt(2 / 400) * eps_w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(wide.s, 1.0 + 0.1 * eps_s, rtol=1e-6)


def test_rwf_mlp_forward_by_hand():
    net = jno.nn.rwf_mlp(2, 3, hidden_dims=(8, 5), key=jax.random.PRNGKey(6))
    x = np.array([0.4, -0.3])
    h = x
    for layer in net.layers:
        h = np.tanh(np.diag(np.exp(layer.s)) @ np.asarray(layer.V) @ h + np.asarray(layer.bias))
    out = net.output_layer
    expected = np.diag(np.exp(out.s)) @ np.asarray(out.V) @ h + np.asarray(out.bias)
    np.testing.assert_allclose(net(jnp.asarray(x)), expected, rtol=1e-5, atol=1e-6)
    leaves = jax.tree_util.tree_leaves(net)
    assert len(leaves) == 9 and all(eqx.is_inexact_array(leaf) for leaf in leaves)


# ----------------------------------------------------------------------------- configurators
def _sine_data_model(module):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / 32))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(module, name="u")
    return net, x, net(x) - jno.np.sin(jno.np.pi * x)


@pytest.mark.parametrize(
    "build",
    [
        lambda: jno.nn.modified_mlp(1, 1, hidden_dims=16, num_layers=3, key=jax.random.PRNGKey(7)),
        lambda: jno.nn.rwf_mlp(1, 1, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(8)),
    ],
    ids=["modified_mlp", "rwf_mlp"],
)
@pytest.mark.slow
def test_ensemble_trains(build):
    module = build()
    net, x, residual = _sine_data_model(module)
    net.ensemble(size=2, optimizer=optax.adam(1e-2), prior_weight=0.0)
    crux = jno.core([residual.mse])
    losses = crux.solve(200, print_rate=200).total_loss
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.1 * losses[0], f"loss {losses[0]:.3g} -> {losses[-1]:.3g}"
    assert np.asarray(crux.eval(net(x))).shape == (1, 2, 33, 1)  # (1, E, points, 1)


@pytest.mark.slow
def test_fourier_mlp_bayesian_last_layer_matches_conjugate_posterior():
    """Sample only the head of a Fourier-feature MLP (the rest held at its initial value):
    a Bayesian linear regression on fixed features, whose posterior mean is known exactly."""
    module = jno.nn.fourier_mlp(
        1, 1, num_features=8, sigma=1.0, hidden_dims=16, num_layers=1, key=jax.random.PRNGKey(9)
    )
    B0 = np.asarray(module.embedding.B)
    net, x, residual = _sine_data_model(module)
    false = jax.tree_util.tree_map(lambda _: False, net.module)
    head = eqx.tree_at(
        lambda m: (m.mlp.output_layer.weight, m.mlp.output_layer.bias), false, (True, True)
    )
    std, prior_sigma = 0.05, 10.0
    net.mask(head).bayesian(blackjax.nuts, warmup=300, keep=300)
    crux = jno.core([residual.gaussian(std=std)])
    crux.solve(600, print_rate=600)
    weights = np.asarray(net.posterior_samples.mlp.output_layer.weight)
    assert weights.shape == (300, 1, 16) and np.all(np.isfinite(weights))
    assert np.array_equal(np.asarray(net.module.embedding.B), B0)
    pred = np.asarray(crux.eval(net(x)))[:, :, 0]  # (draws, points)

    # Exact: y = Φ θ + ε with Φ = [hidden features, 1], θ ~ N(0, 10² I), ε ~ N(0, 0.05²).
    xs = np.linspace(0, 1, 33)[:, None]
    body = module.mlp
    feats = jax.vmap(lambda p: jnp.tanh(body.layers[0](module.embedding(p))))(jnp.asarray(xs))
    phi = np.concatenate([np.asarray(feats, np.float64), np.ones((len(xs), 1))], axis=1)
    precision = phi.T @ phi / std**2 + np.eye(phi.shape[1]) / prior_sigma**2
    mean = np.linalg.solve(precision, phi.T @ np.sin(np.pi * xs[:, 0]) / std**2)
    exact = phi @ mean
    gap = float(np.sqrt(np.mean((pred.mean(axis=0) - exact) ** 2)))
    assert gap < 0.01, f"posterior predictive mean vs conjugate answer: RMSE {gap:.3g}"
