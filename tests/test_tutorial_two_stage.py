"""Run tutorials/two_stage_inverse.py end to end: k = 2 inside the 90 % interval, R-hat < 1.01,
and the recorded chain is the one the kernel advanced (PITFALLS 7)."""

import runpy
from pathlib import Path

import jax
import numpy as np
import pytest

from jno.lower.evaluate import model_key

from figures import lines_by_label, recording_savefig

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "two_stage_inverse.py"
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow


def test_two_stage_inverse_tutorial(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    with recording_savefig() as figures:
        ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    res = ns["RESULTS"]
    lo, hi = res["k_90"]
    assert lo < 2.0 < hi, res["k_90"]
    assert hi - lo < 1.0  # informative, not just wide
    assert res["rhat"] < 1.01
    assert res["ess"] > 400
    assert 0.8 < res["acceptance"] < 1.0
    # the learned residual scale is the surrogate's: its u'' error is of the same order
    assert 0.3 * res["uxx_rms_error"] < res["s_mean"] < 3.0 * res["uxx_rms_error"]
    # a fixed std=0.05 would be overconfident here (the motivation in the text)
    flo, fhi = res["fixed_std_90"]
    assert fhi - flo < 0.1 * (hi - lo)
    # PITFALLS 7: the recorded chain is the sampled one
    k, crux = ns["k"], ns["crux"]
    chain = k.posterior_samples
    assert chain.shape == (4, 500, 1)
    assert len(np.unique(chain)) > 1500
    np.testing.assert_array_equal(np.asarray(k.module), chain[0, -1])
    position = crux.solver.state.blocks[0].kernel.position
    k_state = [leaf for key, leaf in position.items() if key.startswith(model_key(k) + ".")]
    np.testing.assert_array_equal(np.asarray(k_state[0]), chain[:, -1])
    assert jax.tree.leaves(position)  # the block holds k and log_s
    assert (tmp_path / "two_stage_inverse.png").stat().st_size > 0
    # what the figure draws: the truths sin(πx) and -π² sin(πx), a histogram per chain, k = 2
    fig = figures["two_stage_inverse.png"]
    assert len(fig.axes) == 3
    u_ax, uxx_ax, k_ax = fig.axes
    grid, truth = lines_by_label(u_ax)["truth"]
    np.testing.assert_allclose(truth, np.sin(np.pi * grid), atol=1e-6)
    grid, truth = lines_by_label(uxx_ax)["truth"]
    np.testing.assert_allclose(truth, -(np.pi**2) * np.sin(np.pi * grid), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(lines_by_label(k_ax)["k = 2"][0], 2.0)
    hist = [p for p in k_ax.patches if p.get_label().startswith("chain ")]
    assert sorted(p.get_label() for p in hist) == [f"chain {c}" for c in range(4)]
