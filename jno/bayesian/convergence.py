"""Stopping rules for sampling: ``crux.solve(until=jno.bayesian.converged(...))``.

:func:`converged` returns a :class:`Converged` rule; the solve loop calls :meth:`Converged.check`
after every compiled chunk with the draws kept so far and stops at the first chunk where every
Bayesian model meets the targets: the largest rank-normalised split R-hat (Vehtari et al. 2021)
at or below ``rhat`` and the smallest bulk ESS at or above ``ess``, over all components of the
model's draws.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import numpy as np

from .diagnostics import ess as bulk_ess
from .diagnostics import rhat as split_rhat

MIN_DRAWS = 4  # R-hat and ESS need at least 4 draws per chain


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
    """Sample until R-hat <= ``rhat`` and bulk ESS >= ``ess`` for every model (see
    :func:`converged`)."""

    rhat: float = 1.01
    ess: float = 400.0

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

    def diagnose(self, chains: Any) -> ModelConvergence:
        """Worst R-hat and smallest bulk ESS over the components of ``chains``, a pytree of
        ``(K, N, ...)`` draws."""
        leaves = [np.asarray(a) for a in jax.tree.leaves(chains)]
        n = leaves[0].shape[1] if leaves else 0
        if n < MIN_DRAWS:
            return ModelConvergence(float("inf"), 0.0, n)
        flat = np.concatenate([a.reshape(a.shape[0], n, -1) for a in leaves], axis=2)
        r = np.asarray(split_rhat(flat))
        e = np.asarray(bulk_ess(flat))
        worst_r = float(np.max(np.where(np.isfinite(r), r, np.inf)))
        least_e = float(np.min(np.where(np.isfinite(e), e, 0.0)))
        return ModelConvergence(worst_r, least_e, n)

    def check(self, chains_by_model: Mapping[str, Any]) -> ConvergenceReport:
        """Diagnose every model's draws (``{label: pytree of (K, N, ...)}``) against the
        targets."""
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


def converged(rhat: float = 1.01, ess: float = 400.0) -> Converged:
    """The stopping rule of ``crux.solve(until=..., max_epochs=...)``.

    After every chunk (``print_rate`` steps) past warm-up the solve computes, for each Bayesian
    model, the rank-normalised split R-hat and the bulk ESS of every component of its kept
    draws (``(K, N, ...)``, all chains), and stops when ``max R-hat <= rhat`` and
    ``min ESS >= ess`` hold for every model, or when ``max_epochs`` steps have run.

    R-hat needs several chains to detect chains stuck in different modes (with one chain it is
    the split R-hat of its two halves); ESS counts all chains. Draws are the last ``keep``, so
    an ESS target needs ``keep`` large enough to reach it.

    Args:
        rhat: the largest acceptable R-hat (Vehtari et al. 2021 recommend 1.01).
        ess: the smallest acceptable bulk ESS (400 for four chains, their advice).
    """
    return Converged(float(rhat), float(ess))


__all__ = ["ConvergenceReport", "Converged", "ModelConvergence", "converged"]
