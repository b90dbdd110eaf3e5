"""Export posterior chains to :mod:`arviz`.

arviz is optional: it is imported when :func:`to_arviz` is called, not when jno is imported.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from jno.bayesian.diagnostics import named_leaves

__all__ = ["to_arviz"]

# jno's per-step diagnostics field -> the sample_stats name arviz's plots read.
_ARVIZ_STAT_NAMES = {"is_divergent": "diverging"}


def _named_arrays(tree: Mapping[str, Any], what: str) -> dict[str, np.ndarray]:
    if not isinstance(tree, Mapping):
        raise TypeError(
            f"to_arviz: {what} must be a dict {{name: chains}}, got {type(tree).__name__}. "
            'Wrap a single chain as {"a": a.posterior_samples}.'
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


def to_arviz(samples: Mapping[str, Any], diagnostics: Mapping[str, Any] | None = None) -> Any:
    """Convert posterior chains to an ``arviz.InferenceData``.

    Parameters
    ----------
    samples
        ``{name: chain}``, each chain a ``(K, N, *param)`` array or a pytree of them (an
        equinox module's ``posterior_samples``). Module leaves become separate posterior
        variables named by key path, e.g. ``"net.layers[0].weight"`` with shape
        ``(K, N, out, in)``; non-array leaves (activation functions) are dropped. All
        variables must share the same (K, N).
    diagnostics
        Optional per-step kernel diagnostics, stored as the ``sample_stats`` group: either one
        model's ``posterior_diagnostics`` ``{field: (K, N)}`` or ``{model_name: {field: (K, N)}}``
        (variables ``"model_name.field"``). A field called ``is_divergent`` is stored under
        arviz's name ``diverging`` so that arviz's plots mark divergent transitions.

    Returns
    -------
    ``arviz.InferenceData`` with a ``posterior`` group (dims ``chain``, ``draw``, then
    ``<name>_dim_0``, ...) and, when ``diagnostics`` is given, a ``sample_stats`` group.

    Raises
    ------
    ImportError
        arviz is not installed (``pip install arviz``).
    """
    try:
        import arviz as az
    except ImportError as err:
        raise ImportError(
            "jno.bayesian.to_arviz needs arviz, which is not installed: pip install arviz "
            "(or pip install 'jno[arviz]')."
        ) from err

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
