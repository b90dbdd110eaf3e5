"""Run tutorials/bayesian_inverse.py end to end and check it against the conjugate posterior.

The exact posterior is recomputed here from the tutorial's data (not taken from the
tutorial): for d = Φθ + ε, ε ~ N(0, s² I) and θ ~ N(0, 10² I), the posterior is Gaussian with
precision ΦᵀΦ/s² + I/100. ``.gaussian(std=0.1)`` means s² = 0.01; ``.mse`` with likelihood
scale λ means s² = N/(2λ).
"""

from pathlib import Path

import numpy as np
import pytest

from figures import lines_by_label, run_tutorial
from stats import assert_gaussian_within

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "bayesian_inverse.py"
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow


def conjugate(xs, data, noise_var, prior_var=100.0):
    phi = np.column_stack([np.sin(np.pi * xs), np.cos(np.pi * xs)]).astype(np.float64)
    precision = phi.T @ phi / noise_var + np.eye(2) / prior_var
    mean = np.linalg.solve(precision, phi.T @ data.astype(np.float64) / noise_var)
    return mean, np.sqrt(np.diag(np.linalg.inv(precision)))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bayesian_inverse")
    namespace, figures = run_tutorial(TUTORIAL, out)
    namespace["RESULTS"]["figure_objects"] = figures
    return namespace["RESULTS"], out


def test_data_are_the_guide_problem(results):
    res, _ = results
    xs, data = np.asarray(res["xs"]), np.asarray(res["data"])
    assert xs.shape == data.shape == (101,)
    np.testing.assert_allclose(xs, np.linspace(0, 1, 101), atol=1e-6)
    noise = data - (3.14 * np.sin(np.pi * xs) - 2.71 * np.cos(np.pi * xs))
    # 101 i.i.d. draws of N(0, 0.1²): the sample sd has sd 0.1/sqrt(2·101) = 0.007; 5 of them
    assert abs(noise.std() - 0.1) < 5 * 0.1 / np.sqrt(2 * noise.size)


@pytest.mark.parametrize("variant", ["gaussian", "mse_scaled"])
def test_calibrated_posteriors_match_conjugate(results, variant):
    res, _ = results
    v = res["variants"][variant]
    mean, std = conjugate(np.asarray(res["xs"]), np.asarray(res["data"]), 0.1**2)
    for i, p in enumerate(("A", "B")):
        c = np.asarray(v["chains"][p])
        assert c.shape == (4, 1000)
        assert_gaussian_within(c, mean[i], std[i], what=f"{variant} {p}")
        assert abs(std[i] - 0.014) < 0.001  # what 101 points with σ = 0.1 support
        assert v[p]["rhat"] < 1.01
        assert v[p]["ess"] > 1000
        lo, hi = np.quantile(c, [0.05, 0.95])
        assert v[p]["q05"] == pytest.approx(lo) and v[p]["q95"] == pytest.approx(hi)
    assert v["divergent"] == 0


def test_tempered_mse_is_its_own_exact_posterior_with_std_one(results):
    res, _ = results
    v = res["variants"]["mse"]
    n = len(res["xs"])
    mean, std = conjugate(np.asarray(res["xs"]), np.asarray(res["data"]), n / 2.0)
    for i, p in enumerate(("A", "B")):
        assert_gaussian_within(np.asarray(v["chains"][p]), mean[i], std[i], what=f"mse {p}")
        assert 0.95 < std[i] < 1.0  # ≈ 1 (the prior takes off 0.5 %): 70x the calibrated std


def test_figure_draws_the_exact_posteriors(results):
    res, out = results
    path = Path(res["figure"])
    assert path.parent == out and path.stat().st_size > 10_000
    fig = res["figure_objects"][path.name]
    variants = list(res["variants"])
    assert len(fig.axes) == 2 * len(variants)
    xs, data, n = np.asarray(res["xs"]), np.asarray(res["data"]), len(res["xs"])
    noise_var = {"gaussian": 0.1**2, "mse_scaled": 0.1**2, "mse": n / 2.0}
    for r, name in enumerate(variants):
        mean, std = conjugate(xs, data, noise_var[name])
        for col, true_value in enumerate((3.14, -2.71)):
            ax = fig.axes[2 * r + col]
            lines = lines_by_label(ax)
            grid, dens = lines["exact posterior"]  # the conjugate density, recomputed here
            want = np.exp(-0.5 * ((grid - mean[col]) / std[col]) ** 2) / (std[col] * np.sqrt(2 * np.pi))
            np.testing.assert_allclose(dens, want, rtol=1e-3)
            assert grid.min() < mean[col] < grid.max()
            np.testing.assert_allclose(lines["true value"][0], true_value)
            # the histogram of the draws is a density: its bars integrate to 1
            area = sum(b.get_width() * b.get_height() for b in ax.patches)
            assert area == pytest.approx(1.0, rel=1e-6)
