"""Run tutorials/ensemble_primitives.py end to end and check pattern A's scores."""

import runpy
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "ensemble_primitives.py"


@pytest.mark.slow
def test_ensemble_primitives_tutorial(tmp_path, monkeypatch):
    pytest.importorskip("numpyro")
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("JNO_OUTPUT_DIR", str(tmp_path))
    namespace = runpy.run_path(str(TUTORIAL), run_name="__main__")
    a = namespace["RESULTS"]["A"]
    assert a["rmse_truth"] <= 0.08
    assert a["nll"] <= -0.70
    assert 0.88 <= a["coverage_95"] <= 0.99
    assert set(namespace["RESULTS"]) == {"A", "B", "C", "run", "DSL"}
    assert (tmp_path / "ensemble_primitives.png").stat().st_size > 0
