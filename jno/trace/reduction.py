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


class CausalMSE(Placeholder):
    """Causal mean squared residual over ``slices`` time slices (:mod:`jno.lower.causal`).

    ``expr`` and the time coordinate ``t`` live on one point set; ``t_range`` defaults to
    the range of ``t`` over the point set's points when built.
    """

    op = "reduce"
    kind = "causal_mse"

    def __init__(self, expr: Placeholder, t: Placeholder, slices: int, eps: float, t_range):
        expr = as_node(expr)
        where = f"{_describe(expr)}.causal_mse(t, slices={slices!r}, eps={eps!r})"
        if expr.pointset is None:
            raise ValueError(f"{where}: the residual is not point-wise; reduce it with .mse")
        if getattr(t, "op", None) != "variable" or t.pointset is not expr.pointset:
            raise ValueError(
                f"{where}: t must be the time coordinate of the residual's point set "
                f"'{expr.pointset.label}' (x, t, _ = dom.variable(...)), got {t!r}"
            )
        if not isinstance(slices, int) or isinstance(slices, bool) or slices < 1:
            raise ValueError(f"{where}: slices must be a positive int")
        if not eps >= 0:
            raise ValueError(f"{where}: eps must be >= 0 (0 gives the plain mse)")
        if t_range is None:
            column = np.asarray(expr.pointset.coords)[:, t.index]
            t_range = (float(column.min()), float(column.max()))
        t0, t1 = (float(v) for v in t_range)
        if not t1 > t0:
            raise ValueError(f"{where}: t_range {t_range} must have t1 > t0")
        super().__init__((expr, t), None, (), expr.dtype)
        self.slices, self.eps, self.t_range = slices, float(eps), (t0, t1)


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
