"""Run tutorials/bayesian_last_layer_pinn.py (pattern B) end to end and check its band."""

import runpy
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "bayesian_last_layer_pinn.py"


def test_bayesian_last_layer_tutorial(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    results = runpy.run_path(str(TUTORIAL), run_name="__main__")["RESULTS"]
    # the 95 % band of the sampled head covers sin(πx) at >= 90 % of the 201 test points
    assert results["coverage"] >= 0.9
    # the band's median is a good PINN solution
    assert results["rel_l2_median"] < 0.02
    # and the band is the head's exact conditional posterior (closed form, u linear in the head)
    assert 0.75 < results["sd_ratio_vs_exact_conditional"] < 1.33
    assert results["mean_err_in_exact_sd"] < 1.0
    # a body still moving while draws are kept gives a band far wider than that posterior
    assert results["constant_lr"]["sd_ratio"] > 2.0
    assert (tmp_path / "bayesian_last_layer_pinn.png").stat().st_size > 0
