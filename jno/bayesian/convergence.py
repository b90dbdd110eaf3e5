"""Stopping rules for sampling: ``crux.solve(until=jno.bayesian.converged(...))``.

:func:`converged` returns a :class:`Converged` rule; the solve loop calls :meth:`Converged.check`
after every compiled chunk with the draws kept so far and stops at the first chunk where every
Bayesian model meets the targets: the largest rank-normalised split R-hat (Vehtari et al. 2021)
at or below ``rhat`` and the smallest bulk ESS at or above ``ess``, over all components of the
model's draws.

The rule runs after every chunk, on more draws each time; :func:`jno.bayesian.rhat` and
:func:`jno.bayesian.ess` are compiled per shape (seconds per new draw count), so the rule uses
their NumPy twins :func:`rank_rhat` and :func:`bulk_ess` (the same estimators; the tests check
that both agree to round-off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import numpy as np

MIN_DRAWS = 4  # R-hat and ESS need at least 4 draws per chain


# ---------------------------------------------------------------------- NumPy estimators
def _split(x: np.ndarray) -> np.ndarray:
    """``(K, N, P) -> (2K, N // 2, P)``: the first and last ``N // 2`` draws of each chain."""
    half = x.shape[1] // 2
    return np.concatenate([x[:, :half], x[:, x.shape[1] - half :]], axis=0)


def _average_ranks(flat: np.ndarray) -> np.ndarray:
    """Ranks ``1..M`` along axis 0, ties sharing their average rank, per column."""
    m = flat.shape[0]
    order = np.argsort(flat, axis=0, kind="stable")
    s = np.take_along_axis(flat, order, axis=0)
    idx = np.arange(m)[:, None]
    starts = np.ones_like(s, bool)
    starts[1:] = s[1:] != s[:-1]
    ends = np.ones_like(s, bool)
    ends[:-1] = starts[1:]
    first = np.maximum.accumulate(np.where(starts, idx, 0), axis=0)
    last = np.minimum.accumulate(np.where(ends, idx, m - 1)[::-1], axis=0)[::-1]
    ranks = np.empty(flat.shape, np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=0)
    return ranks


_A = (
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.3577518672690,
    -30.66479806614716,
    2.506628277459239,
)
_B = (
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
)
_C = (
    -7.784894002430293e-03,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
)
_D = (7.784695709041462e-03, 0.3224671290700398, 2.445134137142996, 3.754408661907416)


def _ndtri(p: np.ndarray) -> np.ndarray:
    """The standard normal quantile for ``0 < p < 1`` (Acklam's rational approximation,
    relative error below 1.2e-9: far below what ranks resolve)."""
    q = np.minimum(p, 1.0 - p)
    tail = q < 0.02425
    r = np.sqrt(-2.0 * np.log(np.where(tail, q, 0.5)))
    lower = (((((_C[0] * r + _C[1]) * r + _C[2]) * r + _C[3]) * r + _C[4]) * r + _C[5]) / (
        (((_D[0] * r + _D[1]) * r + _D[2]) * r + _D[3]) * r + 1.0
    )
    t = p - 0.5
    u = t * t
    central = (
        (((((_A[0] * u + _A[1]) * u + _A[2]) * u + _A[3]) * u + _A[4]) * u + _A[5])
        * t
        / (((((_B[0] * u + _B[1]) * u + _B[2]) * u + _B[3]) * u + _B[4]) * u + 1.0)
    )
    return np.where(tail, np.where(p < 0.5, lower, -lower), central)


def _rank_normalise(x: np.ndarray) -> np.ndarray:
    """Blom's rank normalisation over all sequences: ``Phi^-1((r - 3/8) / (S n + 1/4))``."""
    s, n = x.shape[:2]
    u = (_average_ranks(x.reshape(s * n, -1)) - 3.0 / 8.0) / (s * n + 0.25)
    return _ndtri(u).reshape(x.shape)


def _psrf(z: np.ndarray) -> np.ndarray:
    n = z.shape[1]
    b = n * np.var(np.mean(z, axis=1), axis=0, ddof=1)
    w = np.mean(np.var(z, axis=1, ddof=1), axis=0)
    return np.sqrt((b / w + n - 1) / n)


def rank_rhat(x) -> np.ndarray:
    """Rank-normalised split R-hat with folding (Vehtari et al. 2021), ``(K, N, P) -> (P,)``:
    the NumPy twin of :func:`jno.bayesian.rhat` (``strategy="auto"``)."""
    x = _split(np.asarray(x, np.float64))
    folded = np.abs(x - np.median(x.reshape(-1, x.shape[2]), axis=0))
    return np.maximum(_psrf(_rank_normalise(x)), _psrf(_rank_normalise(folded)))


def bulk_ess(x) -> np.ndarray:
    """Bulk ESS (Stan's Geyer estimator on rank-normalised split chains), ``(K, N, P) ->
    (P,)``: the NumPy twin of :func:`jno.bayesian.ess`."""
    z = _rank_normalise(_split(np.asarray(x, np.float64)))
    s, n = z.shape[:2]
    centred = z - np.mean(z, axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=1)[:, :n] / n
    w = np.mean(acov[:, 0], axis=0) * n / (n - 1.0)
    var_plus = w * (n - 1.0) / n
    if s > 1:
        var_plus = var_plus + np.var(np.mean(z, axis=1), axis=0, ddof=1)
    rho = 1.0 - (w - np.mean(acov, axis=0)) / var_plus
    rho[0] = 1.0
    k_max = max((n - 3) // 2, 0)
    even, odd = rho[0 : 2 * k_max + 1 : 2], rho[1 : 2 * k_max + 2 : 2]
    pairs = even + odd
    stops = pairs <= 0.0
    k_last = np.where(np.any(stops, axis=0), np.argmax(stops, axis=0), k_max)
    monotone = np.minimum.accumulate(pairs, axis=0)
    kept = np.arange(k_max + 1)[:, None] < k_last
    last_even = np.take_along_axis(even, k_last[None], axis=0)[0]
    last_pair = np.take_along_axis(pairs, k_last[None], axis=0)[0]
    improved = np.where((last_even > 0.0) | (last_pair >= 0.0), last_even, 0.0)
    tau = -1.0 + 2.0 * np.sum(np.where(kept, monotone, 0.0), axis=0) + improved
    tau = np.maximum(tau, 1.0 / math.log10(s * n))
    return s * n / tau


class ModelConvergence(NamedTuple):
    """One model's diagnostics at a check: worst R-hat, smallest bulk ESS, draws per chain."""

    rhat: float
    ess: float
    draws: int


class ConvergenceReport(NamedTuple):
    """The outcome of :meth:`Converged.check`.

    Attributes:
        done: every model meets both targets.
        models: ``{label: ModelConvergence}``.
        reason: a sentence saying what holds or what is still missing.
    """

    done: bool
    models: dict
    reason: str


@dataclass(frozen=True)
class Converged:
    """Sample until R-hat <= ``rhat`` and bulk ESS >= ``ess`` for every judged quantity (see
    :func:`converged`)."""

    rhat: float = 1.01
    ess: float = 400.0
    #: what is judged: ``None`` (the sampled parameters), a list or a ``{label: item}`` dict of
    #: models and expressions (not compared: a jno expression's ``==`` builds an expression)
    on: Any = field(default=None, compare=False)

    def __post_init__(self):
        if not (isinstance(self.rhat, (int, float)) and self.rhat >= 1.0):
            raise ValueError(
                f"jno.bayesian.converged: rhat must be a number >= 1 (e.g. 1.01), got {self.rhat!r}"
            )
        if not (isinstance(self.ess, (int, float)) and self.ess > 0):
            raise ValueError(
                f"jno.bayesian.converged: ess must be a positive number (e.g. 400), got "
                f"{self.ess!r}"
            )
        if self.on is not None:
            items = self.on.values() if isinstance(self.on, Mapping) else self.on
            if isinstance(self.on, str) or not isinstance(self.on, Mapping | list | tuple):
                raise TypeError(
                    "jno.bayesian.converged: on must be a list of models and expressions "
                    f"(e.g. on=[k, net(x_test)]) or a {{label: expression}} dict, got "
                    f"{type(self.on).__name__}"
                )
            if not list(items):
                raise ValueError("jno.bayesian.converged: on is empty; leave it out to judge "
                                 "the sampled parameters")

    def diagnose(self, chains: Any) -> ModelConvergence:
        """Worst R-hat and smallest bulk ESS over the components of ``chains``, a pytree of
        ``(K, N, ...)`` draws."""
        leaves = [np.asarray(a) for a in jax.tree.leaves(chains)]
        n = leaves[0].shape[1] if leaves else 0
        if n < MIN_DRAWS:
            return ModelConvergence(float("inf"), 0.0, n)
        flat = np.concatenate([a.reshape(a.shape[0], n, -1) for a in leaves], axis=2)
        r = rank_rhat(flat)
        e = bulk_ess(flat)
        worst_r = float(np.max(np.where(np.isfinite(r), r, np.inf)))
        least_e = float(np.min(np.where(np.isfinite(e), e, 0.0)))
        return ModelConvergence(worst_r, least_e, n)

    def check(self, chains_by_model: Mapping[str, Any]) -> ConvergenceReport:
        """Diagnose every quantity's draws (``{label: pytree of (K, N, ...)}``: a model's
        draws or an expression's values at them) against the targets."""
        models = {label: self.diagnose(ch) for label, ch in chains_by_model.items()}
        missing = []
        for label, m in models.items():
            if m.rhat > self.rhat:
                missing.append(f"{label} R-hat {m.rhat:.4f} > {self.rhat}")
            if m.ess < self.ess:
                missing.append(f"{label} ESS {m.ess:.0f} < {self.ess:g}")
        if missing:
            return ConvergenceReport(False, models, "not yet: " + "; ".join(missing))
        held = ", ".join(
            f"{label} R-hat {m.rhat:.4f}, ESS {m.ess:.0f}" for label, m in models.items()
        )
        return ConvergenceReport(
            True, models, f"R-hat <= {self.rhat} and ESS >= {self.ess:g} hold: {held}"
        )


def converged(rhat: float = 1.01, ess: float = 400.0, on: Any = None) -> Converged:
    """The stopping rule of ``crux.solve(until=..., max_epochs=...)``.

    After every chunk (``print_rate`` steps) past warm-up the solve computes, for each judged
    quantity, the rank-normalised split R-hat and the bulk ESS of every component of its kept
    draws (``(K, N, ...)``, all chains), and stops when ``max R-hat <= rhat`` and
    ``min ESS >= ess`` hold for every quantity, or when ``max_epochs`` steps have run.

    What is judged: by default every sampled parameter (``jno.np.parameter``), and none of a
    network's weights (R-hat over thousands of weights of a network with symmetric modes does
    not reach 1.01, and it is not what a user needs converged); a solve that samples no
    parameter judges every sampled model's weights. ``on`` chooses instead: models and
    expressions, e.g. ``on=[k, net(x_test)]`` (an expression is evaluated at every kept draw
    of the models it depends on, as ``crux.eval`` does), or a dict ``{"u(0.5)": net(x_mid)}``
    to name them in the log and the history (``"rhat:<label>"``, ``"ess:<label>"``). The log
    says at the start what is judged.

    R-hat needs several chains to detect chains stuck in different modes (with one chain it is
    the split R-hat of its two halves); ESS counts all chains. Draws are the last ``keep``, so
    an ESS target needs ``keep`` large enough to reach it.

    Args:
        rhat: the largest acceptable R-hat (Vehtari et al. 2021 recommend 1.01).
        ess: the smallest acceptable bulk ESS (400 for four chains, their advice).
        on: ``None``, a list of models and expressions, or a ``{label: item}`` dict.
    """
    return Converged(float(rhat), float(ess), on)


__all__ = [
    "ConvergenceReport",
    "Converged",
    "ModelConvergence",
    "bulk_ess",
    "converged",
    "rank_rhat",
]
