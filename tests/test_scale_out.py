"""Chain methods and meshes (``jno.core(mesh=, chain_method=)``, docs/scale_out.md) on forced
CPU devices and two CPU processes, each in a subprocess (the device count is fixed before jax
is imported; tests/layout_runs.py runs the solves).

The promise tested: one layout repeated gives bit-identical draws; other layouts give the
same first transition to float32 round-off and the same posterior (means and sds within
4 MCSE of each other and of the exact conjugate posterior); a PINN with its points sharded
over 4 devices has the single-device loss and parameters to round-off."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import jno

from stats import assert_gaussian_within, mcse_mean, mcse_sd

RUNS = Path(__file__).with_name("layout_runs.py")
ROUND_OFF = dict(rtol=1e-5, atol=1e-6)  # float32: a few ulps grown over a short path


def _env():
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(jno.__file__).parents[1]), str(RUNS.parent)])
    return env


def _runs(tmp_path_factory, mode):
    out = tmp_path_factory.mktemp(mode) / "runs.json"
    done = subprocess.run(
        [sys.executable, str(RUNS), mode, str(out)],
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return _runs(tmp_path_factory, "devices")


def _draws(run) -> np.ndarray:
    return np.asarray(run["draws"], np.float64)  # (K, N)


def assert_same_posterior(a, b, n_mcse=4.0):
    """Means and sds of two sets of draws within ``n_mcse`` MCSE of their difference."""
    (ma, _), (mb, _) = mcse_mean(a), mcse_mean(b)
    tol = n_mcse * np.hypot(ma, mb)
    assert abs(a.mean() - b.mean()) < tol, (a.mean(), b.mean(), tol)
    (sa, _), (sb, _) = mcse_sd(a), mcse_sd(b)
    tol = n_mcse * np.hypot(sa, sb)
    assert abs(a.std() - b.std()) < tol, (a.std(), b.std(), tol)


def test_vectorized_draws_match_the_exact_posterior(runs):
    ref = runs["vectorized"]
    assert runs["devices"] == 4
    assert _draws(ref).shape == (4, 200)
    assert_gaussian_within(_draws(ref), ref["exact_mean"], ref["exact_sd"])


@pytest.mark.parametrize("method", ["sequential", "parallel"])
def test_other_chain_methods_give_the_same_first_transition_and_posterior(runs, method):
    first = np.asarray(runs[f"first_{method}"]["draws"])
    first_ref = np.asarray(runs["first_vectorized"]["draws"])
    start = np.asarray(runs["first_vectorized"]["starts"])[:, None]
    assert np.all(np.abs(first_ref - start) > 1e-3)  # a no-op would pass the equality below
    np.testing.assert_allclose(first, first_ref, **ROUND_OFF)
    assert_same_posterior(_draws(runs[method]), _draws(runs["vectorized"]))


def test_a_repeated_layout_is_bit_identical(runs):
    """The default layout (4 chains over the 4 devices) and the same mesh given as sizes."""
    np.testing.assert_array_equal(_draws(runs["parallel"]), _draws(runs["parallel_again"]))


def test_pinn_points_sharded_over_4_devices_match_one_device(runs):
    one, four = runs["pinn_one"], runs["pinn_points"]
    assert four["spec"] == ["points"] and one["spec"] == []
    loss = np.asarray(one["loss"])
    assert loss[-1] < 0.5 * loss[0]  # it trained: equal losses are not two frozen runs
    np.testing.assert_allclose(four["loss"], one["loss"], rtol=1e-5)
    np.testing.assert_allclose(four["params"], one["params"], rtol=1e-5, atol=1e-6)


def test_layouts_that_cannot_run_name_the_fix(runs):
    err = runs["errors"]
    assert "chain_method='parallel'" in err["vectorized_on_chains"]
    assert "3 chain(s)" in err["indivisible"] and "multiple of 4" in err["indivisible"]
    assert "mesh={'chains': D}" in err["parallel_indivisible"]


def test_bad_layout_arguments_are_errors():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.5))
    x, _ = dom.variable("interior")
    constraints = [(x - 1.0).mse]
    with pytest.raises(ValueError, match="chain_method"):
        jno.core(constraints, chain_method="pmap")
    with pytest.raises(ValueError, match="'chains'.*'points'"):
        jno.core(constraints, mesh={"batch": 1})
    with pytest.raises(TypeError, match="jax.sharding.Mesh"):
        jno.core(constraints, mesh=4)
    with pytest.raises(ValueError, match="devices asked for"):
        jno.core(constraints, mesh={"chains": 64})


@pytest.mark.slow
def test_ensemble_members_sharded_match_vectorized(tmp_path_factory):
    runs = _runs(tmp_path_factory, "ensemble")
    ref = np.asarray(runs["ensemble_one"]["members"])
    assert np.ptp(ref) > 0.1  # distinct members
    for method in ("parallel", "sequential"):
        np.testing.assert_allclose(runs[f"ensemble_{method}"]["members"], ref, **ROUND_OFF)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_two_devices(tmp_path, runs):
    """``jax.distributed`` on localhost (gloo): the chains split over 2 x 2 devices; process
    0 holds ``posterior_samples`` of all chains and alone writes the checkpoint."""
    port, out = _free_port(), tmp_path / "multihost.json"
    procs = [
        subprocess.Popen(
            [sys.executable, str(RUNS), "multihost", str(out), str(i), str(port), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )  # fmt: skip
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=300)[1])
    finally:
        for p in procs:
            p.kill()
    if any(p.returncode == 77 for p in procs):
        pytest.skip("this jaxlib has no gloo CPU collectives: " + logs[0][-500:])
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-2000:] for log in logs)
    got = json.loads(out.read_text())
    assert (got["processes"], got["devices"], got["local_devices"]) == (2, 4, 2)
    assert (tmp_path / "run0.ckpt").is_file() and not (tmp_path / "run1.ckpt").exists()
    np.testing.assert_array_equal(_draws(got["parallel"]), _draws(got["parallel_again"]))
    np.testing.assert_allclose(
        got["first_parallel"]["draws"], runs["first_vectorized"]["draws"], **ROUND_OFF
    )
    assert_same_posterior(_draws(got["parallel"]), _draws(runs["vectorized"]))
    ref = got["parallel"]
    assert_gaussian_within(_draws(ref), ref["exact_mean"], ref["exact_sd"])
