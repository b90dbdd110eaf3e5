"""``python -m jno``'s examples: the listing, and each example's numbers against its known answer.

Independent truths: the conjugate posterior of the linear-Gaussian headline (the example's
``exact_posterior``, itself checked against numpy's least squares); the PINN's boundary spread sd u(0) = 1/sqrt(λ)
(tests/test_tutorial_bayesian_pinn.py derives it); draws of a resumed run equal to an
uninterrupted run's; arviz's R-hat and ESS on the draws `until=` stopped at (jno's own
diagnostics may differ from arviz's by round-off and the folding strategy); a binomial
tolerance on the ensemble's 95 % coverage. Sizes are reduced through each example's options;
the runs are in the slow set (each compiles a whole solve; CI runs them, and README's first
command runs the headline at full size).
"""

import numpy as np
import pytest

from jno.__main__ import main as run_main
from jno.__main__ import usage
from jno.examples import EXAMPLES

from stats import assert_gaussian_within, assert_sd_within


def test_help_lists_every_example(capsys):
    run_main(["--help"])
    printed = capsys.readouterr().out
    assert printed == usage() + "\n"
    for name in EXAMPLES:
        assert f"  {name}  " in printed
    assert len(printed.splitlines()) == len(EXAMPLES) + 7


def test_unknown_example_names_the_choices(capsys):
    with pytest.raises(SystemExit) as stop:
        run_main(["nope"])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "unknown example 'nope'" in err and "long-run" in err


@pytest.mark.slow
def test_headline_matches_the_conjugate_posterior(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_main(["headline", "--out", str(tmp_path), "--chains", "2", "--keep", "400",
                    "--warmup", "300"])
    # the closed-form posterior of the data the example drew (exact_posterior: checked below)
    mean, cov = out["exact_mean"], out["exact_cov"]
    for i, name in enumerate(("A", "B")):
        assert_gaussian_within(out["draws"][name], mean[i], np.sqrt(cov[i, i]), what=name)
    assert out["divergent"] == 0
    assert (tmp_path / "headline.png").stat().st_size > 10_000


def test_exact_posterior_is_the_least_squares_solution():
    from jno.examples.headline import exact_posterior

    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 101)
    y = 3.0 * np.sin(np.pi * x) - 2.0 * np.cos(np.pi * x) + 0.1 * rng.normal(size=x.size)
    mean, cov = exact_posterior(x, y, 0.1, prior_sigma=1e6)  # flat prior: least squares
    phi = np.stack([np.sin(np.pi * x), np.cos(np.pi * x)], axis=1)
    lsq, *_ = np.linalg.lstsq(phi, y, rcond=None)
    np.testing.assert_allclose(mean, lsq, rtol=1e-8)
    np.testing.assert_allclose(cov, 0.01 * np.linalg.inv(phi.T @ phi), rtol=1e-6)


@pytest.mark.slow
def test_ensemble_is_calibrated(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_main(["ensemble", "--out", str(tmp_path), "--members", "8", "--epochs", "1500"])
    # 200 test points: a calibrated 95 % interval covers 0.95 ± 4·sqrt(0.95·0.05/200)
    assert abs(out["coverage_95"] - 0.95) < 4 * np.sqrt(0.95 * 0.05 / 200)
    assert out["rmse_truth"] < 0.1  # closer to the truth than the noise is
    assert (tmp_path / "ensemble.png").exists()


@pytest.mark.slow
def test_long_run_resumes_to_the_same_draws(tmp_path):
    import arviz as az

    out = run_main(["long-run", "--out", str(tmp_path), "--warmup", "200", "--keep", "200",
                    "--stop-at", "300", "--checkpoint", str(tmp_path / "run.ckpt")])
    assert out["stopped_at"] == 300
    assert out["resumed_equal"] is True
    # until= stopped early, where arviz agrees the targets hold
    draws = out["until_chain"]
    assert draws.shape[1] < 10 * 200
    assert float(az.rhat(draws)) <= 1.01 + 1e-3
    assert float(az.ess(draws, method="bulk")) >= 0.9 * 400
    assert (tmp_path / "run.ckpt").exists()


@pytest.mark.slow
def test_pinn_band_has_the_predicted_spread(tmp_path):
    pytest.importorskip("matplotlib")
    out = run_main(["pinn", "--out", str(tmp_path)])
    # u(0) ~ N(0, 1/λ) (the boundary residual's likelihood); 5 MCSE of the draws' sd
    assert_sd_within(out["u0_draws"], 1.0 / np.sqrt(1e4), sqrt2_guard=False)
    assert out["median_rel_l2"] < out["sd_rel_l2"]
    assert out["rhat_mid"] < 1.05
