"""Run tutorials/sbc_poisson.py end to end and check what it prints and draws.

Independent truths used here:

* the chi-square statistic of the ranks, recomputed with ``scipy.stats.chisquare`` on 10 equal
  bins of ``0..99``;
* under calibration every central ``q`` interval covers the truth in ``Bin(S, q) / S`` of the
  ``S`` simulations: the identifiable quantities of the problem (``log k``, ``k`` and ``u`` at
  every node) must lie within 4 binomial standard errors of ``q``; the pooled coverage of
  ``u`` over its nodes has at most that standard error. The network's weights are not
  checked: their symmetric modes make their ranks non-uniform by construction (the tutorial
  explains why);
* the figure's lines are the ECDF of the ranks (``#{s: r_s < i} / S`` at ``z_i = i / 100``)
  minus ``z``.
"""

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from figures import lines_by_label, run_tutorial

TUTORIAL = Path(__file__).resolve().parents[1] / "tutorials" / "sbc_poisson.py"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("sbc_poisson")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        namespace, figures = run_tutorial(TUTORIAL, out)
    return namespace["RESULTS"], figures, printed.getvalue()


@pytest.mark.slow
def test_sbc_poisson_tutorial(run):
    results, figures, printed = run
    res = results["result"]
    s = res.num_simulations
    assert s == 100 and res.ranks.shape == (s, 14) and res.max_rank == 99
    assert res.ranks.min() >= 0 and res.ranks.max() <= 99
    # printed p-values are the chi-square of the ranks on 10 bins
    for j, name in enumerate(res.names):
        counts = np.histogram(res.ranks[:, j], bins=10, range=(0, 100))[0]
        ref = stats.chisquare(counts)
        assert res.p_values[j] == pytest.approx(ref.pvalue, rel=1e-4, abs=1e-12)
        (line,) = [
            ln
            for ln in printed.splitlines()
            if ln.startswith(name + " ")
            and "band" not in ln
            and ln.split()[-1] in ("True", "False")
        ]
        assert line.split()[1] == f"{res.p_values[j]:.3g}"
        assert line.split()[2] == f"{res.ecdf_p_values[j]:.3g}"
    assert res.coverage_table() in printed and res.predictive_table() in printed
    assert results["capped"].predictive_table() in printed
    # the identifiable quantities are calibrated
    logk = res.names.index("logk[0]")
    assert res.p_values[logk] > 0.01 and res.ecdf_p_values[logk] > 0.01
    assert res.inside_band[logk]
    for q in (0.5, 0.8, 0.9, 0.95):
        se = math.sqrt(q * (1 - q) / s)
        assert abs(res.coverage[q][logk] - q) < 4 * se, (q, res.coverage[q][logk])
        (k_cov,) = res.predictive["k"][q]
        assert abs(k_cov - q) < 4 * se, (q, k_cov)
        u_cov = res.predictive["u"][q]
        assert u_cov.shape == (21,) and np.all(np.abs(u_cov - q) < 4 * se), (q, u_cov)
        assert abs(u_cov.mean() - q) < 4 * se
    # the figure: one panel per plotted parameter, its line the ECDF minus z
    fig = figures[Path(results["figure"]).name]
    assert len(fig.axes) == len(results["figure_parameters"])
    z = np.arange(1, 100) / 100
    for ax, name in zip(fig.axes, results["figure_parameters"]):
        p = res.names.index(name)
        (label,) = [k for k in lines_by_label(ax) if k.startswith(name)]
        xs, ys = lines_by_label(ax)[label]
        ecdf = np.array([np.mean(res.ranks[:, p] < i) for i in range(1, 100)])
        np.testing.assert_allclose(xs, z)
        np.testing.assert_allclose(ys, ecdf - z, atol=1e-12)
    assert Path(results["figure"]).exists()
