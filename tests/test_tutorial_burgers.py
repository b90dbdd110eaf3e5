"""Run tutorials/burgers.py end to end: its error equals the error against an independent
Fourier-spectral solve written here, it beats the frozen initial condition, and RAD moved the
interior points towards the front at x = 0. Slow: about a minute on two CPU cores (1000 of the
tutorial's 6000 L-BFGS steps). The tutorial turns float64 on; the test turns it back."""

import importlib.util
import runpy
from pathlib import Path

import jax
import numpy as np
import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "burgers.py"


def spectral_burgers(times, nx=1024, dt=5e-5):
    """``(k (nx,), Fourier coefficients (len(times), nx))`` of the benchmark's independent
    periodic spectral solve (benchmarks/pinn_problems.py), for trigonometric interpolation."""
    path = TUTORIAL.parents[1] / "benchmarks" / "pinn_problems.py"
    spec = importlib.util.spec_from_file_location("pinn_problems", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, u = bench.spectral_burgers(nx, times, dt)
    return np.fft.fftfreq(nx, d=2 / nx) * 2 * np.pi, np.fft.fft(u, axis=1)


@pytest.fixture
def restore_x64():
    before = jax.config.jax_enable_x64
    yield
    jax.config.update("jax_enable_x64", before)


@pytest.mark.slow  # about a minute on two shared CPU cores
def test_burgers_tutorial(tmp_path, monkeypatch, restore_x64):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("JNO_TUTORIAL_STEPS", "1000")
    ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    res, times = ns["RESULTS"], ns["TIMES"]
    pts, pred = res["points"], res["pred"]
    # the reference at the tutorial's points by trigonometric interpolation of the spectral solve
    k, coef = spectral_burgers(times)
    exact = np.empty(len(pts))
    for i, s in enumerate(times):
        at = np.isclose(pts[:, 1], s)
        phase = np.exp(1j * np.outer(pts[at, 0] + 1, k))
        exact[at] = np.real(phase @ coef[i]) / k.size
    err = np.linalg.norm(pred - exact) / np.linalg.norm(exact)
    np.testing.assert_allclose(res["error"], err, rtol=1e-3)
    frozen = -np.sin(np.pi * pts[:, 0])  # no evolution at all
    assert res["error"] < 0.5 * np.linalg.norm(frozen - exact) / np.linalg.norm(exact)
    # RAD: more interior points within 0.1 of the front than a uniform spread puts there on
    # average. How many more depends on the trained residual at the last move, and training is
    # chaotic in round-off: the same run gave 0.114 and 0.148 natively (hoisting on or off) and
    # 0.132 under SSE4_2, so a 4-binomial-sd margin (0.127) is not a property of the code. RAD's
    # selection law itself is checked exactly in tests/test_resample.py.
    coords = res["coords"]
    near = np.mean(np.abs(coords[:, 0]) < 0.1)
    assert near > 0.1
    assert (tmp_path / "burgers.png").stat().st_size > 0
