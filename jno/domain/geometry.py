"""Geometries: the pure-numpy point clouds behind a :class:`~jno.domain.Domain`.

A geometry knows its spatial dimension, the grid points of each of its tags and how to draw
points uniformly from the region a tag stands for. It knows nothing of time axes, point sets or
random keys: :class:`~jno.domain.Domain` adds those.

Conventions shared by every geometry:

* ``"interior"`` holds *every* node of the discretisation of the closed region, boundary nodes
  included (``line(mesh_size=0.01)`` has 101 interior nodes, ``0`` and ``1`` among them);
* ``"boundary"`` holds the nodes on the boundary, each once;
* a tag whose region is a finite set of points (the two ends of a line, sensor locations) is
  sampled uniformly from that set, with replacement.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

# Readable aliases of the faces of a 1-, 2- or 3-D box: axis -> (name at min, name at max).
_FACE_ALIASES = {0: ("left", "right"), 1: ("bottom", "top"), 2: ("front", "back")}


def sample_from_set(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of ``points`` drawn uniformly with replacement."""
    return points[rng.integers(0, points.shape[0], size=n)]


def _check_mesh_size(mesh_size: float) -> float:
    mesh_size = float(mesh_size)
    if not mesh_size > 0:
        raise ValueError(f"mesh_size must be positive, got {mesh_size}")
    return mesh_size


class Geometry:
    """Base class: a spatial region with named point tags.

    Subclasses set ``label`` and ``dim`` and fill ``self._tags``; those whose tags stand for
    continuous regions override :meth:`sample`.
    """

    label: str = "geometry"
    dim: int

    def __init__(self) -> None:
        self._tags: dict[str, np.ndarray] = {}

    @property
    def tags(self) -> tuple[str, ...]:
        """The tag names, in definition order."""
        return tuple(self._tags)

    def points(self, tag: str) -> np.ndarray:
        """The ``(N, dim)`` grid points of ``tag``."""
        return self._tags[tag]

    def sample(self, tag: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points drawn uniformly from the region of ``tag``, shape ``(n, dim)``.

        The default treats the tag as the finite set of its points.
        """
        return sample_from_set(self._tags[tag], n, rng)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v.shape[0]}" for k, v in self._tags.items())
        return f"{type(self).__name__}({self.label}, dim={self.dim}, {counts})"


class Box(Geometry):
    """An axis-aligned box ``[lo_0, hi_0] x ... x [lo_{d-1}, hi_{d-1}]`` in any dimension.

    Each axis carries ``round((hi - lo) / mesh_size) + 1`` equally spaced nodes (the spacing is
    adjusted so the ends are nodes). Tags:

    * ``"interior"``: the full tensor grid (boundary nodes included), with the first axis
      varying slowest;
    * ``"boundary"``: the grid nodes on any face, each once;
    * ``"x{i}_min"`` / ``"x{i}_max"``: the grid nodes on the face where coordinate ``i`` is
      smallest / largest; for the first three axes also ``"left"``/``"right"`` (x),
      ``"bottom"``/``"top"`` (y) and ``"front"``/``"back"`` (z).

    Faces share their edge and corner nodes.
    """

    def __init__(
        self,
        mesh_size: float,
        ranges: Sequence[tuple[float, float]],
        label: str = "box",
    ) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        if not ranges:
            raise ValueError("a box needs at least one (lo, hi) range")
        for i, (lo, hi) in enumerate(ranges):
            if not hi > lo:
                raise ValueError(f"range {i} of {label} must have lo < hi, got ({lo}, {hi})")
        self.label = label
        self.dim = len(ranges)
        self.mesh_size = mesh_size
        self.lo = np.array([lo for lo, _ in ranges])
        self.hi = np.array([hi for _, hi in ranges])
        axes = [
            np.linspace(lo, hi, max(int(round((hi - lo) / mesh_size)), 1) + 1) for lo, hi in ranges
        ]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, self.dim)
        on_min = grid == self.lo
        on_max = grid == self.hi
        self._tags["interior"] = grid
        self._tags["boundary"] = grid[np.any(on_min | on_max, axis=1)]
        self._faces: dict[str, tuple[int, int]] = {}  # tag -> (axis, 0 for min / 1 for max)
        for i in range(self.dim):
            names = [(f"x{i}_min", 0), (f"x{i}_max", 1)]
            if i in _FACE_ALIASES:
                names += [(_FACE_ALIASES[i][0], 0), (_FACE_ALIASES[i][1], 1)]
            for name, side in names:
                self._faces[name] = (i, side)
                self._tags[name] = grid[(on_max if side else on_min)[:, i]]

    def _face_area(self, axis: int) -> float:
        """(d-1)-dimensional measure of a face normal to ``axis`` (1 for the ends of a line)."""
        widths = np.delete(self.hi - self.lo, axis)
        return float(np.prod(widths))

    def _sample_face(self, axis: int, side: int, n: int, rng: np.random.Generator) -> np.ndarray:
        pts = rng.uniform(self.lo, self.hi, size=(n, self.dim))
        pts[:, axis] = self.hi[axis] if side else self.lo[axis]
        return pts

    def sample(self, tag: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform in the box volume, on its surface (faces weighted by area) or on one face."""
        if tag == "interior":
            return rng.uniform(self.lo, self.hi, size=(n, self.dim))
        if tag in self._faces:
            return self._sample_face(*self._faces[tag], n, rng)
        # "boundary": pick a face with probability proportional to its area, then a point on it.
        areas = np.repeat([self._face_area(i) for i in range(self.dim)], 2)
        face = rng.choice(2 * self.dim, size=n, p=areas / areas.sum())
        pts = rng.uniform(self.lo, self.hi, size=(n, self.dim))
        axis, side = face // 2, face % 2
        pts[np.arange(n), axis] = np.where(side == 1, self.hi[axis], self.lo[axis])
        return pts


class Disk(Geometry):
    """A disk of radius ``radius`` about ``center`` in 2-D.

    Tags:

    * ``"boundary"``: ``max(3, round(2 pi radius / mesh_size))`` equally spaced points on the
      circle, the first at angle 0;
    * ``"interior"``: the nodes of a square grid of spacing ``mesh_size`` (aligned with the
      center) that lie strictly inside the circle, followed by the boundary points.
    """

    def __init__(
        self, mesh_size: float, center: Sequence[float] = (0.0, 0.0), radius: float = 1.0
    ) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        self.center = np.asarray(center, dtype=np.float64)
        self.radius = float(radius)
        if self.center.shape != (2,):
            raise ValueError(f"disk center must be 2 numbers, got {center!r}")
        if not self.radius > 0:
            raise ValueError(f"disk radius must be positive, got {radius}")
        self.label = "disk"
        self.dim = 2
        self.mesh_size = mesh_size
        k = int(math.floor(self.radius / mesh_size))
        offsets = mesh_size * np.arange(-k, k + 1)
        grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), axis=-1).reshape(-1, 2)
        inside = grid[np.linalg.norm(grid, axis=1) < self.radius * (1 - 1e-9)] + self.center
        n_circle = max(3, int(round(2 * math.pi * self.radius / mesh_size)))
        angles = 2 * math.pi * np.arange(n_circle) / n_circle
        circle = self._on_circle(angles)
        self._tags["interior"] = np.concatenate([inside, circle])
        self._tags["boundary"] = circle

    def _on_circle(self, angles: np.ndarray) -> np.ndarray:
        return self.center + self.radius * np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    def sample(self, tag: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform in the disk area (``"interior"``) or on the circle (``"boundary"``)."""
        angles = rng.uniform(0.0, 2 * math.pi, size=n)
        if tag == "boundary":
            return self._on_circle(angles)
        r = self.radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))
        return self.center + r[:, None] * np.stack([np.cos(angles), np.sin(angles)], axis=-1)


class Points(Geometry):
    """A finite set of locations (e.g. sensors), all under the tag ``"interior"``.

    Sampling draws from the given locations uniformly with replacement.
    """

    def __init__(self, array) -> None:
        super().__init__()
        array = np.asarray(array, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[0] == 0:
            raise ValueError(
                f"points(array) needs an (N, d) or (N,) array with N > 0, got shape {array.shape}"
            )
        self.label = "points"
        self.dim = int(array.shape[1])
        self._tags["interior"] = array


def line(mesh_size: float, x_range: tuple[float, float] = (0.0, 1.0)) -> Box:
    """The interval ``x_range`` with nodes ``mesh_size`` apart.

    Tags: ``"interior"`` (every node, both ends included), ``"boundary"`` (the two ends),
    ``"left"`` and ``"right"``.
    """
    return Box(mesh_size, [x_range], label="line")


def rect(
    mesh_size: float,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
) -> Box:
    """The rectangle ``x_range x y_range`` with a square grid of spacing ``mesh_size``.

    Tags: ``"interior"`` (the full grid, edges included), ``"boundary"`` (the edge nodes, each
    once), ``"left"``, ``"right"``, ``"bottom"``, ``"top"`` (and ``"x0_min"``... as for
    :class:`Box`).
    """
    return Box(mesh_size, [x_range, y_range], label="rect")


def box(mesh_size: float, ranges: Sequence[tuple[float, float]]) -> Box:
    """An axis-aligned box in any dimension; see :class:`Box` for the tags."""
    return Box(mesh_size, ranges, label="box")


def disk(mesh_size: float, center: Sequence[float] = (0.0, 0.0), radius: float = 1.0) -> Disk:
    """A 2-D disk; see :class:`Disk` for the tags."""
    return Disk(mesh_size, center, radius)


def points(array) -> Points:
    """A finite set of locations, shape ``(N, d)`` (or ``(N,)`` for 1-D), tag ``"interior"``."""
    return Points(array)
