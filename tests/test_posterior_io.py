"""to_arviz(crux), save_posterior and load_posterior: what is stored, the round trip, errors.

Most tests put seeded synthetic draws on the models in the layout the solver publishes
(``(K, N, *param)``, networks as the module with stacked leaves) and check the file against
those arrays; one test runs a real 2-chain NUTS solve and checks that ``crux.eval`` on the
loaded posterior equals ``crux.eval`` before saving.
"""

import blackjax
import equinox as eqx
import jax
import numpy as np
import pytest

import jno
from jno.bayesian import load_posterior, save_posterior, to_arviz

az = pytest.importorskip("arviz")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

K, N = 2, 30


def build(net_name="u", a_shape=(1,), hidden=3, nuts=False):
    """The same small problem each time: u(x) + a·sin(πx) fitted to 2 sin(πx)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter(a_shape, key=jax.random.PRNGKey(0), name="a")
    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=hidden, num_layers=1, key=jax.random.PRNGKey(1)), name=net_name
    )
    if nuts:
        for m in (a, net):
            m.bayesian(blackjax.nuts, warmup=10, keep=8, num_chains=2)
    pred = a * jno.np.sin(jno.np.pi * x) + net(x)
    crux = jno.core([(pred - 2.0 * jno.np.sin(jno.np.pi * x)).gaussian(std=0.3)])
    return crux, a, net, pred


def stack(module, rng, lead):
    """``module`` with every inexact leaf replaced by seeded draws of shape ``lead + shape``."""

    def one(leaf):
        if not eqx.is_inexact_array(leaf):
            return leaf
        return (np.asarray(leaf) + 0.1 * rng.standard_normal(lead + leaf.shape)).astype(leaf.dtype)

    return jax.tree.map(one, module)


def diagnostics(rng, lead):
    return {
        "acceptance_rate": rng.random(lead).astype(np.float32),
        "energy": rng.standard_normal(lead).astype(np.float32),
        "is_divergent": rng.random(lead) < 0.2,
        "nonfinite": rng.random(lead) < 0.1,
    }


def fake_posterior(a, net, *, chains=True, shared=True, seed=0):
    rng = np.random.default_rng(seed)
    lead = (K, N) if chains else (N,)
    a.posterior_samples = (2.0 + 0.1 * rng.standard_normal(lead + (1,))).astype(np.float32)
    net.posterior_samples = stack(net.module, rng, lead)
    d = diagnostics(rng, lead)
    a.posterior_diagnostics = d
    net.posterior_diagnostics = dict(d) if shared else diagnostics(rng, lead)


def net_leaves(net_samples):
    flat, _ = jax.tree_util.tree_flatten_with_path(eqx.filter(net_samples, eqx.is_inexact_array))
    return {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat}


def test_crux_posterior_variables_and_sample_stats():
    crux, a, net, _ = build()
    fake_posterior(a, net)
    idata = to_arviz(crux)
    post = idata.posterior
    names = {
        "a",
        "u.layers[0].weight",
        "u.layers[0].bias",
        "u.output_layer.weight",
        "u.output_layer.bias",
    }
    assert set(post.data_vars) == names
    assert post.sizes["chain"] == K and post.sizes["draw"] == N
    np.testing.assert_array_equal(post["a"].values, a.posterior_samples)
    np.testing.assert_array_equal(
        post["u.layers[0].weight"].values, net.posterior_samples.layers[0].weight
    )
    assert post["u.output_layer.weight"].shape == (K, N, 1, 3)
    stats = idata.sample_stats
    # one joint block: flat arviz names
    assert set(stats.data_vars) == {"diverging", "acceptance_rate", "energy", "nonfinite"}
    np.testing.assert_array_equal(
        stats["diverging"].values, a.posterior_diagnostics["is_divergent"]
    )
    np.testing.assert_array_equal(stats["energy"].values, a.posterior_diagnostics["energy"])
    # arviz reads the divergences from it
    assert int(stats["diverging"].values.sum()) == int(
        a.posterior_diagnostics["is_divergent"].sum()
    )
    # every model's point value is stored
    np.testing.assert_array_equal(idata.point_estimate["a"].values, np.asarray(a.module))
    np.testing.assert_array_equal(
        idata.point_estimate["u.output_layer.bias"].values, np.asarray(net.module.output_layer.bias)
    )


def test_gibbs_blocks_get_prefixed_stats_and_a_joint_diverging():
    crux, a, net, _ = build()
    fake_posterior(a, net, shared=False)
    stats = to_arviz(crux).sample_stats
    assert {"a.diverging", "u.diverging", "a.energy", "u.energy", "diverging"} <= set(
        stats.data_vars
    )
    np.testing.assert_array_equal(
        stats["diverging"].values,
        a.posterior_diagnostics["is_divergent"] | net.posterior_diagnostics["is_divergent"],
    )


def test_nonfinite_is_diverging_without_is_divergent():
    crux, a, net, _ = build()
    fake_posterior(a, net)
    rng = np.random.default_rng(3)
    d = {"acceptance_rate": rng.random((K, N)), "nonfinite": rng.random((K, N)) < 0.3}
    a.posterior_diagnostics = d
    net.posterior_diagnostics = d
    stats = to_arviz(crux).sample_stats
    assert set(stats.data_vars) == {"diverging", "acceptance_rate"}
    np.testing.assert_array_equal(stats["diverging"].values, d["nonfinite"])


def test_single_chain_layout_gets_a_chain_axis(tmp_path):
    crux, a, net, pred = build()
    fake_posterior(a, net, chains=False)
    idata = to_arviz(crux)
    assert idata.posterior["a"].shape == (1, N, 1)
    np.testing.assert_array_equal(idata.posterior["a"].values[0], a.posterior_samples)
    before = crux.eval([pred])
    assert before.shape == (N, 11, 1)
    save_posterior(crux, tmp_path / "one.nc")
    crux2, a2, net2, pred2 = build()
    load_posterior(tmp_path / "one.nc", crux2)
    assert a2.posterior_samples.shape == (N, 1)
    assert a2.posterior_diagnostics["energy"].shape == (N,)
    np.testing.assert_array_equal(crux2.eval([pred2]), before)


def test_round_trip_restores_samples_diagnostics_and_eval(tmp_path):
    crux, a, net, pred = build()
    fake_posterior(a, net)
    before = crux.eval([pred])
    path = save_posterior(crux, tmp_path / "post.nc")
    assert path == tmp_path / "post.nc" and path.exists()
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]

    crux2, a2, net2, pred2 = build()
    assert not np.array_equal(crux2.eval([pred2]), before[0, 0])
    idata = load_posterior(path, crux2)
    assert set(idata.posterior.data_vars) == set(to_arviz(crux).posterior.data_vars)
    np.testing.assert_array_equal(a2.posterior_samples, a.posterior_samples)
    assert a2.posterior_samples.dtype == a.posterior_samples.dtype
    old, new = net_leaves(net.posterior_samples), net_leaves(net2.posterior_samples)
    assert old.keys() == new.keys()
    for k in old:
        np.testing.assert_array_equal(new[k], old[k])
        assert new[k].dtype == old[k].dtype
    for field, value in a.posterior_diagnostics.items():
        np.testing.assert_array_equal(a2.posterior_diagnostics[field], value)
        assert a2.posterior_diagnostics[field].dtype == value.dtype
    np.testing.assert_array_equal(crux2.eval([pred2]), before)
    # the activation (a static leaf) comes from the template module
    assert net2.posterior_samples.activation is net2.module.activation


def test_load_without_crux_returns_inference_data(tmp_path):
    crux, a, net, _ = build()
    fake_posterior(a, net)
    save_posterior(crux, tmp_path / "p.nc")
    idata = load_posterior(tmp_path / "p.nc")
    np.testing.assert_array_equal(idata.posterior["a"].values, a.posterior_samples)
    np.testing.assert_allclose(
        az.rhat(idata)["a"].values, jno.bayesian.rhat(a.posterior_samples), rtol=1e-3
    )


def test_mismatched_crux_raises_and_changes_nothing(tmp_path):
    crux, a, net, _ = build()
    fake_posterior(a, net)
    path = save_posterior(crux, tmp_path / "p.nc")

    other, a2, _, _ = build(net_name="v")
    with pytest.raises(ValueError, match=r"model 'u' is in .* but not in the crux.*'a', 'v'"):
        load_posterior(path, other)
    assert a2.posterior_samples is None  # 'a' matched but nothing was set

    wide, *_ = build(hidden=4)
    with pytest.raises(
        ValueError, match=r"model 'u' leaf '.layers\[0\].weight' has shape \(3, 1\)"
    ):
        load_posterior(path, wide)

    big, *_ = build(a_shape=(2,))
    with pytest.raises(
        ValueError, match=r"model 'a' has shape \(1,\) in .* but \(2,\) in the crux"
    ):
        load_posterior(path, big)


def test_file_without_manifest_is_refused_for_a_crux(tmp_path):
    plain = tmp_path / "plain.nc"
    to_arviz({"a": np.zeros((K, N, 1))}).to_netcdf(str(plain))
    crux, *_ = build()
    with pytest.raises(ValueError, match="no jno manifest"):
        load_posterior(plain, crux)
    assert load_posterior(plain).posterior["a"].shape == (K, N, 1)


def test_unsolved_crux_has_nothing_to_export():
    crux, *_ = build()
    with pytest.raises(ValueError, match="no model of this crux has posterior samples"):
        to_arviz(crux)
    with pytest.raises(TypeError, match="needs a crux"):
        save_posterior({"a": np.zeros((K, N))}, "x.nc")


@pytest.mark.slow
def test_nuts_round_trip(tmp_path):
    """A real 2-chain NUTS solve: history and eval survive the file."""
    crux, a, net, pred = build(nuts=True)
    crux.solve(print_rate=9, progress=False)
    before = crux.eval([pred])
    assert before.shape == (2, 8, 11, 1)
    path = save_posterior(crux, tmp_path / "nuts.nc")

    crux2, a2, net2, pred2 = build(nuts=True)
    idata = load_posterior(path, crux2)
    np.testing.assert_array_equal(crux2.eval([pred2]), before)
    np.testing.assert_array_equal(
        crux2.eval([pred2], samples="point"), crux.eval([pred], samples="point")
    )
    hist = idata.loss_history
    np.testing.assert_array_equal(hist["step"].values, crux.history.steps)
    np.testing.assert_array_equal(hist["total"].values, crux.history.total_loss)
    for name, values in crux.history.losses.items():
        np.testing.assert_array_equal(hist[name].values, values)
    d = a.posterior_diagnostics
    np.testing.assert_array_equal(idata.sample_stats["diverging"].values, d["is_divergent"])
    np.testing.assert_array_equal(
        idata.sample_stats["acceptance_rate"].values, d["acceptance_rate"]
    )
    assert set(a2.posterior_diagnostics) == set(d)
