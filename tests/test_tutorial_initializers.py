"""Run tutorials/initializers.py end to end and check the claims of its table against the
quadrature reference it computes (about 95 s on a 2-core CPU, hence slow)."""

import runpy
from pathlib import Path

import pytest

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "initializers.py"


@pytest.mark.slow
def test_initializers_tutorial():
    ns = runpy.run_path(str(TUTORIAL), run_name="__main__")
    rows = ns["RESULTS"]
    assert list(rows) == [
        "window only (100)",
        "window only (200)",
        "pathfinder -> window",
        "laplace -> window",
        "svgd -> window",
        "laplace dense, adapt=False",
    ]
    for label, r in rows.items():
        assert r["rhat"] < 1.01, (label, r["rhat"])
        assert r["divergent"] == 0, label
        if label != "window only (100)":
            assert r["mean_err"] < 4.0, (label, r["mean_err"])
            assert 0.85 < r["sd_ratio"] < 1.15, (label, r["sd_ratio"])
    # "window only (100)" is not judged: whether 100 warm-up steps from the poor start leave a
    # chain in transit depends on the seeded chain's round-off (1.77x the sd in the measured
    # run, 1.04x after a change of float32 round-off), which no tolerance can pin
    # initializer costs
    assert 0 < rows["pathfinder -> window"]["init_grads"] < 200
    assert 0 < rows["laplace -> window"]["init_grads"] < 200
    assert rows["svgd -> window"]["init_grads"] == 16 * 300
    # (total gradients and ESS per 1000 draws are not compared between runs: NUTS's tree
    # sizes and the ESS estimate scatter by tens of percent with the chains' round-off -
    # pathfinder's total was 0.73x window-only's in the measured run, 1.27x after a change of
    # float32 round-off; the quality checks above make the equal-quality claim)
    # the dense Laplace mass matrix changes the geometry
    dense = rows["laplace dense, adapt=False"]["ess_per_1k"]
    others = max(r["ess_per_1k"] for label, r in rows.items() if "dense" not in label)
    assert dense > 3 * others
