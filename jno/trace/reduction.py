"""Reductions: the nodes that turn point-wise residuals into scalar constraints."""

from __future__ import annotations

import numpy as np

from .node import Data, Placeholder, _describe, as_node

REDUCTIONS = ("mse", "mean", "sum", "mae", "max")
# Reductions whose value is a sum over points: a point subsample of size n out of N scales
# them by N/n so the estimate stays unbiased. Means are already unbiased.
SUM_LIKE = ("sum",)


class Reduction(Placeholder):
    """``mse | mean | sum | mae | max`` of an expression over its points and components."""

    op = "reduce"

    def __init__(self, kind: str, expr: Placeholder):
        if kind not in REDUCTIONS:
            raise ValueError(f"unknown reduction {kind!r}; choose one of {REDUCTIONS}")
        expr = as_node(expr)
        if not np.issubdtype(np.dtype(expr.dtype), np.number) and kind != "sum":
            raise TypeError(f".{kind} of non-numeric {_describe(expr)}")
        super().__init__((expr,), None, (), expr.dtype)
        self.kind = kind


class GaussianLikelihood(Placeholder):
    """Calibrated Gaussian likelihood of a residual ``r`` with noise ``σ``.

    Value (a loss): ``½ Σ r²/σ² + Σ log σ + ½ n log(2π)`` summed over the ``n`` points and
    components. Its negative is the exact log-likelihood, used untempered by ``likelihood_scale``.
    """

    op = "gaussian"

    def __init__(self, residual: Placeholder, std):
        residual = as_node(residual)
        if isinstance(std, (int, float)) and not std > 0:
            raise ValueError(f"{_describe(residual)}.gaussian(std={std}): std must be positive")
        if isinstance(std, np.ndarray) and not np.all(std > 0):
            raise ValueError(f"{_describe(residual)}.gaussian(std=...): every std must be > 0")
        std_node = _std_node(residual, std)
        if std_node.pointset is not None and residual.pointset is not None:
            if std_node.pointset is not residual.pointset:
                raise ValueError(
                    f"{_describe(residual)}.gaussian(std=...): std lives on another point set"
                )
        try:
            np.broadcast_shapes(residual.shape, std_node.shape)
        except ValueError:
            raise ValueError(
                f"{_describe(residual)}.gaussian(std=...): std of shape {std_node.shape} does not "
                f"broadcast against the residual's per-point shape {residual.shape}"
            ) from None
        super().__init__((residual, std_node), None, (), residual.dtype)


def _std_node(residual: Placeholder, std) -> Placeholder:
    """``std`` as a node; an array with one row per point becomes data on the residual's set."""
    ps = residual.pointset
    if not isinstance(std, Placeholder) and ps is not None:
        arr = np.asarray(std)
        if arr.ndim >= 1 and arr.shape[0] == ps.size and ps.size > 1:
            name = f"_std_{residual.id}"
            ps.attach(name, arr)
            return Data(ps, name)
    return as_node(std)
