"""to_arviz: variable naming, layout checks, sample_stats, and the missing-arviz message."""

import builtins

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jno.bayesian.export import to_arviz

az = pytest.importorskip("arviz")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

K, N = 2, 40


@pytest.fixture(scope="module")
def stacked_mlp():
    """An eqx MLP stacked over (K, N), as in a module's posterior_samples."""
    mlp = eqx.nn.MLP(2, 1, 3, 1, key=jax.random.PRNGKey(0))
    rng = np.random.default_rng(1)

    def stack(leaf):
        if not eqx.is_array(leaf):
            return leaf
        return np.asarray(leaf) + 0.1 * rng.standard_normal((K, N, *leaf.shape))

    return jax.tree.map(stack, mlp)


def test_module_leaves_become_named_variables(stacked_mlp):
    a = np.random.default_rng(0).standard_normal((K, N, 1))
    idata = to_arviz({"a": a, "net": stacked_mlp})
    post = idata.posterior
    assert set(post.data_vars) == {
        "a",
        "net.layers[0].weight",
        "net.layers[0].bias",
        "net.layers[1].weight",
        "net.layers[1].bias",
    }
    assert post.sizes["chain"] == K and post.sizes["draw"] == N
    assert post["net.layers[0].weight"].shape == (K, N, 3, 2)
    np.testing.assert_array_equal(post["net.layers[1].bias"].values, stacked_mlp.layers[1].bias)
    np.testing.assert_array_equal(post["a"].values, a)


def test_nested_dicts_and_scalar_parameters():
    rng = np.random.default_rng(1)
    idata = to_arviz({"theta": {"mu": rng.standard_normal((K, N)), "sd": [rng.random((K, N, 2))]}})
    assert set(idata.posterior.data_vars) == {"theta.mu", "theta.sd[0]"}
    assert idata.posterior["theta.mu"].dims == ("chain", "draw")


def test_diagnostics_go_to_sample_stats():
    a = np.zeros((K, N, 1))
    flat = {"is_divergent": np.zeros((K, N), bool), "acceptance_rate": np.full((K, N), 0.8)}
    idata = to_arviz({"a": a}, flat)
    assert set(idata.sample_stats.data_vars) == {"diverging", "acceptance_rate"}
    assert idata.sample_stats["diverging"].dtype == bool

    nested = to_arviz({"a": a}, {"a": flat, "b": {"energy": jnp.ones((K, N))}})
    assert set(nested.sample_stats.data_vars) == {"a.diverging", "a.acceptance_rate", "b.energy"}


def test_exported_chains_give_our_diagnostics():
    from jno.bayesian.diagnostics import ess, rhat

    x = np.random.default_rng(2).standard_normal((2, 64, 13))
    idata = to_arviz({"x": x})
    np.testing.assert_allclose(az.rhat(idata)["x"].values, rhat(x), rtol=1e-3)
    np.testing.assert_allclose(az.ess(idata)["x"].values, ess(x), rtol=1e-3)


def test_layout_errors():
    with pytest.raises(TypeError, match=r"dict \{name: chains\}"):
        to_arviz(np.zeros((K, N)))
    with pytest.raises(ValueError, match=r"'b' has shape \(3, 40\).*\(2, 40\)"):
        to_arviz({"a": np.zeros((K, N)), "b": np.zeros((3, N))})
    with pytest.raises(ValueError, match=r"'acceptance_rate' has shape \(2, 39\)"):
        to_arviz({"a": np.zeros((K, N))}, {"acceptance_rate": np.zeros((K, N - 1))})
    with pytest.raises(TypeError, match="no array leaves"):
        to_arviz({"a": None})
    with pytest.raises(ValueError, match="empty"):
        to_arviz({})


def test_missing_arviz_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_arviz(name, *args, **kwargs):
        if name == "arviz" or name.startswith("arviz."):
            raise ImportError("No module named 'arviz'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_arviz)
    with pytest.raises(ImportError, match="pip install arviz"):
        to_arviz({"a": np.zeros((K, N))})
