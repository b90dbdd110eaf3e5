"""R-hat, bulk ESS and the summary table against arviz and closed-form expectations."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jno.bayesian.diagnostics import Summary, ess, format_summary, rhat, summary

az = pytest.importorskip("arviz")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def ar1(seed, k, n, phi, shape=()):
    """K stationary AR(1) chains with unit marginal variance, shape (K, N, *shape)."""
    eps = np.random.default_rng(seed).standard_normal((k, n, *shape))
    x = np.empty_like(eps)
    x[:, 0] = eps[:, 0]
    for t in range(1, n):
        x[:, t] = phi * x[:, t - 1] + np.sqrt(1.0 - phi**2) * eps[:, t]
    return x


def az_rhat(x):
    return az.rhat(az.convert_to_dataset(x), method="rank")["x"].values


def az_ess(x):
    return az.ess(az.convert_to_dataset(x), method="bulk")["x"].values


def ref_single_chain_rhat(x):
    """Rank-normalised folded split-R-hat of one chain (1, N), written out with scipy."""
    n = x.shape[1] // 2
    halves = np.stack([x[0, :n], x[0, x.shape[1] - n :]])

    def z(a):
        r = stats.rankdata(a, method="average").reshape(a.shape)
        return stats.norm.ppf((r - 3 / 8) / (a.size + 1 / 4))

    def psr(a):
        w = a.var(axis=1, ddof=1).mean()
        b_over_n = a.mean(axis=1).var(ddof=1)
        return np.sqrt(((n - 1) / n * w + b_over_n) / w)

    return max(psr(z(halves)), psr(z(np.abs(halves - np.median(halves)))))


# Arviz parity cases, name: (seed, K, N, phi, param shape).
CASES = {
    "iid": (0, 4, 1000, 0.0, ()),
    "ar_strong": (1, 4, 1000, 0.9, ()),
    "matrix": (4, 4, 1000, 0.6, (2, 3)),
    "odd_n": (2, 2, 501, 0.5, (2, 3)),
    "short": (3, 8, 200, 0.3, (1,)),
    "single_chain": (5, 1, 1000, 0.8, (3,)),
}
# Fifteen short chains: blackjax's ess_bulk drifts from Stan/arviz by up to a few % on some
# draws like these (it caps Stan's last "improved" term monotonically); ours must not.
MANY = [(100 + i, 8, 200, phi, ()) for i, phi in enumerate([0.0, 0.4, 0.8] * 5)]


@pytest.fixture(scope="module")
def bank():
    """Every draw set of the statistical tests, in one dict.

    rhat/ess batch the leaves that share (K, N) into one compiled computation, so the whole
    bank costs one compilation per (K, N) group instead of one per test.
    """
    rng = np.random.default_rng(7)
    out = {name: ar1(*case[:4], case[4]) for name, case in CASES.items()}
    out["many"] = [ar1(*case) for case in MANY]
    out["iid_wide"] = rng.standard_normal((4, 1000, 20))
    out["iid_single"] = rng.standard_normal((1, 1000, 20))
    out["ar_wide"] = ar1(8, 4, 1000, 0.5, (20,))  # autocorrelation time (1 + .5)/(1 - .5) = 3
    out["shifted"] = rng.standard_normal((4, 1000, 3)) + np.array([0, 0, 0, 3.0])[:, None, None]
    # Same mean, different spread: the bulk R-hat misses it, the folded one does not.
    out["wide_chain"] = rng.standard_normal((4, 1000)) * np.array([1, 1, 1, 3.0])[:, None]
    # Every chain alternates between two levels quarter by quarter: the halves (and the
    # chains) share one distribution, the quarters that strategy="split" compares do not.
    level = np.where((np.arange(1000) // 250) % 2 == 0, 1.5, -1.5)
    out["quarter_shift"] = level + rng.standard_normal((4, 1000))
    degenerate = rng.standard_normal((4, 1000, 3))
    degenerate[..., 0] = 1.5  # a frozen leaf (outside a mask)
    degenerate[0, 7, 1] = np.nan
    out["degenerate"] = degenerate
    return out


def multichain(bank):
    return {k: v for k, v in bank.items() if k not in ("single_chain", "iid_single")}


@pytest.fixture(scope="module")
def rhats(bank):
    return rhat(multichain(bank), strategy="multichain")


@pytest.fixture(scope="module")
def esss(bank):
    return ess(bank)


@pytest.mark.parametrize("name", [n for n in CASES if n != "single_chain"])
def test_rhat_matches_arviz_rank(bank, rhats, name):
    assert rhats[name].shape == CASES[name][4]
    np.testing.assert_allclose(np.asarray(rhats[name]), az_rhat(bank[name]), rtol=1e-3)


@pytest.mark.parametrize("name", list(CASES))
def test_ess_matches_arviz_bulk(bank, esss, name):
    assert esss[name].shape == CASES[name][4]
    np.testing.assert_allclose(np.asarray(esss[name]), az_ess(bank[name]), rtol=1e-3)


def test_rhat_and_ess_match_arviz_over_many_seeds(bank, rhats, esss):
    for x, r, e in zip(bank["many"], rhats["many"], esss["many"], strict=True):
        np.testing.assert_allclose(float(r), az_rhat(x), rtol=1e-3)
        np.testing.assert_allclose(float(e), az_ess(x), rtol=1e-3)


def test_ess_of_iid_draws_is_close_to_total_draws(esss):
    # Pitfall 1: tau = 1 + 2*(rho0 + rho1 + ...) gives ESS ~ K*N/3 on i.i.d. draws.
    for name, total in [("iid_wide", 4000), ("iid_single", 1000)]:
        ratio = np.asarray(esss[name]) / total
        assert abs(ratio.mean() - 1.0) < 0.1
        np.testing.assert_array_less(np.abs(ratio - 1.0), 0.25)


def test_ess_of_ar1_chains_tracks_the_autocorrelation_time(esss):
    ratio = np.asarray(esss["ar_wide"]) / (4000 / 3.0)
    assert abs(ratio.mean() - 1.0) < 0.1


def test_rhat_converged_shifted_and_wrong_scale(rhats):
    assert np.all(np.asarray(rhats["iid_wide"]) < 1.01)
    assert np.all(np.asarray(rhats["shifted"]) > 1.1)
    assert float(rhats["wide_chain"]) > 1.1


def test_constant_and_nan_components_are_undefined_without_poisoning_others(rhats, esss):
    for value in (rhats["degenerate"], esss["degenerate"]):
        value = np.asarray(value)
        assert np.isnan(value[0]) and np.isnan(value[1]) and np.isfinite(value[2])


def test_single_chain_rhat_is_split_rhat_of_the_halves(bank):
    single = {"a": bank["single_chain"], "b": bank["iid_single"]}
    auto = rhat(single)
    np.testing.assert_array_equal(auto["a"], rhat(single, "split")["a"])
    for name in ("a", "b"):
        x = single[name]
        ref = [ref_single_chain_rhat(x[..., i]) for i in range(x.shape[-1])]
        np.testing.assert_allclose(np.asarray(auto[name]), ref, rtol=1e-3)


def test_split_strategy_on_several_chains(bank, rhats):
    group = {k: v for k, v in multichain(bank).items() if k != "many" and v.shape[:2] == (4, 1000)}
    split = rhat(group, strategy="split")
    # "split" with K >= 2 = the multichain R-hat of the 2K half-chains ...
    halves = {k: np.concatenate([v[:, :500], v[:, 500:]], axis=0) for k, v in group.items()}
    on_halves = rhat(halves, strategy="multichain")
    for name in group:
        np.testing.assert_allclose(split[name], on_halves[name], rtol=1e-5)
    np.testing.assert_allclose(split["matrix"], az_rhat(halves["matrix"]), rtol=1e-3)
    # ... so it sees non-stationarity inside the halves that "auto" (= "multichain") misses.
    assert float(rhats["quarter_shift"]) < 1.05
    assert float(split["quarter_shift"]) > 1.1


def test_strategy_errors():
    with pytest.raises(ValueError, match=r"K=1.*num_chains"):
        rhat(np.zeros((1, 100, 2)), strategy="multichain")
    with pytest.raises(ValueError, match="strategy must be one of"):
        rhat(np.zeros((2, 100)), strategy="classic")
    with pytest.raises(ValueError, match="N >= 8"):
        rhat(np.zeros((2, 6)), strategy="split")


@pytest.mark.parametrize("fn", [rhat, ess])
def test_layout_errors(fn):
    with pytest.raises(ValueError, match=r"\(K, N, \*param\) layout.*chain\[None\]"):
        fn(np.zeros(100))
    with pytest.raises(ValueError, match=r"4 draws.*K=2, N=3"):
        fn(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"leaf 'b'"):
        fn({"a": np.ones((2, 10)), "b": np.ones((10,))})
    with pytest.raises(TypeError, match="no array leaves"):
        fn({"a": [1.0, 2.0]})
    with pytest.raises(TypeError, match="real-valued"):
        fn(np.zeros((2, 10), dtype=np.complex64))


@pytest.mark.slow
def test_pytrees_are_mapped_leaf_by_leaf():
    mlp = eqx.nn.MLP(2, 1, 3, 1, key=jax.random.PRNGKey(0))  # 6 + 3 + 3 + 1 = 13 numbers
    draws = jax.random.normal(jax.random.PRNGKey(1), (2, 64, 13))
    # A stacked module, as in posterior_samples: leaf l has shape (K, N, *l.shape).
    leaves, treedef = jax.tree.flatten(eqx.filter(mlp, eqx.is_array))
    parts = jnp.split(draws, np.cumsum([leaf.size for leaf in leaves])[:-1], axis=2)
    chain_leaves = [p.reshape(2, 64, *leaf.shape) for p, leaf in zip(parts, leaves)]
    chains = eqx.combine(jax.tree.unflatten(treedef, chain_leaves), mlp)

    for fn in (rhat, ess):
        out = fn(chains)
        assert isinstance(out, eqx.nn.MLP) and out.activation is None
        assert out.layers[0].weight.shape == (3, 2) and out.layers[1].bias.shape == (1,)
        flat = jnp.concatenate([leaf.ravel() for leaf in jax.tree.leaves(out)])
        np.testing.assert_allclose(flat, fn(draws), rtol=1e-6)
    d = ess({"a": draws[..., 0], "b": {"c": draws[..., 1:]}})
    assert d["a"].shape == () and d["b"]["c"].shape == (12,)
    np.testing.assert_allclose(d["b"]["c"], ess(draws)[1:], rtol=1e-6)


def test_jit_compatible():
    x = jnp.asarray(ar1(70, 2, 64, 0.3, (13,)))
    np.testing.assert_allclose(jax.jit(ess)(x), ess(x), rtol=1e-5)


def test_summary_rows_and_table(bank):
    a = bank["matrix"][..., 0, :2] + np.array([3.0, -1.0])
    w = bank["iid_wide"][..., :4].reshape(4, 1000, 2, 2)
    s = summary({"a": a, "b": bank["iid"], "net": {"layers": [{"weight": w}]}}, prob=0.9)
    assert isinstance(s, Summary) and s.prob == 0.9
    names = [row.name for row in s.rows]
    assert names == ["a[0]", "a[1]", "b"] + [
        f"net.layers[0].weight[{i},{j}]" for i in range(2) for j in range(2)
    ]
    pooled = a.reshape(-1, 2)
    row = s.rows[1]
    np.testing.assert_allclose(row.mean, pooled[:, 1].mean(), rtol=1e-5)
    np.testing.assert_allclose(row.std, pooled[:, 1].std(ddof=1), rtol=1e-5)
    np.testing.assert_allclose([row.lo, row.hi], np.quantile(pooled[:, 1], [0.05, 0.95]), rtol=1e-5)
    np.testing.assert_allclose(row.rhat, az_rhat(a)[1], rtol=1e-3)
    np.testing.assert_allclose(row.ess, az_ess(a)[1], rtol=1e-3)

    table = format_summary(s)
    lines = table.splitlines()
    assert lines[0].split() == ["name", "mean", "std", "5%", "95%", "r_hat", "ess_bulk"]
    assert len(lines) == 1 + len(names) and lines[2].startswith("a[1]") and str(s) == table
    with pytest.raises(ValueError, match="prob"):
        summary({"a": a}, prob=1.5)
