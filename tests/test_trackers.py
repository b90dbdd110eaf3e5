"""Trackers: the guide's wandb keys (read back from an offline run) and TensorBoard scalars
(read back from the event file) hold the values of the solve they watched."""

import glob

import blackjax
import numpy as np
import pytest

import jno

from tracker_files import tensorboard_scalars, wandb_history

wandb = pytest.importorskip("wandb")
pytest.importorskip("tensorboardX")


def _problem():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 3.0 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=100, keep=100, num_chains=2, init_jitter=0.3)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=0.1)], seed=1)
    return crux, a


@pytest.mark.slow
def test_wandb_offline_and_tensorboard_hold_the_guides_statistics(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = wandb.init(project="jno-test", dir=str(tmp_path))
    try:
        assert isinstance(jno.trackers.active_trackers(None)[0], jno.trackers.WandbTracker)
        crux, a = _problem()
        tb = jno.trackers.TensorBoardTracker(tmp_path / "tb")
        crux.solve(print_rate=50, trackers=[jno.trackers.WandbTracker(run), tb])
    finally:
        run.finish()
    assert jno.trackers.active_trackers(None) == []  # no active run: nowhere

    (path,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    rows = wandb_history(path)
    assert [r["_step"] for r in rows] == [150, 200]
    last = rows[-1]
    d = a.posterior_diagnostics
    assert last["posterior/a/n_samples"] == 100 and last["posterior/a/n_chains"] == 2
    np.testing.assert_allclose(last["posterior/a/mean"], np.mean(a.posterior_samples), rtol=1e-6)
    assert last["posterior/a/n_is_divergent"] == np.sum(d["is_divergent"])
    np.testing.assert_allclose(
        last["posterior/a/mean_acceptance_rate"], np.mean(d["acceptance_rate"]), rtol=1e-6
    )
    np.testing.assert_allclose(last["posterior/a/mean_energy"], np.mean(d["energy"]), rtol=1e-6)
    np.testing.assert_allclose(last["loss/total"], crux.history.total_loss[-1], rtol=1e-6)
    assert rows[0]["posterior/a/n_samples"] == 50  # draws so far, after the first chunk

    scalars = tensorboard_scalars(tmp_path / "tb")
    assert [s for s, _ in scalars["posterior/a/mean"]] == [150, 200]
    for key in ("posterior/a/mean", "posterior/a/mean_energy", "loss/total"):
        np.testing.assert_allclose(scalars[key][-1][1], last[key], rtol=1e-6)


def test_a_tracker_without_log_is_refused():
    crux, _ = _problem()
    with pytest.raises(TypeError, match="log\\(metrics, step\\)"):
        crux.solve(print_rate=50, trackers=[object()])
