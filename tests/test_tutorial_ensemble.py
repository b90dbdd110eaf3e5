"""Run tutorials/ensemble_primitives.py end to end: pattern A's scores against their definitions
and against the noise level, its calibration against the binomial spread, and the figure."""

import runpy
from pathlib import Path

import numpy as np
import pytest

from figures import lines_by_label, recording_savefig

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "ensemble_primitives.py"


@pytest.mark.slow
def test_ensemble_primitives_tutorial(tmp_path, monkeypatch):
    pytest.importorskip("numpyro")
    pytest.importorskip("matplotlib")
    from scipy.special import logsumexp

    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    with recording_savefig() as figures:
        ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    assert set(ns["RESULTS"]) == {"A", "B", "C", "run", "DSL"}
    a, sigma = ns["RESULTS"]["A"], ns["SIGMA"]
    preds = np.asarray(ns["patterns"]["A"][1], np.float64)  # (members, test points)
    truth, noisy = np.asarray(ns["y_truth"]), np.asarray(ns["y_test_noisy"])
    m = preds.shape[0]
    # the scores are their definitions: mixture mean RMSE and the mixture's mean NLL
    assert a["rmse_truth"] == pytest.approx(np.sqrt(np.mean((preds.mean(0) - truth) ** 2)), 1e-5)
    logp = -0.5 * ((noisy - preds) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    assert a["nll"] == pytest.approx(np.mean(np.log(m) - logsumexp(logp, axis=0)), rel=1e-5)
    # the ensemble mean is closer to the truth than the noise is, and no predictive beats the
    # oracle N(truth, sigma^2) by more than 5 standard errors of a mean over the test points
    assert a["rmse_truth"] < sigma
    n = truth.size
    oracle = -0.5 * ((noisy - truth) / sigma) ** 2 - np.log(sigma * np.sqrt(2 * np.pi))
    assert a["nll"] > -oracle.mean() - 5 * oracle.std() / np.sqrt(n)
    # a calibrated 95 % interval covers Binomial(n, 0.95)/n of the noisy test points
    assert abs(a["coverage_95"] - 0.95) < 5 * np.sqrt(0.95 * 0.05 / n)
    # the figure draws pattern A's mean and the truth it is scored against
    fig = figures["ensemble_primitives.png"]
    lines = lines_by_label(fig.axes[0])
    np.testing.assert_allclose(lines["predictive mean"][1], preds.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lines["truth"][1], truth, rtol=1e-6)
