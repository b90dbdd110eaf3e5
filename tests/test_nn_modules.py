"""MLP and LoRA modules (pure equinox, no DSL)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jno.nn.lora import LoRALinear, lora, lora_mask, merge_lora
from jno.nn.mlp import MLP, mlp

from stats import assert_mean_within, assert_sd_within


def _forward_by_hand(net, x, activation=jnp.tanh):
    h = x
    for layer in net.layers:
        h = activation(layer.weight @ h + layer.bias)
    return net.output_layer.weight @ h + net.output_layer.bias


@pytest.fixture(scope="module")
def base():
    return mlp(3, 2, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def adapted(base):
    return base, lora(base, rank=2, alpha=4.0, key=jax.random.PRNGKey(1))


def test_mlp_shapes_and_forward(base):
    assert isinstance(base, MLP)
    assert len(base.layers) == 2
    assert [layer.weight.shape for layer in base.layers] == [(8, 3), (8, 8)]
    assert base.output_layer.weight.shape == (2, 8)
    x = jnp.array([0.3, -0.7, 0.2])
    y = base(x)
    assert y.shape == (2,)
    np.testing.assert_allclose(y, _forward_by_hand(base, x), rtol=1e-6)
    batch = jax.random.normal(jax.random.PRNGKey(1), (5, 3))
    assert jax.vmap(base)(batch).shape == (5, 2)


def test_mlp_defaults_and_sequence_widths():
    key = jax.random.PRNGKey(0)
    default = eqx.filter_eval_shape(mlp, 1, key=key)
    assert [layer.weight.shape for layer in default.layers] == [(32, 1), (32, 32), (32, 32)]
    assert default.output_layer.weight.shape == (1, 32)
    assert default.activation is jnp.tanh
    wide = eqx.filter_eval_shape(mlp, 1, 2, hidden_dims=(8, 4), num_layers=5, key=key)
    assert [layer.weight.shape for layer in wide.layers] == [(8, 1), (4, 8)]
    affine = eqx.filter_eval_shape(mlp, 2, 1, num_layers=0, key=key)
    assert affine.layers == () and affine.output_layer.weight.shape == (1, 2)


def test_mlp_custom_activation(base):
    relu_net = mlp(
        3, 2, hidden_dims=8, num_layers=2, activation=jax.nn.relu, key=jax.random.PRNGKey(0)
    )
    x = jnp.array([-0.4, 0.9, 0.1])
    np.testing.assert_allclose(relu_net(x), _forward_by_hand(base, x, jax.nn.relu), rtol=1e-6)


def test_mlp_init_is_glorot_with_zero_bias(base):
    net = mlp(128, 1, hidden_dims=128, num_layers=1, key=jax.random.PRNGKey(0))
    weight = net.layers[0].weight
    # 16 384 i.i.d. entries of N(0, 2/(128+128)): mean at 4 MCSE, sd at 5 MCSE_sd
    # (tests/stats.py; ESS ≈ 16 384, so the sd tolerance is ≈ 2.8 %)
    entries = np.asarray(weight, np.float64).ravel()
    assert_mean_within(entries, 0.0, sd=np.sqrt(2 / 256), what="glorot weight mean")
    assert_sd_within(entries, np.sqrt(2 / 256), what="glorot weight sd")
    assert all(float(jnp.abs(layer.bias).max()) == 0 for layer in (*net.layers, net.output_layer))
    other = mlp(3, 2, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(1))
    assert not np.allclose(other.layers[1].weight, base.layers[1].weight)


def test_mlp_activation_is_static_and_output_layer_masks(base):
    leaves = jax.tree_util.tree_leaves(base)
    assert len(leaves) == 6 and all(isinstance(leaf, jax.Array) for leaf in leaves)
    all_false = jax.tree_util.tree_map(lambda _: False, base)
    head_true = jax.tree_util.tree_map(lambda _: True, base.output_layer)
    head_mask = eqx.tree_at(lambda m: m.output_layer, all_false, replace=head_true)
    assert sum(jax.tree_util.tree_leaves(head_mask)) == 2


def test_mlp_errors(base):
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        base(jnp.zeros(2))
    with pytest.raises(ValueError, match="hidden_dims"):
        mlp(1, hidden_dims=(8, 0), key=jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match="num_layers"):
        mlp(1, num_layers=-1, key=jax.random.PRNGKey(0))


def test_lora_replaces_every_linear(adapted):
    base, net = adapted
    layers = (*net.layers, net.output_layer)
    assert all(isinstance(layer, LoRALinear) for layer in layers)
    assert [layer.A.shape for layer in layers] == [(2, 3), (2, 8), (2, 8)]
    assert [layer.B.shape for layer in layers] == [(8, 2), (8, 2), (2, 2)]
    assert not np.allclose(layers[0].A, layers[1].A[:, :3])  # independent keys
    np.testing.assert_array_equal(net.layers[0].weight, base.layers[0].weight)


def test_lora_equals_base_at_init(adapted):
    base, net = adapted
    x = jnp.array([0.1, -0.2, 0.3])
    np.testing.assert_allclose(net(x), base(x), rtol=1e-6)


def test_lora_low_rank_update(adapted):
    base, net = adapted
    A = jax.random.normal(jax.random.PRNGKey(2), (2, 8))
    B = jax.random.normal(jax.random.PRNGKey(3), (2, 2))
    net = eqx.tree_at(lambda m: (m.output_layer.A, m.output_layer.B), net, (A, B))
    x = jnp.array([0.1, -0.2, 0.3])
    h = x
    for layer in base.layers:
        h = jnp.tanh(layer(h))
    expected = base.output_layer(h) + (4.0 / 2) * (B @ (A @ h))
    np.testing.assert_allclose(net(x), expected, rtol=1e-5)


def test_lora_base_weights_are_frozen(adapted):
    _, net = adapted
    net = eqx.tree_at(lambda m: m.output_layer.B, net, jnp.ones((2, 2)))
    grads = eqx.filter_grad(lambda m: jnp.sum(m(jnp.array([0.1, -0.2, 0.3])) ** 2))(net)
    for layer in (*grads.layers, grads.output_layer):
        assert float(jnp.abs(layer.weight).max()) == 0
        assert float(jnp.abs(layer.bias).max()) == 0
    assert float(jnp.abs(grads.output_layer.B).max()) > 0
    assert float(jnp.abs(grads.layers[0].A).max()) == 0  # upstream B is still zero


def test_lora_mask_marks_adapters_only(adapted):
    _, net = adapted
    mask = lora_mask(net)
    assert jax.tree_util.tree_structure(mask) == jax.tree_util.tree_structure(net)
    for layer in (*mask.layers, mask.output_layer):
        assert (layer.A, layer.B, layer.weight, layer.bias) == (True, True, False, False)
    trainable = jax.tree_util.tree_leaves(eqx.filter(net, mask))
    assert sum(leaf.size for leaf in trainable) == sum(
        2 * (i + o) for i, o in [(3, 8), (8, 8), (8, 2)]
    )


def test_merge_lora_equivalence(adapted):
    _, net = adapted
    keys = jax.random.split(jax.random.PRNGKey(4), 3)
    net = eqx.tree_at(
        lambda m: [m.layers[0].B, m.layers[1].B, m.output_layer.B],
        net,
        [jax.random.normal(k, s) for k, s in zip(keys, [(8, 2), (8, 2), (2, 2)])],
    )
    merged = merge_lora(net)
    assert all(type(layer) is eqx.nn.Linear for layer in (*merged.layers, merged.output_layer))
    x = jax.random.normal(jax.random.PRNGKey(5), (7, 3))
    np.testing.assert_allclose(jax.vmap(merged)(x), jax.vmap(net)(x), rtol=1e-5, atol=1e-6)


def test_lora_on_any_module_and_scalar_linear():
    key = jax.random.PRNGKey(0)
    module = eqx.nn.Sequential(
        [
            eqx.nn.Linear("scalar", 4, key=key),
            eqx.nn.Lambda(jnp.sin),
            eqx.nn.Linear(4, "scalar", use_bias=False, key=key),
        ]
    )
    adapted = lora(module, rank=1, key=jax.random.PRNGKey(1))
    assert adapted(jnp.array(0.3)).shape == ()
    np.testing.assert_allclose(adapted(jnp.array(0.3)), module(jnp.array(0.3)), rtol=1e-6)
    adapted = eqx.tree_at(lambda m: m.layers[2].B, adapted, jnp.ones((1, 1)))
    np.testing.assert_allclose(
        merge_lora(adapted)(jnp.array(0.3)), adapted(jnp.array(0.3)), rtol=1e-6
    )
    assert merge_lora(adapted).layers[2].bias is None


def test_lora_errors(base):
    with pytest.raises(ValueError, match="no linear layer to adapt; searched for an equinox "
                       "module with a 2-D inexact array field 'weight'"):
        lora(eqx.nn.Lambda(jnp.sin), rank=1, key=jax.random.PRNGKey(0))
    # a convolution has a 3-D weight: not a linear layer
    with pytest.raises(ValueError, match="no linear layer"):
        lora(eqx.nn.Conv1d(1, 2, 3, key=jax.random.PRNGKey(0)), rank=1, key=jax.random.PRNGKey(0))


class OwnLinear(eqx.Module):
    """A user's linear layer: not eqx.nn.Linear, applied as ``x @ W.T + b``."""

    weight: jax.Array
    bias: jax.Array
    tag: str = eqx.field(static=True, default="mine")

    def __call__(self, x, *, key=None):
        return x @ self.weight.T + self.bias


def test_lora_adapts_a_users_own_linear_layer_by_structure():
    from jno.nn import is_linear_layer

    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    layer = OwnLinear(jax.random.normal(k1, (3, 2)), jax.random.normal(k2, (3,)))
    model = eqx.nn.Sequential([layer, eqx.nn.Lambda(jnp.tanh)])
    assert is_linear_layer(layer) and not is_linear_layer(eqx.nn.Lambda(jnp.tanh))
    adapted = lora(model, rank=1, alpha=2.0, key=jax.random.PRNGKey(1))
    assert isinstance(adapted.layers[0], LoRALinear)
    xs = jax.random.normal(jax.random.PRNGKey(2), (5, 2))
    np.testing.assert_allclose(adapted(xs), model(xs), rtol=1e-6)  # B = 0: unchanged
    # with B set, the output is x Wᵀ + b + (α/r)(x Aᵀ)Bᵀ, and merging gives the user's class back
    moved = eqx.tree_at(lambda m: m.layers[0].B, adapted, jnp.ones((3, 1)))
    A = moved.layers[0].A
    want = jnp.tanh(xs @ layer.weight.T + layer.bias + 2.0 * (xs @ A.T) @ jnp.ones((1, 3)))
    np.testing.assert_allclose(moved(xs), want, rtol=1e-5)
    merged = merge_lora(moved)
    assert type(merged.layers[0]) is OwnLinear and merged.layers[0].tag == "mine"
    np.testing.assert_allclose(merged(xs), want, rtol=1e-5)
    with pytest.raises(ValueError, match="rank"):
        lora(base, rank=0, key=jax.random.PRNGKey(0))
