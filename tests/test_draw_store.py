"""Draws streamed to a zarr store (``crux.solve(store=...)``): the same posterior as in memory,
read lazily, trimmed to ``keep`` across continued solves, and resumed from a checkpoint."""

import blackjax
import equinox as eqx
import jax
import numpy as np
import pytest

import jno
from jno.solve.draw_store import StoredDraws

zarr = pytest.importorskip("zarr")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def build(keep=30, seed=2, kernel=blackjax.nuts, **kw):
    """u(x) + a·sin(πx) fitted to 2 sin(πx): a Parameter and a network, two chains."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), key=jax.random.PRNGKey(0), name="a")
    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(1)), name="u"
    )
    for m in (a, net):
        m.bayesian(kernel, warmup=40, keep=keep, num_chains=2, **kw)
    pred = a * jno.np.sin(jno.np.pi * x) + net(x)
    crux = jno.core([(pred - 2.0 * jno.np.sin(jno.np.pi * x)).gaussian(std=0.3)], seed=seed)
    return crux, a, net, pred


def leaves(samples):
    return [np.asarray(x) for x in jax.tree.leaves(eqx.filter(samples, lambda v: not callable(v)))]


def assert_same_posterior(streamed, in_memory):
    s, m = leaves(streamed), leaves(in_memory)
    assert len(s) == len(m)
    for x, y in zip(s, m):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_streamed_draws_equal_the_in_memory_ones_and_read_lazily(tmp_path):
    store = tmp_path / "draws.zarr"
    crux, a, net, pred = build()
    crux.solve(print_rate=20, store=store)
    ref, ra, rnet, rpred = build()
    ref.solve(print_rate=20)

    assert isinstance(a.posterior_samples, StoredDraws) and a.posterior_samples.shape == (2, 30, 1)
    weight = net.posterior_samples.layers[0].weight
    assert isinstance(weight, StoredDraws)
    np.testing.assert_array_equal(np.asarray(a.posterior_samples), ra.posterior_samples)
    assert_same_posterior(net.posterior_samples, rnet.posterior_samples)
    for d in ("acceptance_rate", "is_divergent", "energy"):
        np.testing.assert_array_equal(a.posterior_diagnostics[d], ra.posterior_diagnostics[d])
    # crux.eval pushes the stored draws through chain by chain: the same band (a vmap over
    # N instead of K*N draws may round differently)
    np.testing.assert_allclose(crux.eval(pred), ref.eval(rpred), rtol=1e-6, atol=1e-6)

    # the store on disk: one group per block, chain-major leaves, the rows written
    root = zarr.open_group(str(store), mode="r")
    (group,) = list(root.group_keys())
    assert root[group].attrs["total"] == 30
    paths = {root[group][name].attrs["path"] for name in root[group].array_keys()}
    assert "[model0.0]" in paths and "[model1.0].layers[0].weight" in paths and len(paths) == 5


def test_stored_draws_index_like_numpy(tmp_path):
    arr = zarr.open_array(str(tmp_path / "x.zarr"), mode="w", shape=(3, 12, 2), chunks=(1, 5, 2),
                          dtype="f4")
    full = np.random.default_rng(0).standard_normal((3, 12, 2)).astype(np.float32)
    arr[:] = full
    view, ref = StoredDraws(arr, 4, 11), full[:, 4:11]
    assert view.shape == ref.shape and view.ndim == 3 and view.size == ref.size and len(view) == 3
    np.testing.assert_array_equal(np.asarray(view), ref)
    for key in [0, -1, (slice(None), -1), (1, slice(2, None)), (slice(None), slice(None, None, 2)),
                (2, 3, 1), (slice(None), slice(-3, None)), (Ellipsis, 0), (slice(None), [0, 5]),
                (slice(None), slice(None, None, -1))]:
        np.testing.assert_array_equal(view[key], ref[key], err_msg=str(key))


@pytest.mark.slow
def test_continued_solve_keeps_the_last_keep_rows_and_checkpoint_resume(tmp_path):
    """A continued solve appends to the store and the view is the last ``keep`` rows; a
    Ctrl-C'd streaming solve resumes from its checkpoint (reopening the recorded store) to the
    draws of an uninterrupted run. (MALA: no tree building, a quicker compile.)"""
    mala = {"kernel": blackjax.mala, "step_size": 2e-3}
    crux, a, net, _ = build(keep=20, **mala)
    crux.solve(print_rate=20, store=tmp_path / "s.zarr")
    crux.solve(30, print_rate=10)  # keeps streaming to the same store
    ref, ra, rnet, _ = build(keep=20, **mala)
    ref.solve(print_rate=20)
    ref.solve(30, print_rate=10)
    assert a.posterior_samples.shape == (2, 20, 1)
    np.testing.assert_array_equal(np.asarray(a.posterior_samples), ra.posterior_samples)
    assert_same_posterior(net.posterior_samples, rnet.posterior_samples)
    root = zarr.open_group(str(tmp_path / "s.zarr"), mode="r")
    assert [root[g].attrs["total"] for g in root.group_keys()] == [50]

    ckpt, store = tmp_path / "run.ckpt", tmp_path / "run.zarr"

    def stop(info):
        if info.step >= 60:
            raise KeyboardInterrupt

    killed, ka, _, _ = build(keep=30, **mala)
    killed.solve(print_rate=10, store=store, checkpoint=ckpt, checkpoint_every=100,
                 callbacks=[stop])
    assert ka.posterior_samples.shape == (2, 20, 1)
    resumed, qa, qnet, _ = build(keep=30, **mala)
    resumed.solve(print_rate=10, resume_from=ckpt)
    full, fa, fnet, _ = build(keep=30, **mala)
    full.solve(print_rate=10)
    assert isinstance(qa.posterior_samples, StoredDraws)
    np.testing.assert_array_equal(np.asarray(qa.posterior_samples), fa.posterior_samples)
    assert_same_posterior(qnet.posterior_samples, fnet.posterior_samples)

    # resuming after the store was replaced by a shorter one is refused by name
    build(keep=30, **mala)[0].solve(50, print_rate=10, store=store)
    with pytest.raises(ValueError, match="holds 10 rows .* checkpoint counted 20"):
        build(keep=30, **mala)[0].solve(print_rate=10, resume_from=ckpt)
