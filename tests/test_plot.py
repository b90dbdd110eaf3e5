"""jno.plot: what each figure draws, checked against numpy computations on the same inputs."""

import builtins
import subprocess
import sys

import jax
import numpy as np
import pytest
from scipy import optimize, stats

import jno

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from jno import plot  # noqa: E402
from jno.metrics import calibration_curve, summary  # noqa: E402
from jno.solve.history import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def by_label(ax, label):
    (line,) = [ln for ln in ax.lines if ln.get_label() == label]
    return line


def bar_heights(ax):
    return np.array([p.get_height() for p in ax.patches])


# ---------------------------------------------------------------------------- trace
def test_trace_lines_are_the_chains_and_histograms_hold_every_draw():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 50, 2)) + np.array([0.0, 5.0])
    fig = plot.trace({"a": x}, bins=15)
    axes = np.array(fig.axes).reshape(2, 2)
    for i in range(2):
        ax_t, ax_h = axes[i]
        assert len(ax_t.lines) == 3
        for k in range(3):
            np.testing.assert_array_equal(ax_t.lines[k].get_ydata(), x[k, :, i])
            np.testing.assert_array_equal(ax_t.lines[k].get_xdata(), np.arange(50))
        assert f"a[{i}]" in ax_t.get_title() and f"a[{i}]" in ax_h.get_title()
        counts, _ = np.histogram(x[:, :, i].ravel(), bins=15)
        np.testing.assert_array_equal(bar_heights(ax_h), counts)
        assert bar_heights(ax_h).sum() == 150


def test_trace_of_models_single_chain_and_networks():
    a = jno.np.parameter((1,), key=jax.random.PRNGKey(0), name="a")
    rng = np.random.default_rng(1)
    a.posterior_samples = rng.standard_normal((40, 1))  # (N, *param): no num_chains
    fig = plot.trace(a)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 1
    np.testing.assert_array_equal(fig.axes[0].lines[0].get_ydata(), a.posterior_samples[:, 0])
    assert fig.axes[0].get_title() == "trace of a[0]"

    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=2, num_layers=1, key=jax.random.PRNGKey(2)), name="u"
    )
    net.posterior_samples = jax.tree.map(
        lambda l: (
            np.asarray(l) + rng.standard_normal((2, 30) + l.shape)
            if isinstance(l, jax.Array)
            else l
        ),
        net.module,
    )
    fig = plot.trace(net, max_components=3)
    assert len(fig.axes) == 6
    w = net.posterior_samples.layers[0].weight  # (2, 30, 2, 1), the first leaf in key order
    titles = [ax.get_title() for ax in fig.axes[::2]]
    assert titles == [
        "trace of u.layers[0].weight[0, 0]",
        "trace of u.layers[0].weight[1, 0]",
        "trace of u.layers[0].bias[0]",
    ]
    np.testing.assert_array_equal(fig.axes[2].lines[1].get_ydata(), w[1, :, 1, 0])


def test_trace_of_a_bare_array_with_component_names():
    x = np.random.default_rng(2).standard_normal((2, 20, 2))
    fig = plot.trace(x, names=["A", "B"])
    assert [ax.get_title() for ax in fig.axes[::2]] == ["trace of A", "trace of B"]
    np.testing.assert_array_equal(fig.axes[2].lines[0].get_ydata(), x[0, :, 1])
    with pytest.raises(ValueError, match="no samples named"):
        plot.trace({"a": x}, names=["b"])


# ---------------------------------------------------------------------------- rank
def test_rank_histograms_count_each_chains_pooled_ranks():
    from scipy.stats import rankdata

    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 100))
    x[0] += 1.0  # a chain off target: its ranks pile up at the top
    fig = plot.rank({"theta": x}, bins=10)
    assert len(fig.axes) == 4
    ranks = rankdata(x.ravel(), method="ordinal").reshape(4, 100)
    edges = np.linspace(1, 401, 11)
    for k, ax in enumerate(fig.axes):
        heights = bar_heights(ax)
        assert heights.sum() == 100
        np.testing.assert_array_equal(heights, np.histogram(ranks[k], bins=edges)[0])
        assert ax.get_title() == f"theta chain {k}"
        assert ax.lines[0].get_ydata()[0] == pytest.approx(10.0)  # uniform expectation N/bins
    top = bar_heights(fig.axes[0])[-3:].sum()
    assert top == np.sum(ranks[0] >= edges[-4])


# ---------------------------------------------------------------------------- predictive band
def test_predictive_band_is_the_quantiles_of_the_draws():
    rng = np.random.default_rng(4)
    xs = rng.permutation(np.linspace(0, 1, 25))  # unsorted: the plot sorts by x
    draws = np.sin(np.pi * xs)[:, None] + 0.2 * rng.standard_normal((2, 40, 25, 1))
    y_obs = np.sin(np.pi * xs) + 0.1 * rng.standard_normal(25)
    fig = plot.predictive_band(xs, draws, data=y_obs, level=0.8, truth=np.sin(np.pi * xs))
    (ax,) = fig.axes
    flat = draws[..., 0].reshape(80, 25)
    order = np.argsort(xs)
    np.testing.assert_allclose(by_label(ax, "posterior mean").get_ydata(), flat.mean(0)[order])
    np.testing.assert_allclose(
        by_label(ax, "_lower").get_ydata(), np.quantile(flat, 0.1, axis=0)[order]
    )
    np.testing.assert_allclose(
        by_label(ax, "_upper").get_ydata(), np.quantile(flat, 0.9, axis=0)[order]
    )
    np.testing.assert_allclose(by_label(ax, "_upper").get_xdata(), np.sort(xs))
    np.testing.assert_allclose(by_label(ax, "truth").get_ydata(), np.sin(np.pi * xs)[order])
    (band,) = [c for c in ax.collections if c.get_label() == "posterior 80% band"]
    ys = band.get_paths()[0].vertices[:, 1]
    assert ys.min() == pytest.approx(np.quantile(flat, 0.1, axis=0).min())
    assert ys.max() == pytest.approx(np.quantile(flat, 0.9, axis=0).max())
    (pts,) = [c for c in ax.collections if c.get_label() == "data"]
    np.testing.assert_allclose(pts.get_offsets(), np.c_[xs, y_obs])


def test_predictive_band_median_into_given_axes():
    rng = np.random.default_rng(5)
    xs = np.linspace(0, 1, 10)
    draws = rng.standard_normal((30, 10))
    fig, axes = plt.subplots(1, 2)
    out = plot.predictive_band(
        xs, draws, center="median", ax=axes[1], label="nuts", data=(xs[:3], np.zeros(3))
    )
    assert out is fig and not axes[0].lines
    np.testing.assert_allclose(
        by_label(axes[1], "nuts median").get_ydata(), np.median(draws, axis=0)
    )
    with pytest.raises(ValueError, match="do not end with the 10 points"):
        plot.predictive_band(xs, draws[:, :9])


# ---------------------------------------------------------------------------- field
@pytest.fixture(scope="module")
def rect_points():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.2, x_range=(0, 1), y_range=(0, 1)))
    return dom, dom.points("interior")


def test_field_scatter_maps_are_mean_and_std(rect_points):
    _, pts = rect_points
    rng = np.random.default_rng(6)
    truth = np.sin(np.pi * pts[:, 0]) * pts[:, 1]
    draws = truth[:, None] + 0.1 * rng.standard_normal((3, 20, len(pts), 1))
    fig = plot.field(pts, draws, kind="scatter")
    assert len(fig.axes) == 4  # two maps and their colorbars
    mean_ax, std_ax = fig.axes[:2]
    flat = draws[..., 0].reshape(60, -1)
    np.testing.assert_allclose(mean_ax.collections[0].get_array(), flat.mean(0))
    np.testing.assert_allclose(std_ax.collections[0].get_array(), flat.std(0))
    np.testing.assert_allclose(mean_ax.collections[0].get_offsets(), pts)
    assert mean_ax.get_title() == "posterior mean" and std_ax.get_title() == "posterior std"


def test_field_tricontour_spans_the_mean(rect_points):
    dom, pts = rect_points
    rng = np.random.default_rng(7)
    draws = pts[:, 0] + pts[:, 1] + 0.05 * rng.standard_normal((50, len(pts)))
    fig = plot.field(dom, draws, levels=8)  # a domain: its interior points
    mean_ax = fig.axes[0]
    mean = draws.mean(0)
    levels = mean_ax.collections[0].levels
    assert levels.min() <= mean.min() and levels.max() >= mean.max()
    with pytest.raises(ValueError, match=r"points must be \(P, 2\)"):
        plot.field(pts[:, :1], draws)


# ---------------------------------------------------------------------------- calibration
def test_calibration_draws_coverage_and_sharpness():
    rng = np.random.default_rng(8)
    means = rng.standard_normal((5, 200)) * 0.1
    y = rng.standard_normal(200) * 0.5
    curve = calibration_curve(means, 0.5, y)
    fig = plot.calibration(curve)
    cov_ax, sh_ax = fig.axes
    assert len(cov_ax.lines) == 2
    np.testing.assert_array_equal(by_label(cov_ax, "perfect calibration").get_ydata(), [0, 1])
    line = by_label(cov_ax, "coverage")
    np.testing.assert_allclose(line.get_xdata(), np.asarray(curve.levels))
    np.testing.assert_allclose(line.get_ydata(), np.asarray(curve.coverage))
    np.testing.assert_allclose(sh_ax.lines[0].get_ydata(), np.asarray(curve.sharpness))
    # coverage at level 0.5 is the fraction of y inside the mixture's exact central 50 %
    # interval, its quartiles found here by root finding on the mixture CDF (float64)
    assert np.asarray(curve.levels)[9] == pytest.approx(0.5)

    def quantile(j, p):
        cdf = lambda v: stats.norm.cdf(v, means[:, j], 0.5).mean() - p  # noqa: E731
        return optimize.brentq(cdf, -10.0, 10.0, xtol=1e-12)

    lo = np.array([quantile(j, 0.25) for j in range(200)])
    hi = np.array([quantile(j, 0.75) for j in range(200)])
    inside = (lo <= y) & (y <= hi)
    # jno's quantiles are accurate to 1e-5 (test_metrics.py): a y that close to a bound may
    # fall either side, and only those may differ
    ambiguous = np.sum(np.minimum(np.abs(y - lo), np.abs(y - hi)) < 1e-5)
    assert line.get_ydata()[9] == pytest.approx(np.mean(inside), abs=ambiguous / 200 + 1e-6)  # float32


def test_calibration_overlays_curves_and_summary_dicts():
    rng = np.random.default_rng(9)
    means = rng.standard_normal((4, 100))
    y = rng.standard_normal(100)
    s = summary(means, 1.0, y, y)
    curve = calibration_curve(means, 2.0, y)
    fig = plot.calibration({"sigma=1": s, "sigma=2": curve}, sharpness=False)
    (ax,) = fig.axes
    np.testing.assert_allclose(by_label(ax, "sigma=1").get_ydata(), s["coverage_curve"])
    np.testing.assert_allclose(by_label(ax, "sigma=2").get_ydata(), np.asarray(curve.coverage))
    with pytest.raises(TypeError, match="CalibrationCurve"):
        plot.calibration([1, 2, 3])


# ---------------------------------------------------------------------------- history
def make_history(with_elbo):
    rng = np.random.default_rng(10)
    h = History(["pde", "bc"])
    for start in (0, 50):
        steps = np.arange(start + 1, start + 51)
        h.append(steps, np.exp(-steps[:, None] / 30.0) * rng.uniform(0.5, 2.0, (50, 2)))
        if with_elbo:
            h.append_metric("elbo:'a'", steps, -100.0 / steps)
    return h


def test_history_lines_per_constraint_and_total_on_log_y():
    h = make_history(with_elbo=False)
    fig = plot.history(h)
    (ax,) = fig.axes
    assert [ln.get_label() for ln in ax.lines] == ["pde", "bc", "total"]
    np.testing.assert_array_equal(by_label(ax, "pde").get_ydata(), h.losses["pde"])
    np.testing.assert_array_equal(
        by_label(ax, "total").get_ydata(), h.losses["pde"] + h.losses["bc"]
    )
    np.testing.assert_array_equal(by_label(ax, "total").get_xdata(), np.arange(1, 101))
    assert ax.get_yscale() == "log"


def test_history_elbo_panel_and_linear_y_for_signed_losses():
    h = make_history(with_elbo=True)
    fig = plot.history(h)
    assert len(fig.axes) == 2
    np.testing.assert_allclose(by_label(fig.axes[1], "'a'").get_ydata(), -100.0 / np.arange(1, 101))
    g = History(["nll"])
    g.append(np.arange(3), np.array([[2.0], [-1.0], [0.5]]))
    assert plot.history(g).axes[0].get_yscale() == "linear"


def test_history_from_saved_inference_data():
    az = pytest.importorskip("arviz")
    from jno.bayesian.export import _history_dataset

    h = make_history(with_elbo=True)
    idata = az.from_dict(posterior={"a": np.zeros((1, 5))})
    idata.add_groups({"loss_history": _history_dataset(h)}, warn_on_custom_groups=False)
    fig = plot.history(idata)
    np.testing.assert_array_equal(by_label(fig.axes[0], "bc").get_ydata(), h.losses["bc"])
    np.testing.assert_allclose(by_label(fig.axes[1], "'a'").get_ydata(), h.elbo["'a'"])


# ---------------------------------------------------------------------------- optional import
def test_missing_matplotlib_names_the_extra(monkeypatch):
    real_import = builtins.__import__

    def no_mpl(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mpl)
    with pytest.raises(ImportError, match=r"pip install 'jno\[plot\]'"):
        plot.trace(np.zeros((2, 5)))


def test_import_jno_does_not_import_matplotlib():
    code = (
        "import sys, jno, jno.plot; jno.plot.trace; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
