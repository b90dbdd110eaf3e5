"""Run tutorials/bayesian_last_layer_pinn.py (pattern B) end to end and check its band."""

import runpy
from pathlib import Path

import numpy as np
import pytest

from figures import lines_by_label, recording_savefig

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "bayesian_last_layer_pinn.py"
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow


def test_bayesian_last_layer_tutorial(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    with recording_savefig() as figures:
        ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    results = ns["RESULTS"]
    # the 95 % band of the sampled head covers sin(πx) at >= 90 % of the 201 test points
    assert results["coverage"] >= 0.9
    # the band's median is a good PINN solution
    assert results["rel_l2_median"] < 0.02
    # and the band is the head's exact conditional posterior (closed form, u linear in the
    # head), within 5 MCSE at every test point. The MCSEs come from the bulk ESS of the draws
    # at that point (the head mixes slowly at this step size: ESS about 10 over 4 chains, so
    # this is a loose check): se(mean) = sd / sqrt(ESS), se(sd) / sd = 1 / sqrt(2 ESS).
    from jno.bayesian.convergence import bulk_ess

    draws = np.asarray(ns["u_draws"]).reshape(ns["K"], -1, ns["u_draws"].shape[-1])
    ess = bulk_ess(draws)
    flat = draws.reshape(-1, draws.shape[-1])
    ref_mean, ref_sd = ns["ref_mean"], ns["ref_sd"]
    assert np.all(np.abs(flat.mean(axis=0) - ref_mean) < 5 * ref_sd / np.sqrt(ess))
    assert np.all(np.abs(flat.std(axis=0) / ref_sd - 1) < 5 / np.sqrt(2 * ess))
    # a body still moving while draws are kept gives a band far wider than that posterior
    assert results["constant_lr"]["sd_ratio"] > 2.0
    assert (tmp_path / "bayesian_last_layer_pinn.png").stat().st_size > 0
    # the figure: the band with sin(πx) as truth, then the band minus sin(πx)
    fig = figures["bayesian_last_layer_pinn.png"]
    assert len(fig.axes) == 2
    band = lines_by_label(fig.axes[0])
    xt, truth = band["truth"]
    np.testing.assert_allclose(truth, np.sin(np.pi * xt), atol=1e-6)
    u_draws = np.asarray(ns["u_draws"])
    np.testing.assert_allclose(band["SGLD head median"][1], np.median(u_draws, axis=0),
                               rtol=1e-5, atol=1e-6)
    errors = lines_by_label(fig.axes[1])
    np.testing.assert_allclose(errors["SGLD − exact median"][1],
                               np.median(u_draws - np.sin(np.pi * xt), axis=0), atol=1e-6)
    assert "constant body lr − exact median" in errors
