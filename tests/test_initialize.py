"""Model.initialize: a path, a pytree, a (shape, dtype, key) callable."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno


def test_parameter_from_npy_and_array(tmp_path):
    path = tmp_path / "a.npy"
    np.save(path, np.array([1.5, -2.0], dtype=np.float32))
    a = jno.np.parameter((2,), name="a").initialize(str(path))
    np.testing.assert_array_equal(np.asarray(a.module), [1.5, -2.0])
    a.initialize(jnp.array([0.25, 0.5]))
    np.testing.assert_array_equal(np.asarray(a.module), [0.25, 0.5])
    with pytest.raises(ValueError, match="shape"):
        a.initialize(jnp.zeros(3))


def test_network_from_eqx_file_and_callable(tmp_path):
    mlp = jno.nn.mlp(2, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(0))
    other = jno.nn.mlp(2, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(1))
    path = tmp_path / "net.eqx"
    eqx.tree_serialise_leaves(path, other)
    net = jno.nn.wrap(mlp).initialize(str(path))
    for p, q in zip(
        jax.tree.leaves(net.params()), jax.tree.leaves(eqx.filter(other, eqx.is_array))
    ):
        np.testing.assert_array_equal(np.asarray(p), np.asarray(q))
    net.initialize(lambda shape, dtype, key: jnp.full(shape, 0.5, dtype))
    assert all(np.all(np.asarray(leaf) == 0.5) for leaf in jax.tree.leaves(net.params()))
    x = jnp.ones(2)
    assert float(net.module(x)[0]) == pytest.approx(0.5 + 4 * 0.5 * np.tanh(0.5 * 2 + 0.5))
