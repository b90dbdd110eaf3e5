"""The record of a solve: losses per constraint, total loss and wall time."""

from __future__ import annotations

import numpy as np


class History:
    """Per-constraint and total losses against the global step index.

    Attributes:
        steps: ``(T,)`` step indices at which losses were recorded.
        losses: ``{constraint name: (T,)}``.
        total_loss: ``(T,)`` sum over constraints.
        wall_time: seconds spent in ``solve`` (all calls).
    """

    def __init__(self, names):
        self.names = list(names)
        self._steps: list[np.ndarray] = []
        self._losses: list[np.ndarray] = []
        self._metrics: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
        self.wall_time = 0.0

    def append(self, steps, losses) -> None:
        steps = np.asarray(steps).reshape(-1)
        losses = np.asarray(losses, dtype=np.float64).reshape(len(steps), len(self.names))
        self._steps.append(steps)
        self._losses.append(losses)

    def append_metric(self, name: str, steps, values) -> None:
        """Record another per-step quantity (e.g. ``"elbo:'a'"`` for a VI model)."""
        self._metrics.setdefault(name, []).append(
            (np.asarray(steps).reshape(-1), np.asarray(values, dtype=np.float64).reshape(-1))
        )

    def replace(self, steps, losses, metrics: dict, wall_time: float) -> None:
        """Set the whole record at once (a resumed checkpoint): ``steps (T,)``, ``losses
        (T, C)``, ``{name: (steps, values)}``."""
        self._steps, self._losses, self._metrics = [], [], {}
        if len(steps):
            self.append(steps, losses)
        for name, (s, v) in metrics.items():
            self.append_metric(name, s, v)
        self.wall_time = wall_time

    @property
    def metrics(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """``{name: (steps, values)}`` of the extra per-step quantities."""
        return {
            k: (np.concatenate([s for s, _ in v]), np.concatenate([x for _, x in v]))
            for k, v in self._metrics.items()
        }

    @property
    def elbo(self) -> dict[str, np.ndarray]:
        """``{model label: ELBO per step}`` of the VI models (the quantity VI maximises)."""
        return {
            k.split(":", 1)[1]: v for k, (_, v) in self.metrics.items() if k.startswith("elbo:")
        }

    @property
    def steps(self) -> np.ndarray:
        return np.concatenate(self._steps) if self._steps else np.zeros((0,), int)

    @property
    def losses(self) -> dict[str, np.ndarray]:
        arr = np.concatenate(self._losses) if self._losses else np.zeros((0, len(self.names)))
        return {n: arr[:, i] for i, n in enumerate(self.names)}

    @property
    def total_loss(self) -> np.ndarray:
        arr = np.concatenate(self._losses) if self._losses else np.zeros((0, len(self.names)))
        return arr.sum(axis=1)

    def __len__(self) -> int:
        return int(sum(len(s) for s in self._steps))

    def __repr__(self) -> str:
        last = self.total_loss[-1] if len(self) else float("nan")
        return (
            f"History({len(self)} records, constraints={self.names}, last total={last:.4g}, "
            f"wall_time={self.wall_time:.2f}s)"
        )

    def plot(self, ax=None, logy: bool = True):
        """Plot the losses (needs matplotlib)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:  # pragma: no cover - optional dependency
            raise ImportError("History.plot needs matplotlib: pip install matplotlib") from err
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        for name, values in self.losses.items():
            ax.plot(self.steps, values, label=name)
        ax.plot(self.steps, self.total_loss, "k", lw=1.5, label="total")
        if logy and np.all(self.total_loss > 0):
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
        return ax
