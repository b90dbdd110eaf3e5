"""Point sets: the finite collections of points that point-wise expressions live on."""

from __future__ import annotations

import itertools

import numpy as np

_ids = itertools.count()


def default_float() -> np.dtype:
    """JAX's default float: float32, or float64 when ``jax_enable_x64`` is on."""
    import jax.numpy as jnp

    return np.dtype(jnp.result_type(float))


class PointSet:
    """A fixed set of ``N`` points in ``d`` coordinates, shared by every variable drawn from it.

    Attributes:
        coords: ``(N, d)`` float32 array. Columns are the spatial coordinates followed by the
            time coordinate when the domain has a time axis.
        names: one name per column, e.g. ``("x", "t")``.
        tag: the domain tag the points came from (``"interior"``, ``"left"``, ...).
        label: a readable label for error messages, e.g. ``"line.interior"``.
        sampler: ``(n, rng) -> (n, d)`` new points of the same region (set by the domain
            that made the point set; ``None`` for user coordinates): adaptive resampling.
    """

    def __init__(self, coords, names, tag: str, label: str | None = None):
        coords = np.asarray(coords, dtype=default_float())
        if coords.ndim != 2:
            raise ValueError(
                f"PointSet '{label or tag}': coords must be (N, d), got {coords.shape}"
            )
        if len(names) != coords.shape[1]:
            raise ValueError(
                f"PointSet '{label or tag}': {len(names)} coordinate names for "
                f"{coords.shape[1]} columns"
            )
        self.coords = coords
        self.names = tuple(names)
        self.tag = tag
        self.label = label or tag
        self.id = next(_ids)
        self.data: dict[str, np.ndarray] = {}
        self.sampler = None

    @property
    def size(self) -> int:
        return int(self.coords.shape[0])

    @property
    def dim(self) -> int:
        return int(self.coords.shape[1])

    def attach(self, name: str, array) -> np.ndarray:
        """Attach a data array whose leading axis indexes this point set's points."""
        array = np.asarray(array)
        if array.ndim == 0 or array.shape[0] != self.size:
            raise ValueError(
                f"data '{name}' on point set '{self.label}': leading axis must be the "
                f"{self.size} points, got shape {array.shape}. Reshape the array to "
                f"({self.size}, ...)."
            )
        if array.ndim == 1:
            array = array[:, None]
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(default_float())
        self.data[name] = array
        return array

    def __repr__(self) -> str:
        return f"PointSet({self.label}, N={self.size}, coords={self.names})"
