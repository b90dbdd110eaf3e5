"""Bayesian tools: priors, convergence diagnostics, log-density initializers, arviz export,
saved posteriors and simulation-based calibration (``sbc``).

Submodules load on first use, so ``import jno`` stays light.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "priors": ("jno.bayesian.priors", None),
    "rhat": ("jno.bayesian.diagnostics", "rhat"),
    "ess": ("jno.bayesian.diagnostics", "ess"),
    "summary": ("jno.bayesian.diagnostics", "summary"),
    "format_summary": ("jno.bayesian.diagnostics", "format_summary"),
    "converged": ("jno.bayesian.convergence", "converged"),
    "Converged": ("jno.bayesian.convergence", "Converged"),
    "to_arviz": ("jno.bayesian.export", "to_arviz"),
    "save_posterior": ("jno.bayesian.export", "save_posterior"),
    "load_posterior": ("jno.bayesian.export", "load_posterior"),
    "pathfinder": ("jno.bayesian.initializers", "pathfinder"),
    "laplace": ("jno.bayesian.initializers", "laplace"),
    "map_pipeline": ("jno.bayesian.initializers", "map_pipeline"),
    "MapPipeline": ("jno.bayesian.initializers", "MapPipeline"),
    "svgd": ("jno.bayesian.initializers", "svgd"),
    "BayesianInitializer": ("jno.bayesian.initializers", "BayesianInitializer"),
    "sbc": ("jno.bayesian.calibration", "sbc"),
    "SBCResult": ("jno.bayesian.calibration", "SBCResult"),
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'jno.bayesian' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
