"""Export posterior chains to :mod:`arviz`, save them to netCDF and load them back.

arviz is optional: it is imported when one of these functions is called, not when jno is
imported.

* :func:`to_arviz` turns a solved crux (or a ``{name: chains}`` dict) into an
  ``arviz.InferenceData``: every Bayesian model in ``posterior`` (a network as one variable per
  array leaf, e.g. ``"u.layers[0].weight"``), the kernel diagnostics in ``sample_stats`` under
  arviz's names, the loss history in a ``loss_history`` group and every model's current value in
  a ``point_estimate`` group.
* :func:`save_posterior` writes that to netCDF with a JSON manifest (model names, kinds, leaf
  paths and shapes) in the posterior group's attributes.
* :func:`load_posterior` reads it back and, given a crux built by the same script, puts the
  samples, diagnostics and point values back on its models, so that ``crux.eval`` gives what it
  gave before saving.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from jno.bayesian.diagnostics import _key_str, named_leaves
from jno.solve.draw_store import is_sample_leaf

__all__ = ["load_posterior", "save_posterior", "to_arviz"]

# jno's per-step diagnostics field -> the sample_stats name arviz's plots read.
_ARVIZ_STAT_NAMES = {
    "is_divergent": "diverging",
    "num_integration_steps": "n_steps",
    "num_trajectory_expansions": "tree_depth",
}
MANIFEST_ATTR = "jno_manifest"
FORMAT = "jno-posterior/1"
HISTORY_GROUP = "loss_history"
POINT_GROUP = "point_estimate"


def _import_arviz(caller: str):
    try:
        import arviz as az
    except ImportError as err:
        raise ImportError(
            f"jno.bayesian.{caller} needs arviz, which is not installed: pip install arviz "
            "(or pip install 'jno[arviz]')."
        ) from err
    return az


# ---------------------------------------------------------------------------- dict form
def _named_arrays(tree: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    if not isinstance(tree, Mapping):
        raise TypeError(
            f"to_arviz: {what} must be a dict {{name: chains}} or a solved crux, got "
            f'{type(tree).__name__}. Wrap a single chain as {{"a": a.posterior_samples}}.'
        )
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        leaves = named_leaves(value, str(key))
        if not leaves:
            raise TypeError(f"to_arviz: {what} entry '{key}' has no array leaves.")
        for name, leaf in leaves:
            if name in out:
                raise ValueError(f"to_arviz: two {what} leaves are both named '{name}'.")
            out[name] = np.asarray(leaf)
    return out


def _check_layout(arrays: dict[str, np.ndarray], what: str, chain_draw: tuple[int, ...]) -> None:
    for name, x in arrays.items():
        if x.ndim < 2 or x.shape[:2] != chain_draw:
            raise ValueError(
                f"to_arviz: {what} '{name}' has shape {x.shape}; every array must start with "
                f"the (chain, draw) axes {chain_draw} of the first posterior variable, i.e. "
                "the (K, N, *param) layout of posterior_samples."
            )


def _from_dicts(az, samples: Mapping[str, Any], diagnostics: Mapping[str, Any] | None):
    posterior = _named_arrays(samples, "samples")
    if not posterior:
        raise ValueError("to_arviz: samples is empty.")
    chain_draw = next(iter(posterior.values())).shape[:2]
    _check_layout(posterior, "samples", chain_draw)

    sample_stats = None
    if diagnostics is not None:
        stats = _named_arrays(diagnostics, "diagnostics")
        _check_layout(stats, "diagnostics", chain_draw)
        sample_stats = {}
        for name, x in stats.items():
            head, dot, field = name.rpartition(".")
            sample_stats[head + dot + _ARVIZ_STAT_NAMES.get(field, field)] = x
    return az.from_dict(posterior=posterior, sample_stats=sample_stats)


# ---------------------------------------------------------------------------- crux form
def _is_crux(obj: Any) -> bool:
    return not isinstance(obj, Mapping) and hasattr(obj, "models") and hasattr(obj, "eval")


def _is_parameter(model: Any) -> bool:
    return getattr(model, "kind", None) == "param"


def _params(tree: Any) -> Any:
    """The inexact-array leaves of a network (what is sampled); ``None`` elsewhere."""
    return eqx.filter(tree, is_sample_leaf)


def _leaves_with_paths(model: Any, tree: Any) -> list[tuple[str, np.ndarray]]:
    """``[(path, leaf)]`` of a model value: ``[("", array)]`` for a Parameter."""
    if _is_parameter(model):
        return [("", np.asarray(tree))]
    flat, _ = jax.tree_util.tree_flatten_with_path(_params(tree))
    return [("".join(_key_str(k) for k in path), np.asarray(leaf)) for path, leaf in flat]


def _stat_names(diag: Mapping[str, Any]) -> dict[str, str]:
    """``{jno field: sample_stats name}``: ``diverging`` is ``is_divergent``, or ``nonfinite``
    for kernels without ``is_divergent``; unknown fields keep their names."""
    names = {}
    for field in diag:
        if field == "nonfinite" and "is_divergent" not in diag:
            names[field] = "diverging"
        else:
            names[field] = _ARVIZ_STAT_NAMES.get(field, field)
    return names


def _same_diagnostics(d1: Mapping[str, Any], d2: Mapping[str, Any]) -> bool:
    if set(d1) != set(d2):
        return False
    return all(
        np.shape(d1[k]) == np.shape(d2[k]) and np.array_equal(np.asarray(d1[k]), np.asarray(d2[k]))
        for k in d1
    )


def _history_dataset(history: Any):
    import xarray as xr

    steps = np.asarray(history.steps)
    data = {name: ("step", np.asarray(v)) for name, v in history.losses.items()}
    data["total"] = ("step", np.asarray(history.total_loss))
    coords = {"step": steps}
    metric_names = {}
    for i, (name, (msteps, values)) in enumerate(getattr(history, "metrics", {}).items()):
        var = f"metric_{i}"
        metric_names[name] = var
        if np.array_equal(np.asarray(msteps), steps):
            data[var] = ("step", np.asarray(values))
        else:
            data[var] = (f"{var}_step", np.asarray(values))
            coords[f"{var}_step"] = np.asarray(msteps)
    ds = xr.Dataset(data, coords=coords)
    ds.attrs["wall_time"] = float(getattr(history, "wall_time", 0.0))
    ds.attrs["constraints"] = json.dumps(list(history.losses))
    ds.attrs["metrics"] = json.dumps(metric_names)
    return ds


def _point_dataset(models: list[Any]):
    import xarray as xr

    data = {}
    for m in models:
        for path, leaf in _leaves_with_paths(m, m.module):
            name = m.model_name + path
            data[name] = ([f"{name}_dim_{i}" for i in range(leaf.ndim)], leaf)
    return xr.Dataset(data)


def _from_crux(az, crux: Any, *, history: bool = True):
    """InferenceData and manifest of a solved crux."""
    sampled = [m for m in crux.models if m.posterior_samples is not None]
    if not sampled:
        raise ValueError(
            "to_arviz: no model of this crux has posterior samples; configure one with "
            ".bayesian(...) or .vi(...) and call crux.solve() first."
        )
    posterior: dict[str, np.ndarray] = {}
    entries: dict[str, dict] = {}
    layout: tuple[str, tuple[int, int]] | None = None
    for m in sampled:
        template = _leaves_with_paths(m, m.module)
        leaves = _leaves_with_paths(m, m.posterior_samples)
        if [p for p, _ in leaves] != [p for p, _ in template]:
            raise ValueError(
                f"to_arviz: model '{m.model_name}': posterior_samples has leaves "
                f"{[p for p, _ in leaves]} but the model's module has {[p for p, _ in template]}."
            )
        extra = leaves[0][1].ndim - template[0][1].ndim
        if extra not in (1, 2):
            raise ValueError(
                f"to_arviz: model '{m.model_name}': posterior_samples leaf of shape "
                f"{leaves[0][1].shape} for a parameter of shape {template[0][1].shape}; "
                "expected (K, N, *param) or (N, *param)."
            )
        chain_axis = extra == 2
        names, shapes = [], []
        for (path, x), (_, base) in zip(leaves, template):
            x = x if chain_axis else x[None]
            if x.shape[2:] != base.shape:
                raise ValueError(
                    f"to_arviz: model '{m.model_name}' leaf '{path}': samples of shape "
                    f"{x.shape} do not end with the parameter shape {base.shape}."
                )
            if layout is None:
                layout = (m.model_name, x.shape[:2])
            elif x.shape[:2] != layout[1]:
                raise ValueError(
                    f"to_arviz: model '{m.model_name}' has (chain, draw) = {x.shape[:2]} but "
                    f"model '{layout[0]}' has {layout[1]}; one InferenceData needs one layout. "
                    "Export them separately with to_arviz({name: samples})."
                )
            name = m.model_name + path
            if name in posterior:
                raise ValueError(f"to_arviz: two posterior variables are both named '{name}'.")
            posterior[name] = x
            names.append(name)
            shapes.append(list(base.shape))
        entries[m.model_name] = {
            "kind": "param" if _is_parameter(m) else "net",
            "chain_axis": chain_axis,
            "variables": names,
            "leaf_paths": [p for p, _ in leaves],
            "shapes": shapes,
            "dtypes": [str(x.dtype) for _, x in leaves],
            "diagnostics": None,
        }

    # sample_stats: one set per distinct diagnostics (one per Gibbs block)
    groups: list[tuple[dict, list[str]]] = []
    for m in sampled:
        diag = m.posterior_diagnostics
        if diag is None:
            continue
        diag = {k: np.asarray(v) for k, v in diag.items()}
        for d, members in groups:
            if _same_diagnostics(d, diag):
                members.append(m.model_name)
                break
        else:
            groups.append((diag, [m.model_name]))
        entries[m.model_name]["diagnostics"] = {}
    sample_stats: dict[str, np.ndarray] = {}
    nonempty = [(d, members) for d, members in groups if d]
    for d, members in nonempty:
        prefix = "" if len(nonempty) == 1 else members[0] + "."
        for field, stat in _stat_names(d).items():
            x = d[field]
            x = x if entries[members[0]]["chain_axis"] else x[None]
            if x.shape[:2] != layout[1]:
                raise ValueError(
                    f"to_arviz: model '{members[0]}' diagnostics '{field}' has shape {x.shape}, "
                    f"expected (chain, draw) = {layout[1]}."
                )
            sample_stats[prefix + stat] = x
            for name in members:
                entries[name]["diagnostics"][field] = prefix + stat
    if len(nonempty) > 1:
        divs = [
            sample_stats[f"{members[0]}.diverging"]
            for _, members in nonempty
            if f"{members[0]}.diverging" in sample_stats
        ]
        if divs:
            sample_stats["diverging"] = np.logical_or.reduce(divs)

    idata = az.from_dict(posterior=posterior, sample_stats=sample_stats or None)
    extra_groups = {POINT_GROUP: _point_dataset(list(crux.models))}
    hist = getattr(crux, "history", None)
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "models": entries,
        "point": {
            m.model_name: {
                "kind": "param" if _is_parameter(m) else "net",
                "leaf_paths": [p for p, _ in _leaves_with_paths(m, m.module)],
            }
            for m in crux.models
        },
        "seed": getattr(crux, "seed", None),
    }
    if history and hist is not None and len(hist):
        extra_groups[HISTORY_GROUP] = _history_dataset(hist)
    idata.add_groups(extra_groups, warn_on_custom_groups=False)
    idata.posterior.attrs[MANIFEST_ATTR] = json.dumps(manifest)
    return idata


def to_arviz(
    samples: Any, diagnostics: Mapping[str, Any] | None = None, *, history: bool = True
) -> Any:
    """Convert posterior chains to an ``arviz.InferenceData``.

    Parameters
    ----------
    samples
        Either a solved crux (``jno.core(...)`` after ``solve``), or ``{name: chain}`` with
        each chain a ``(K, N, *param)`` array or a pytree of them (an equinox module's
        ``posterior_samples``).

        *A crux.* Every model with ``posterior_samples`` goes to ``posterior``: a Parameter
        ``a`` as variable ``"a"`` ``(K, N, *shape)``, a network ``u`` as one variable per
        inexact-array leaf named by key path (``"u.layers[0].weight"``, ``(K, N, out, in)``).
        The single-chain layout ``(N, *param)`` gets a chain axis of 1. Each model's
        ``posterior_diagnostics`` ``{field: (K, N)}`` goes to ``sample_stats`` under arviz's
        names: ``diverging`` (``is_divergent``; ``nonfinite`` for kernels without it),
        ``acceptance_rate``, ``energy``, ``n_steps`` (``num_integration_steps``),
        ``tree_depth`` (``num_trajectory_expansions``), other fields as they are. Models
        sampled jointly share one set; with several Gibbs blocks each set is prefixed with
        the block's first model name (``"a.diverging"``) and ``diverging`` is their logical
        or. The loss history (``crux.history``: one variable per constraint and ``total``
        over dim ``step``; extra metrics such as ELBOs as ``metric_<i>``, their names in the
        group's ``metrics`` attribute) goes to a ``loss_history`` group and every model's
        current value to a ``point_estimate`` group. A JSON manifest (model names, kinds,
        leaf paths, shapes, diagnostics names) is stored in ``posterior.attrs
        ["jno_manifest"]``; :func:`load_posterior` uses it.

        *A dict.* Module leaves become separate posterior variables named by key path
        (``"net.layers[0].weight"``); non-array leaves (activation functions) are dropped.
        All variables must share the same (K, N).
    diagnostics
        Dict form only: per-step kernel diagnostics, stored as ``sample_stats``: either one
        model's ``posterior_diagnostics`` ``{field: (K, N)}`` or
        ``{model_name: {field: (K, N)}}`` (variables ``"model_name.field"``), with the field
        names mapped as above.
    history
        Crux form only: include the ``loss_history`` group.

    Returns
    -------
    ``arviz.InferenceData`` with a ``posterior`` group (dims ``chain``, ``draw``, then
    ``<name>_dim_0``, ...) and, where there are diagnostics, a ``sample_stats`` group.

    Raises
    ------
    ImportError
        arviz is not installed (``pip install arviz``).
    ValueError
        No model has samples, or models have different (chain, draw) layouts.
    """
    az = _import_arviz("to_arviz")
    if _is_crux(samples):
        if diagnostics is not None:
            raise TypeError(
                "to_arviz(crux): the diagnostics come from the models; do not pass them."
            )
        return _from_crux(az, samples, history=history)
    return _from_dicts(az, samples, diagnostics)


# ---------------------------------------------------------------------------- save / load
def save_posterior(crux: Any, path: str | os.PathLike, *, history: bool = True) -> Path:
    """Write a solved crux's posterior to netCDF (``InferenceData.to_netcdf``).

    The file holds what :func:`to_arviz` gives for the crux, manifest included, so that
    :func:`load_posterior` can restore the samples onto a crux built by the same script. The
    file is written to a temporary name next to ``path`` and renamed, so an interrupted write
    never leaves a truncated file at ``path``.

    Args:
        crux: a crux after ``solve`` with at least one Bayesian (or VI, ensemble) model.
        path: the netCDF file to write (conventionally ``*.nc``); overwritten if it exists.
        history: include the loss history.

    Returns:
        ``path`` as a :class:`pathlib.Path`.
    """
    if not _is_crux(crux):
        raise TypeError(
            f"save_posterior needs a crux (jno.core(...)), got {type(crux).__name__}; for "
            "plain chains use jno.bayesian.to_arviz({name: samples}).to_netcdf(path)."
        )
    idata = to_arviz(crux, history=history)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    try:
        idata.to_netcdf(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _manifest(idata: Any, path: Any) -> dict:
    posterior = getattr(idata, "posterior", None)
    raw = None if posterior is None else posterior.attrs.get(MANIFEST_ATTR)
    if raw is None:
        raise ValueError(
            f"load_posterior: {path} has no jno manifest (posterior.attrs['{MANIFEST_ATTR}']); "
            "it was not written by jno.bayesian.save_posterior, so it cannot be put back on "
            "a crux. Call load_posterior(path) without crux to read it as InferenceData."
        )
    manifest = json.loads(raw)
    if manifest.get("format") != FORMAT:
        raise ValueError(
            f"load_posterior: {path} has manifest format {manifest.get('format')!r}; this jno "
            f"reads {FORMAT!r}."
        )
    return manifest


def _rebuild(model: Any, leaves: list[np.ndarray]) -> Any:
    """A model value with ``leaves`` (in the order of the module's flattened inexact leaves)."""
    if _is_parameter(model):
        return leaves[0]
    params, static = eqx.partition(model.module, eqx.is_inexact_array)
    treedef = jax.tree_util.tree_structure(params)
    return eqx.combine(jax.tree_util.tree_unflatten(treedef, leaves), static)


def _check_model(
    model: Any, name: str, kind: str, paths: list[str], shapes: list[list[int]], path: Any
) -> None:
    have = "param" if _is_parameter(model) else "net"
    if have != kind:
        what = {"param": "a Parameter", "net": "a network"}
        raise ValueError(
            f"load_posterior: model '{name}' is {what[kind]} in {path} but {what[have]} in "
            "the crux."
        )
    template = _leaves_with_paths(model, model.module)
    crux_paths = [p for p, _ in template]
    if crux_paths != list(paths):
        only_file = [p for p in paths if p not in crux_paths]
        only_crux = [p for p in crux_paths if p not in paths]
        raise ValueError(
            f"load_posterior: model '{name}' has leaves {list(paths)} in {path} but "
            f"{crux_paths} in the crux (only in the file: {only_file}; only in the crux: "
            f"{only_crux})."
        )
    for p, shape, (_, base) in zip(paths, shapes, template):
        if tuple(shape) != base.shape:
            leaf = f" leaf '{p}'" if p else ""
            raise ValueError(
                f"load_posterior: model '{name}'{leaf} has shape {tuple(shape)} in {path} but "
                f"{base.shape} in the crux."
            )


def load_posterior(path: str | os.PathLike, crux: Any = None) -> Any:
    """Read a file written by :func:`save_posterior`; optionally restore it onto ``crux``.

    Args:
        path: the netCDF file.
        crux: a crux built by the same script (same model names, kinds and shapes; it need
            not be solved). When given, every saved model gets its ``posterior_samples``
            (the saved layout: ``(K, N, *param)``, or ``(N, *param)`` for a single chain
            without ``num_chains``; networks as the model's module with sampled leaves),
            its ``posterior_diagnostics`` (``{field: (K, N)}`` under jno's field names, or
            the ``None`` / ``{}`` it had) and its ``module`` (the point value at save time);
            ``crux.eval`` then evaluates on the loaded posterior. Nothing is changed unless
            every model matches.

    Returns:
        The ``arviz.InferenceData`` (loaded into memory).

    Raises:
        ValueError: the file has no jno manifest (when ``crux`` is given), or a saved model is
            missing from the crux or differs from it in kind, leaf paths or shapes; the message
            names the model and what differs.
    """
    az = _import_arviz("load_posterior")
    idata = az.from_netcdf(str(path))
    if crux is None:
        return idata
    if not _is_crux(crux):
        raise TypeError(f"load_posterior: crux must be a jno crux, got {type(crux).__name__}")
    manifest = _manifest(idata, path)
    by_name = {m.model_name: m for m in crux.models}
    point_group = getattr(idata, POINT_GROUP, None)

    def need(name: str) -> Any:
        if name not in by_name:
            raise ValueError(
                f"load_posterior: model '{name}' is in {path} but not in the crux (its models: "
                f"{sorted(by_name)}). Build the crux with the same model names "
                "(jno.np.parameter(..., name=...), jno.nn.wrap(..., name=...))."
            )
        return by_name[name]

    updates = []
    for name, entry in manifest["models"].items():
        model = need(name)
        _check_model(model, name, entry["kind"], entry["leaf_paths"], entry["shapes"], path)
        leaves = []
        for var, dtype in zip(entry["variables"], entry["dtypes"]):
            x = np.asarray(idata.posterior[var].values, dtype=dtype)
            leaves.append(x if entry["chain_axis"] else x[0])
        samples = _rebuild(model, leaves)
        diag = entry["diagnostics"]
        if diag is not None:
            restored = {}
            for field, var in diag.items():
                x = np.asarray(idata.sample_stats[var].values)
                if field in ("is_divergent", "nonfinite"):
                    x = x.astype(bool)
                restored[field] = x if entry["chain_axis"] else x[0]
            diag = restored
        updates.append((model, "posterior_samples", samples))
        updates.append((model, "posterior_diagnostics", diag))
    if point_group is not None:
        for name, entry in manifest.get("point", {}).items():
            model = need(name)
            template = _leaves_with_paths(model, model.module)
            shapes = [list(point_group[name + p].shape) for p in entry["leaf_paths"]]
            _check_model(model, name, entry["kind"], entry["leaf_paths"], shapes, path)
            leaves = [
                np.asarray(point_group[name + p].values, dtype=base.dtype)
                for p, (_, base) in zip(entry["leaf_paths"], template)
            ]
            value = _rebuild(model, leaves)
            updates.append(
                (model, "module", value if not _is_parameter(model) else jax.numpy.asarray(value))
            )
    for model, attr, value in updates:
        setattr(model, attr, value)
    return idata
