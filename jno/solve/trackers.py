"""Watching a solve from outside the process: trackers called between compiled chunks.

A tracker is any object with ``log(metrics: dict[str, float], step: int)`` (and optionally
``finish()``, called when the solve returns). After every chunk the solve builds one flat dict
(:func:`chunk_metrics`) and hands it to each tracker:

| key | value |
|---|---|
| ``loss/<constraint>``, ``loss/total`` | the chunk's last per-constraint and total loss |
| ``<metric>`` | per-step metrics of the history (ELBO, ...) |
| ``posterior/<name>/n_samples`` | draws kept so far (per chain) |
| ``posterior/<name>/n_chains`` | ``num_chains`` |
| ``posterior/<name>/mean`` | running posterior mean (scalar parameters only) |
| ``posterior/<name>/n_is_divergent`` | divergent transitions so far (NUTS / HMC) |
| ``posterior/<name>/mean_acceptance_rate`` | mean acceptance rate (NUTS / HMC / MALA) |
| ``posterior/<name>/mean_energy`` | mean Hamiltonian energy (NUTS / HMC) |

These are the guide's wandb keys. :class:`WandbTracker` (``pip install wandb``) logs them to a
wandb run and is used automatically when a run is active (``wandb.init`` was called);
:class:`TensorBoardTracker` (``pip install tensorboardX``) writes scalars to an event file.
"""

from __future__ import annotations

import sys
from typing import Protocol, runtime_checkable

import numpy as np

from .draw_store import StoredDraws


@runtime_checkable
class Tracker(Protocol):
    """What the solve calls between chunks."""

    def log(self, metrics: dict[str, float], step: int) -> None: ...


def posterior_metrics(blocks, recorder) -> dict[str, float]:
    """The guide's ``posterior/<name>/...`` statistics of every recording block's models."""
    out: dict[str, float] = {}
    for b, blk in enumerate(blocks):
        if not blk.records:
            continue
        n = recorder.count(b)
        draws, diag = recorder.posterior(b) if n else (None, {})
        for mem in blk.members:
            name = mem.model.model_name
            key = f"posterior/{name}"
            out[f"{key}/n_samples"] = float(n)
            out[f"{key}/n_chains"] = float(getattr(blk.settings, "num_chains", 1))
            if not n:
                continue
            piece = draws[mem.key]
            if isinstance(piece, np.ndarray | StoredDraws) and np.prod(piece.shape[2:]) == 1:
                out[f"{key}/mean"] = float(np.mean(np.asarray(piece)))
            if "is_divergent" in diag:
                out[f"{key}/n_is_divergent"] = float(np.sum(diag["is_divergent"]))
            if "acceptance_rate" in diag:
                out[f"{key}/mean_acceptance_rate"] = float(np.mean(diag["acceptance_rate"]))
            if "energy" in diag:
                out[f"{key}/mean_energy"] = float(np.mean(diag["energy"]))
    return out


def chunk_metrics(names, losses, history, blocks, recorder) -> dict[str, float]:
    """Everything a tracker receives after a chunk (see the module docstring)."""
    losses = np.asarray(losses, dtype=np.float64).reshape(-1)
    out = {f"loss/{n}": float(v) for n, v in zip(names, losses)}
    out["loss/total"] = float(np.sum(losses))
    for name, (_, values) in history.metrics.items():
        if len(values):
            out[name] = float(values[-1])
    out.update(posterior_metrics(blocks, recorder))
    return out


class WandbTracker:
    """Log to a wandb run (the active one by default).

    Args:
        run: a ``wandb.Run``; ``None`` uses ``wandb.run`` (call ``wandb.init`` first).
        prefix: prepended to every key (e.g. ``"jno/"``).
    """

    def __init__(self, run=None, prefix: str = ""):
        try:
            import wandb
        except ImportError as err:
            raise ImportError("WandbTracker needs wandb: pip install wandb") from err
        self.run = run if run is not None else wandb.run
        if self.run is None:
            raise ValueError(
                "WandbTracker: no active wandb run; call wandb.init(...) first or pass run=."
            )
        self.prefix = prefix

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log({self.prefix + k: v for k, v in metrics.items()}, step=int(step))


class TensorBoardTracker:
    """Write every metric as a TensorBoard scalar (tensorboardX's ``SummaryWriter``).

    Args:
        logdir: the event-file folder.
    """

    def __init__(self, logdir):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as err:
            raise ImportError(
                "TensorBoardTracker needs tensorboardX: pip install tensorboardX"
            ) from err
        self.writer = SummaryWriter(logdir=str(logdir))

    def log(self, metrics: dict[str, float], step: int) -> None:
        for k, v in metrics.items():
            self.writer.add_scalar(k, v, global_step=int(step))
        self.writer.flush()

    def finish(self) -> None:
        self.writer.close()


def active_trackers(trackers) -> list:
    """The solve's trackers: those given, else a :class:`WandbTracker` when wandb is imported
    and a run is active (the guide's behaviour), else none. Pass ``trackers=[]`` to log
    nowhere."""
    if trackers is not None:
        trackers = list(trackers)
        for t in trackers:
            if not isinstance(t, Tracker):
                raise TypeError(
                    f"crux.solve(trackers=...): {type(t).__name__} has no log(metrics, step) "
                    "method; use jno.trackers.WandbTracker, TensorBoardTracker or an object "
                    "with log(metrics: dict, step: int)."
                )
        return trackers
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        return [WandbTracker(wandb.run)]
    return []


__all__ = [
    "TensorBoardTracker",
    "Tracker",
    "WandbTracker",
    "active_trackers",
    "chunk_metrics",
    "posterior_metrics",
]
