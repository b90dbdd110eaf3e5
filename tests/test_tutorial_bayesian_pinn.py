"""Run tutorials/bayesian_pinn.py end to end and check its bands against sin(πx).

Independent truths used here:

* the exact solution u*(x) = sin(πx) of u'' = -π² sin(πx), u(0) = u(1) = 0;
* the predicted posterior spread at likelihood scale λ. u'' fixes u up to an affine function,
  which only the two boundary residuals e0 = u(0), e1 = u(1) pin down; their log-likelihood
  -λ(e0² + e1²)/2 makes them N(0, 1/λ), so sd u(x) ≈ sqrt(((1-x)² + x²)/λ) (the PDE residual
  adds a few per cent). The 90 % band has width 2·1.645·sd(x).

Thresholds. The median's relative L2 error must stay below the relative posterior spread
||sd|| / ||u*|| (0.0116 at λ = 1e4): a median further from the truth than one posterior sd
would make the truth an implausible draw. The spread itself is checked where the prediction
is sharpest, at the ends: sd u(0) = sd u(1) = 1/sqrt(λ), at 4 Monte-Carlo standard errors of
the draws' sd (tests/stats.py), not against widths measured on one machine.
"""

from pathlib import Path

import numpy as np
import pytest

from figures import line_matching, lines_by_label, run_tutorial
from stats import assert_sd_within

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "bayesian_pinn.py"
# a whole tutorial at full size: the slow set (CI executes every tutorial as a notebook too)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("bayesian_pinn")
    namespace, figures = run_tutorial(TUTORIAL, out)
    namespace["RESULTS"]["figure_objects"] = figures
    namespace["RESULTS"]["draws"] = namespace["DRAWS"]
    return namespace["RESULTS"], out


def scores(run, xs):
    exact = np.sin(np.pi * xs)
    lo, med, hi = (np.asarray(run[k]) for k in ("lo", "median", "hi"))
    assert lo.shape == med.shape == hi.shape == xs.shape
    assert np.all(lo <= med) and np.all(med <= hi)
    rel = np.linalg.norm(med - exact) / np.linalg.norm(exact)
    cover = np.mean((lo <= exact) & (exact <= hi))
    return rel, cover, np.mean(hi - lo)


def predicted(xs, lam):
    sd = np.sqrt(((1 - xs) ** 2 + xs**2) / lam)
    return sd, np.mean(2 * 1.6448536 * sd), np.linalg.norm(sd) / np.linalg.norm(np.sin(np.pi * xs))


def test_nuts_band_covers_and_matches_prediction(results):
    res, _ = results
    xs = np.asarray(res["xs"])
    np.testing.assert_allclose(xs, np.linspace(0, 1, 101), atol=1e-6)
    assert res["lambda"] == 1e4
    _, _, rel_sd = predicted(xs, res["lambda"])
    assert rel_sd == pytest.approx(0.0116, abs=5e-4)
    rel, cover, _ = scores(res["runs"]["nuts"], xs)
    assert cover >= 0.90
    assert rel < rel_sd, (rel, rel_sd)
    nuts = res["runs"]["nuts"]
    assert nuts["rhat_mid"] < 1.05
    assert nuts["ess_mid"] > 100
    assert nuts["divergent"] <= 8  # ≤ 2 % of 400 draws


def test_tuned_sgld_band(results):
    res, _ = results
    xs = np.asarray(res["xs"])
    _, _, rel_sd = predicted(xs, res["lambda"])
    rel, cover, _ = scores(res["runs"]["sgld"], xs)
    assert rel < rel_sd, (rel, rel_sd)
    assert cover >= 0.90


def test_guide_likelihood_scale_supports_no_band(results):
    """PITFALLS 13, as a truth rather than a failed run: at the guide's λ = 1 the exact
    posterior's spread (the boundary modes, sd ≈ sqrt(((1-x)² + x²)/λ)) exceeds the solution
    itself, so no sampler can give a usable band; λ = 1e4 shrinks it 100-fold."""
    res, _ = results
    xs = np.asarray(res["xs"])
    _, width_1, rel_sd_1 = predicted(xs, 1.0)
    _, width_lam, rel_sd_lam = predicted(xs, res["lambda"])
    assert rel_sd_1 > 1.0
    assert rel_sd_1 / rel_sd_lam == pytest.approx(np.sqrt(res["lambda"]), rel=1e-9)
    assert res["predicted_width"] == pytest.approx(width_lam, rel=1e-6)


@pytest.mark.parametrize("name", ["nuts", "sgld"])
def test_boundary_sd_is_one_over_sqrt_lambda(results, name):
    """u(0) and u(1) are the boundary residuals e0, e1, whose likelihood -λ(e0² + e1²)/2
    makes each N(0, 1/λ): sd 0.01 at λ = 1e4. Compared at 4 MCSE_sd plus 5 % for the PDE
    residual's coupling (docstring). The tutorial keeps 400 (NUTS) / 1000 (SGLD) draws with
    an ESS of ~100, too few for a 4-MCSE tolerance below 20 %: a -29 % (√2) error is not
    resolved here, a +41 % one is; tests/test_bayesian_exact.py covers the √2 criterion."""
    res, _ = results
    draws = np.asarray(res["draws"][name])[..., 0]
    draws = draws if draws.ndim == 3 else draws[None]  # (K, N, points)
    truth = 1.0 / np.sqrt(res["lambda"])
    for i in (0, -1):
        assert_sd_within(draws[..., i], truth, 4.0, bias=0.05 * truth, sqrt2_guard=False,
                         what=f"{name} sd u(x={res['xs'][i]:.0f})")


def test_step_size_limit_measured(results):
    res, _ = results
    # η = 1e-3 is below the gradient-descent stability limit 2 / h_max, at the start and at
    # the last draw, where the curvature is larger
    assert res["h_max_end"] > res["h_max_init"] > 0
    assert res["eta"] < 2 / res["h_max_end"]


def test_figures_draw_the_bands_and_the_truth(results):
    res, out = results
    for f in res["figures"]:
        assert Path(f).parent == out and Path(f).stat().st_size > 10_000
    figs = res["figure_objects"]
    xs = np.asarray(res["xs"])
    exact = np.sin(np.pi * xs)
    band = figs["bayesian_pinn.png"]
    assert len(band.axes) == 3
    for ax, name in zip(band.axes, ("sgld_seed", "sgld", "nuts")):
        lines = lines_by_label(ax)
        # the truth is sin(πx); the centre line is the median of that run's draws
        np.testing.assert_allclose(lines["truth"][1], exact, atol=1e-6)
        draws = np.asarray(res["draws"][name]).reshape(-1, xs.size)
        np.testing.assert_allclose(lines["posterior median"][1], np.median(draws, axis=0),
                                   rtol=1e-5, atol=1e-6)
        lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
        np.testing.assert_allclose(lines["_lower"][1], lo, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lines["_upper"][1], hi, rtol=1e-5, atol=1e-6)
        assert ax.get_xlabel() == "x" and ax.get_title()
    # the error figure: two bands around 0 and the predicted ±1.645 sd(x), sd(x) computed here
    (ax,) = figs["bayesian_pinn_error.png"].axes
    sd, _, _ = predicted(xs, res["lambda"])
    for sign in (1, -1):
        assert line_matching(ax, xs, sign * 1.6448536 * sd, rtol=1e-4) is not None, sign
    labels = set(lines_by_label(ax))
    assert {"sgld median", "nuts median"} <= labels
