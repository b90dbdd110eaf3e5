"""Figures for posteriors, predictions, calibration and solve histories (needs matplotlib).

matplotlib is optional: ``import jno`` does not import it, and neither does ``import jno.plot``;
each function imports it when called and raises an ``ImportError`` naming
``pip install 'jno[plot]'`` when it is missing. Every function returns the
``matplotlib.figure.Figure`` it drew on (the caller saves or closes it).

* :func:`trace`: one row per parameter component, one line per chain, and the marginal
  histogram of all draws.
* :func:`rank`: rank plots (Vehtari et al. 2021): the histogram, per chain, of the ranks of that
  chain's draws among all draws. Well-mixed chains give flat histograms.
* :func:`predictive_band`: a 1-D posterior predictive mean (or median) with a central band and
  the data points.
* :func:`field`: posterior mean and standard deviation of a field over 2-D points.
* :func:`calibration`: the coverage curve of :func:`jno.metrics.calibration_curve`.
* :func:`sbc_ecdf`: the ECDF differences of simulation-based calibration ranks with their
  simultaneous band (:func:`jno.bayesian.sbc`).
* :func:`history`: losses per constraint and their total on a log y axis, and the ELBO of VI
  models.

Samples are given in jno's layout: an array ``(K, N, *param)`` (K chains of N draws), a model
after ``solve`` (its ``posterior_samples``; ``(N, *param)`` for a single chain without
``num_chains`` is recognised from the model's shape; networks contribute one entry per array
leaf), a dict ``{name: (K, N, *param)}`` or an ``arviz.InferenceData``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["calibration", "field", "history", "predictive_band", "rank", "sbc_ecdf", "trace"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError(
            "jno.plot needs matplotlib, which is not installed: pip install 'jno[plot]' "
            "(or pip install matplotlib)."
        ) from err
    return plt


# ---------------------------------------------------------------------------- samples
def _model_chains(model: Any) -> dict[str, np.ndarray]:
    import equinox as eqx
    import jax

    from jno.bayesian.diagnostics import named_leaves
    from jno.solve.draw_store import is_sample_leaf

    samples = model.posterior_samples
    if samples is None:
        raise ValueError(
            f"jno.plot: model '{model.model_name}' has no posterior samples; call crux.solve() "
            "after configuring it with .bayesian(...) or .vi(...)."
        )
    if getattr(model, "kind", None) == "param":
        base = [np.asarray(model.module)]
        pairs = [(model.model_name, np.asarray(samples))]
    else:
        base = jax.tree.leaves(eqx.filter(model.module, eqx.is_inexact_array))
        pairs = named_leaves(eqx.filter(samples, is_sample_leaf), model.model_name)
    extra = np.ndim(pairs[0][1]) - np.ndim(base[0])
    out = {}
    for name, x in pairs:
        x = np.asarray(x)
        out[name] = x[None] if extra == 1 else x
    return out


def _as_chains(samples: Any, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """``{name: (K, N, *param)}`` from any accepted sample container."""
    bare = False
    if hasattr(samples, "posterior_samples") and hasattr(samples, "model_name"):
        chains = _model_chains(samples)
    elif hasattr(samples, "posterior") and hasattr(samples.posterior, "data_vars"):
        chains = {str(k): np.asarray(v.values) for k, v in samples.posterior.data_vars.items()}
    elif isinstance(samples, Mapping):
        chains = {}
        for key, value in samples.items():
            if hasattr(value, "posterior_samples"):
                chains.update(_model_chains(value))
            else:
                chains[str(key)] = np.asarray(value)
    elif isinstance(samples, (list, tuple)) and samples and hasattr(samples[0], "model_name"):
        chains = {}
        for m in samples:
            chains.update(_model_chains(m))
    else:
        bare = True
        x = np.asarray(samples)
        chains = {"x": x[None] if x.ndim == 1 else x}
    for name, x in chains.items():
        if x.ndim < 2:
            raise ValueError(
                f"jno.plot: '{name}' has shape {x.shape}; expected (K, N, *param) draws."
            )
    if names is None:
        return chains
    names = list(names)
    if bare:  # name the array (one name), or each of its components
        return {names[0]: chains["x"]} if len(names) == 1 else _split(chains["x"], names)
    missing = [n for n in names if n not in chains]
    if missing:
        raise ValueError(f"jno.plot: no samples named {missing}; have {sorted(chains)}")
    return {n: chains[n] for n in names}


def _split(x: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    flat = x.reshape(x.shape[:2] + (-1,))
    if flat.shape[-1] != len(names):
        raise ValueError(
            f"jno.plot: {len(names)} names for {flat.shape[-1]} components of shape {x.shape}"
        )
    return {n: flat[..., i] for i, n in enumerate(names)}


def _components(
    chains: Mapping[str, np.ndarray], max_components: int
) -> list[tuple[str, np.ndarray]]:
    """``[(label, (K, N))]``: each parameter component, ``name[i, j]`` for array parameters."""
    out = []
    for name, x in chains.items():
        param = x.shape[2:]
        flat = x.reshape(x.shape[:2] + (-1,))
        for i in range(flat.shape[-1]):
            if len(out) == max_components:
                return out
            label = name
            if param:
                idx = np.unravel_index(i, param)
                label = f"{name}[{', '.join(str(int(j)) for j in idx)}]"
            out.append((label, flat[..., i]))
    return out


def trace(
    samples: Any,
    *,
    names: Sequence[str] | None = None,
    max_components: int = 12,
    bins: int = 30,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Trace plot and marginal histogram of each parameter component.

    Args:
        samples: ``(K, N, *param)`` draws (``(N,)`` is one chain), a model after ``solve``, a
            list of models, ``{name: (K, N, *param)}`` or an ``arviz.InferenceData``.
        names: which entries to plot (by name), or names for a bare array (one name, or one
            per component).
        max_components: plot at most this many components (the first ones, in order).
        bins: histogram bins.
        figsize: defaults to ``(10, 2.2 * rows)``.

    Returns:
        The Figure: one row per component; the left axes has one line per chain (draw index
        on x, ``samples[k, :, i]`` on y, label ``"chain k"``), the right axes a histogram of
        all ``K·N`` draws. Both are titled with the component label (``"a"``, ``"a[1]"``,
        ``"u.layers[0].weight[2, 0]"``).
    """
    plt = _pyplot()
    comps = _components(_as_chains(samples, names), max_components)
    rows = len(comps)
    fig, axes = plt.subplots(
        rows,
        2,
        figsize=figsize or (10, 2.2 * rows),
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1]},
    )
    for (label, x), (ax_t, ax_h) in zip(comps, axes):
        for k in range(x.shape[0]):
            ax_t.plot(np.arange(x.shape[1]), x[k], lw=0.7, alpha=0.85, label=f"chain {k}")
        ax_t.set_title(f"trace of {label}", fontsize=9)
        ax_t.set_ylabel(label)
        ax_h.hist(x.reshape(-1), bins=bins, color="C0", alpha=0.7)
        ax_h.set_title(f"marginal of {label}", fontsize=9)
    axes[-1, 0].set_xlabel("draw")
    axes[0, 0].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..K·N of the pooled draws ``x`` ``(K, N)`` (ties broken by position)."""
    flat = x.reshape(-1)
    order = np.argsort(flat, kind="stable")
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(1, flat.size + 1)
    return ranks.reshape(x.shape)


def rank(
    samples: Any,
    *,
    names: Sequence[str] | None = None,
    bins: int | None = None,
    max_components: int = 8,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Rank plots per chain (Vehtari, Gelman, Simpson, Carpenter, Bürkner 2021).

    For each component the ``K·N`` draws of all chains are ranked together (1 = smallest);
    each chain's ranks are then binned into ``bins`` equal bins of ``[1, K·N]``. If the
    chains sample the same distribution every histogram is flat at ``N / bins`` (the dashed
    line); a chain stuck high or low shows as a slope.

    Args:
        samples: as for :func:`trace`; at least two chains make the plot informative.
        names: as for :func:`trace`.
        bins: bins per histogram (default ``min(20, max(N // 10, 1))``).
        max_components: plot at most this many components.
        figsize: defaults to ``(2.4 * K, 1.8 * rows)``.

    Returns:
        The Figure: one row per component, one axes per chain (title ``"<label> chain k"``),
        each a bar chart whose heights sum to N.
    """
    plt = _pyplot()
    comps = _components(_as_chains(samples, names), max_components)
    k_chains, n_draws = comps[0][1].shape
    bins = bins or min(20, max(n_draws // 10, 1))
    edges = np.linspace(1, k_chains * n_draws + 1, bins + 1)
    fig, axes = plt.subplots(
        len(comps),
        k_chains,
        figsize=figsize or (2.4 * k_chains, 1.8 * len(comps)),
        squeeze=False,
        sharey=True,
    )
    for (label, x), row in zip(comps, axes):
        ranks = _ranks(x)
        for k, ax in enumerate(row):
            counts, _ = np.histogram(ranks[k], bins=edges)
            ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", color=f"C{k}", alpha=0.8)
            ax.axhline(n_draws / bins, color="k", ls="--", lw=0.8)
            ax.set_title(f"{label} chain {k}", fontsize=8)
            ax.set_xticks([])
    for ax in axes[-1]:
        ax.set_xlabel("rank")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- predictions
def _draws_over(points: int, draws: Any, what: str) -> np.ndarray:
    """``(S, P)`` from draws of shape ``(..., P)`` or ``(..., P, 1)`` (crux.eval's output)."""
    d = np.asarray(draws, dtype=float)
    if d.ndim >= 2 and d.shape[-1] == 1 and d.shape[-2] == points:
        d = d[..., 0]
    if d.ndim < 1 or d.shape[-1] != points:
        raise ValueError(
            f"jno.plot.{what}: draws of shape {np.shape(draws)} do not end with the {points} "
            "points (expected (..., P) or (..., P, 1), e.g. crux.eval's (K, N, P, 1))."
        )
    return d.reshape(-1, points)


def predictive_band(
    x: Any,
    draws: Any,
    data: Any = None,
    level: float = 0.9,
    *,
    center: str = "mean",
    truth: Any = None,
    ax: Any = None,
    label: str = "posterior",
    color: str = "C0",
) -> Any:
    """1-D posterior predictive: centre line, central ``level`` band and the data.

    Args:
        x: ``(P,)`` coordinates (a ``(P, 1)`` column is flattened).
        draws: ``(..., P)`` or ``(..., P, 1)`` predictive draws, e.g. ``crux.eval([u])`` of
            shape ``(K, N, P, 1)``; all leading axes are pooled into ``S`` draws.
        data: the observations: ``(x_obs, y_obs)``, or ``y`` ``(P,)`` at ``x``; drawn as
            black points.
        level: probability of the central band: from the ``(1 - level)/2`` to the
            ``(1 + level)/2`` quantile of the draws at each point (``np.quantile``).
        center: ``"mean"`` or ``"median"`` of the draws.
        truth: optional ``(P,)`` reference curve (dashed black).
        ax: draw into this axes (the Figure is still returned).
        label: of the centre line and band.
        color: of the centre line and band.

    Returns:
        The Figure. In ``ax.lines``: the centre line (label ``"<label> <center>"``), the band
        edges (labels ``"_lower"`` and ``"_upper"``), then ``truth``; the band is a
        ``fill_between`` (label ``"<label> <level>% band"``) and the data an ``ax.scatter``
        (label ``"data"``).
    """
    plt = _pyplot()
    if not 0.0 < level < 1.0:
        raise ValueError(f"jno.plot.predictive_band: level must be in (0, 1), got {level}")
    if center not in ("mean", "median"):
        raise ValueError(
            f"jno.plot.predictive_band: center must be 'mean' or 'median', got {center!r}"
        )
    xs = np.asarray(x, dtype=float).reshape(-1)
    d = _draws_over(xs.size, draws, "predictive_band")
    order = np.argsort(xs, kind="stable")
    lo, hi = np.quantile(d, [(1 - level) / 2, (1 + level) / 2], axis=0)
    mid = d.mean(axis=0) if center == "mean" else np.median(d, axis=0)
    if ax is None:
        fig, ax = plt.subplots(figsize=(6.5, 4))
    else:
        fig = ax.figure
    xo = xs[order]
    ax.fill_between(
        xo, lo[order], hi[order], color=color, alpha=0.25, label=f"{label} {level:.0%} band"
    )
    ax.plot(xo, mid[order], color=color, lw=1.6, label=f"{label} {center}")
    ax.plot(xo, lo[order], color=color, lw=0.6, label="_lower")
    ax.plot(xo, hi[order], color=color, lw=0.6, label="_upper")
    if truth is not None:
        ax.plot(xo, np.asarray(truth, dtype=float).reshape(-1)[order], "k--", lw=1, label="truth")
    if data is not None:
        if isinstance(data, tuple) and len(data) == 2:
            x_obs, y_obs = (np.asarray(v, dtype=float).reshape(-1) for v in data)
        else:
            x_obs, y_obs = xs, np.asarray(data, dtype=float).reshape(-1)
        ax.scatter(x_obs, y_obs, s=10, color="k", zorder=3, label="data")
    ax.set_xlabel("x")
    ax.legend(fontsize=8)
    return fig


def field(
    points: Any,
    values: Any,
    *,
    kind: str = "tricontour",
    levels: int = 20,
    titles: Sequence[str] = ("posterior mean", "posterior std"),
    figsize: tuple[float, float] = (11, 4.2),
) -> Any:
    """Posterior mean and standard deviation of a field over 2-D points, side by side.

    Args:
        points: ``(P, 2)`` coordinates (``dom.points("interior")``), or a domain (its
            ``"interior"`` points are used).
        values: ``(S..., P)`` or ``(S..., P, 1)`` draws of the field at the points, e.g.
            ``crux.eval([u])`` of shape ``(K, N, P, 1)``; the leading axes are pooled.
        kind: ``"tricontour"`` (``tricontourf`` over a Delaunay triangulation of the points)
            or ``"scatter"`` (one coloured marker per point: exact values, any point set).
        levels: contour levels for ``"tricontour"``.
        titles: of the two axes.

    Returns:
        The Figure with the mean map (left), the std map (right; ``np.std`` over draws,
        ``ddof=0``) and a colorbar for each.
    """
    plt = _pyplot()
    if kind not in ("tricontour", "scatter"):
        raise ValueError(f"jno.plot.field: kind must be 'tricontour' or 'scatter', got {kind!r}")
    if hasattr(points, "points") and callable(points.points):
        points = points.points("interior")
    pts = np.asarray(points, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"jno.plot.field: points must be (P, 2), got shape {pts.shape}")
    d = _draws_over(pts.shape[0], values, "field")
    stats = (d.mean(axis=0), d.std(axis=0))
    fig, axes = plt.subplots(1, 2, figsize=figsize)
    for ax, value, title in zip(axes, stats, titles):
        if kind == "scatter":
            art = ax.scatter(pts[:, 0], pts[:, 1], c=value, s=12, cmap="viridis")
        else:
            art = ax.tricontourf(pts[:, 0], pts[:, 1], value, levels=levels, cmap="viridis")
        fig.colorbar(art, ax=ax)
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_aspect("equal")
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- calibration
def _curve_arrays(curve: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    if isinstance(curve, Mapping) and "coverage_curve" in curve:  # jno.metrics.summary
        return (
            np.asarray(curve["levels"]),
            np.asarray(curve["coverage_curve"]),
            np.asarray(curve["width_curve"]) if "width_curve" in curve else None,
        )
    if hasattr(curve, "levels") and hasattr(curve, "coverage"):
        sharp = getattr(curve, "sharpness", None)
        return (
            np.asarray(curve.levels),
            np.asarray(curve.coverage),
            None if sharp is None else np.asarray(sharp),
        )
    raise TypeError(
        "jno.plot.calibration: expected a jno.metrics.CalibrationCurve, a jno.metrics.summary "
        f"dict or {{label: curve}}, got {type(curve).__name__}"
    )


def calibration(
    curve: Any,
    *,
    sharpness: bool = True,
    ax: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Coverage of central intervals against their nominal level (and their mean width).

    Args:
        curve: a :class:`jno.metrics.CalibrationCurve` (``levels``, ``coverage``,
            ``sharpness``, each ``(L,)``), a :func:`jno.metrics.summary` dict (``levels``,
            ``coverage_curve``, ``width_curve``), or ``{label: curve}`` to overlay several.
        sharpness: add a second axes with the mean interval width against the level.
        ax: draw the coverage panel into this axes (then no sharpness panel).
        figsize: defaults to ``(10, 4)`` with the sharpness panel, ``(5, 4)`` without.

    Returns:
        The Figure. The coverage axes holds the diagonal ``y = x`` (label
        ``"perfect calibration"``) and one line per curve (x = levels, y = coverage); the
        sharpness axes one line per curve (x = levels, y = sharpness).
    """
    plt = _pyplot()
    curves = (
        dict(curve)
        if isinstance(curve, Mapping) and "coverage_curve" not in curve
        else {"coverage": curve}
    )
    arrays = {label: _curve_arrays(c) for label, c in curves.items()}
    if ax is not None:
        fig, axes, sharpness = ax.figure, [ax], False
    else:
        ncols = 2 if sharpness else 1
        fig, axes = plt.subplots(1, ncols, figsize=figsize or (5 * ncols, 4), squeeze=False)
        axes = list(axes[0])
    cov_ax = axes[0]
    cov_ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    for i, (label, (levels, coverage, _)) in enumerate(arrays.items()):
        cov_ax.plot(levels, coverage, "o-", ms=3, color=f"C{i}", label=label)
    cov_ax.set_xlabel("nominal level")
    cov_ax.set_ylabel("empirical coverage")
    cov_ax.set_xlim(0, 1)
    cov_ax.set_ylim(0, 1)
    cov_ax.set_title("calibration")
    cov_ax.legend(fontsize=8)
    if sharpness:
        sh_ax = axes[1]
        for i, (label, (levels, _, width)) in enumerate(arrays.items()):
            if width is not None:
                sh_ax.plot(levels, width, "o-", ms=3, color=f"C{i}", label=label)
        sh_ax.set_xlabel("nominal level")
        sh_ax.set_ylabel("mean interval width")
        sh_ax.set_title("sharpness")
        sh_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- sbc
def sbc_ecdf(
    result: Any,
    *,
    parameters: Sequence[str] | None = None,
    ax: Any = None,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """ECDF-difference plot of SBC ranks (Säilynoja et al. 2022).

    Args:
        result: a :class:`jno.bayesian.calibration.SBCResult`.
        parameters: the names to draw (default: all of ``result.names``).
        ax: draw into this axes (all parameters in one panel); default: one panel per
            parameter side by side.
        figsize: defaults to ``(4 * panels, 3.5)``.

    Returns:
        The Figure. Each panel holds, at ``z = result.band.z``, the band limits minus ``z``
        (lines labelled ``"band lower"`` and ``"band upper"``, filled between) and, per
        parameter, ``ECDF(z) - z`` labelled with the parameter's name and chi-square p-value
        (``"a[0] (p=0.41)"``), and a zero line.
    """
    plt = _pyplot()
    names = list(result.names) if parameters is None else list(parameters)
    unknown = [n for n in names if n not in result.names]
    if unknown:
        raise ValueError(
            f"jno.plot.sbc_ecdf: unknown parameter(s) {unknown}; the result has {result.names}"
        )
    if ax is not None:
        fig, axes = ax.figure, [ax] * len(names)
    else:
        fig, grid = plt.subplots(
            1, len(names), figsize=figsize or (4 * len(names), 3.5), squeeze=False
        )
        axes = list(grid[0])
    z, band = result.band.z, result.band
    ecdf = result.ecdf
    drawn = set()
    for i, name in enumerate(names):
        p = result.names.index(name)
        a = axes[i]
        if id(a) not in drawn:
            a.fill_between(z, band.lower - z, band.upper - z, color="0.85")
            a.plot(z, band.lower - z, color="0.5", lw=1, label="band lower")
            a.plot(z, band.upper - z, color="0.5", lw=1, label="band upper")
            a.axhline(0.0, color="k", lw=0.5)
            a.set_xlabel("fractional rank")
            a.set_ylabel("ECDF difference")
            a.set_title(
                f"SBC: {result.num_simulations} simulations, {int(100 * band.level)}% band"
            )
            drawn.add(id(a))
        a.plot(z, ecdf[p] - z, color=f"C{i}", lw=1.5, label=f"{name} (p={result.p_values[p]:.2g})")
        a.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------- history
def _history_arrays(
    h: Any,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``(steps, {constraint: losses}, total, {elbo label: (steps, values)})``."""
    if hasattr(h, "history") and hasattr(h, "models"):  # a crux
        h = h.history
    if hasattr(h, "loss_history"):  # InferenceData written by jno.bayesian.to_arviz
        h = h.loss_history
    if hasattr(h, "data_vars"):  # the loss_history Dataset
        import json

        names = json.loads(h.attrs.get("constraints", "[]")) or [
            str(v) for v in h.data_vars if str(v) != "total" and not str(v).startswith("metric_")
        ]
        metrics = json.loads(h.attrs.get("metrics", "{}"))
        elbo = {}
        for name, var in metrics.items():
            if name.startswith("elbo:"):
                da = h[var]
                elbo[name.split(":", 1)[1]] = (
                    np.asarray(da[da.dims[0]].values),
                    np.asarray(da.values),
                )
        return (
            np.asarray(h["step"].values),
            {n: np.asarray(h[n].values) for n in names},
            np.asarray(h["total"].values),
            elbo,
        )
    if hasattr(h, "losses") and hasattr(h, "total_loss"):
        elbo = {
            k.split(":", 1)[1]: v
            for k, v in getattr(h, "metrics", {}).items()
            if k.startswith("elbo:")
        }
        return np.asarray(h.steps), dict(h.losses), np.asarray(h.total_loss), elbo
    raise TypeError(
        "jno.plot.history: expected a History (crux.history), a crux, or an InferenceData "
        f"from jno.bayesian.to_arviz / load_posterior, got {type(h).__name__}"
    )


def history(h: Any, *, logy: bool = True, figsize: tuple[float, float] | None = None) -> Any:
    """Loss per constraint and total against the step; the ELBO of VI models if any.

    Args:
        h: ``crux.history`` (a :class:`~jno.solve.history.History`), the crux itself, or an
            ``InferenceData`` with the ``loss_history`` group (:func:`jno.bayesian.to_arviz`,
            :func:`jno.bayesian.load_posterior`).
        logy: log y axis for the losses when every plotted value is positive.
        figsize: defaults to ``(6.5, 4)``, ``(12, 4)`` with the ELBO panel.

    Returns:
        The Figure: the loss axes has one line per constraint (labelled with its name) and
        ``"total"`` (black), all over the recorded steps; with VI models a second axes has
        one ELBO line per model (labelled with the model label).
    """
    plt = _pyplot()
    steps, losses, total, elbo = _history_arrays(h)
    ncols = 2 if elbo else 1
    fig, axes = plt.subplots(1, ncols, figsize=figsize or (6.5 * ncols, 4), squeeze=False)
    ax = axes[0, 0]
    for name, values in losses.items():
        ax.plot(steps, values, lw=1, label=name)
    ax.plot(steps, total, "k", lw=1.5, label="total")
    shown = [total, *losses.values()]
    if logy and total.size and all(np.all(np.asarray(v) > 0) for v in shown):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("loss history")
    ax.legend(fontsize=8)
    if elbo:
        ax2 = axes[0, 1]
        for label, (s, v) in elbo.items():
            ax2.plot(s, v, lw=1, label=label)
        ax2.set_xlabel("step")
        ax2.set_ylabel("ELBO")
        ax2.set_title("ELBO")
        ax2.legend(fontsize=8)
    fig.tight_layout()
    return fig
