"""Run tutorials/ode_forward_model.py end to end: jno's NUTS through a diffrax solve against
the same log-density sampled by hand in blackjax.

There is no closed-form posterior; the two samplers are independent estimates of the same
one, so their means (and sds) must agree within the Monte-Carlo error of a difference of
two independent estimates, sqrt(MCSE_jno² + MCSE_hand²) (tests/stats.py). The data are
checked against a SciPy solve of the ODE (not diffrax, not the tutorial's code).
"""

from pathlib import Path

import numpy as np
import pytest

from figures import lines_by_label, run_tutorial
from stats import mcse_mean, mcse_sd

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "ode_forward_model.py"
NAMES = ("alpha", "beta", "gamma", "delta")
TRUTH = {"alpha": 1.0, "beta": 0.1, "gamma": 1.5, "delta": 0.075}
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow


def scipy_solution(times):
    from scipy.integrate import solve_ivp

    a, b, g, d = (TRUTH[n] for n in NAMES)

    def rhs(_, u):
        return [a * u[0] - b * u[0] * u[1], d * u[0] * u[1] - g * u[1]]

    sol = solve_ivp(rhs, (0.0, float(times[-1])), [10.0, 5.0], t_eval=times, rtol=1e-10,
                    atol=1e-10, method="DOP853")
    return sol.y.T  # (n, 2)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("matplotlib")
    pytest.importorskip("diffrax")
    out = tmp_path_factory.mktemp("ode_forward_model")
    namespace, figures = run_tutorial(TUTORIAL, out)
    namespace["RESULTS"]["figure_objects"] = figures
    return namespace["RESULTS"], out


def test_data_are_lognormal_counts_around_the_ode_solution(results):
    res, _ = results
    times, log_counts = np.asarray(res["times"]), np.asarray(res["log_counts"], np.float64)
    np.testing.assert_allclose(times, 0.5 * np.arange(1, 21))
    assert log_counts.shape == (20, 2)
    z = (log_counts - np.log(scipy_solution(times))) / res["sigma"]  # 40 draws of N(0, 1)
    # sd of the sample mean 1/sqrt(40), of the sample sd 1/sqrt(80): 4 and 5 of them
    assert abs(z.mean()) < 4 / np.sqrt(z.size)
    assert abs(z.std() - 1.0) < 5 / np.sqrt(2 * z.size)


@pytest.mark.parametrize("name", NAMES)
def test_jno_and_hand_written_blackjax_agree(results, name):
    res, _ = results
    a = np.asarray(res["jno"]["chains"][name])
    b = np.asarray(res["hand"]["chains"][name])
    assert a.shape == b.shape == (4, 1000)
    (ma, _), (mb, _) = mcse_mean(a), mcse_mean(b)
    tol = 4.5 * np.hypot(ma, mb)
    assert abs(a.mean() - b.mean()) < tol, (
        f"{name}: means {a.mean():.5g} (jno) vs {b.mean():.5g} (hand), tolerance {tol:.3g}"
    )
    assert tol < 0.25 * b.std()  # enough draws for the comparison to mean something
    (sa, _), (sb, _) = mcse_sd(a), mcse_sd(b)
    tol_sd = 5.0 * np.hypot(sa, sb)
    assert abs(a.std() - b.std()) < tol_sd, (
        f"{name}: sds {a.std():.5g} (jno) vs {b.std():.5g} (hand), tolerance {tol_sd:.3g}"
    )
    assert tol_sd < 0.2 * b.std()  # would catch a factor-√2 error in the sd


@pytest.mark.parametrize("sampler", ["jno", "hand"])
def test_truth_inside_99_percent_intervals_and_converged(results, sampler):
    # With a likelihood that dominates the weak priors the 99 % central interval covers the
    # truth with probability about 0.99 per parameter, so a miss of any of the four would
    # happen for at most about 4 % of data seeds; the tutorial's seed is fixed, so this is
    # deterministic up to the Monte-Carlo error of the interval ends.
    res, _ = results
    run = res[sampler]
    for name in NAMES:
        c = np.asarray(run["chains"][name])
        lo, hi = np.quantile(c, [0.005, 0.995])
        assert lo < TRUTH[name] < hi, f"{sampler} {name}: truth {TRUTH[name]} not in [{lo}, {hi}]"
        assert run[name]["q005"] == pytest.approx(lo) and run[name]["q995"] == pytest.approx(hi)
        assert run[name]["rhat"] < 1.01, f"{sampler} {name}: R-hat {run[name]['rhat']:.4f}"
        assert run[name]["ess"] > 400
    assert run["divergent"] <= 0.01 * 4000


def test_figures_saved_and_drawn_from_the_data(results):
    res, out = results
    paths = [Path(p) for p in res["figures"]]
    assert [p.name for p in paths] == ["ode_forward_model.png", "ode_forward_model_pairs.png"]
    for p in paths:
        assert p.parent == out and p.stat().st_size > 10_000
    fig = res["figure_objects"]["ode_forward_model.png"]
    assert len(fig.axes) == 2
    times = np.asarray(res["times"])
    counts = np.exp(np.asarray(res["log_counts"], np.float64))
    for s, ax in enumerate(fig.axes):
        lines = lines_by_label(ax)
        np.testing.assert_allclose(lines["observed"][0], times)
        np.testing.assert_allclose(lines["observed"][1], counts[:, s], rtol=1e-5)
        grid, truth = lines["true solution"]
        np.testing.assert_allclose(truth[1:], scipy_solution(grid[1:])[:, s], rtol=1e-3)
    pairs = res["figure_objects"]["ode_forward_model_pairs.png"]
    diagonal = [pairs.axes[5 * i] for i in range(4)]  # 4 x 4 grid, row-major
    for ax, name in zip(diagonal, NAMES):
        np.testing.assert_allclose(lines_by_label(ax)["true value"][0], TRUTH[name])
