"""Geometries: the pure-numpy point clouds behind a :class:`~jno.domain.Domain`.

A geometry knows its spatial dimension, the grid points of each of its tags, the outward unit
normals on its boundary tags, an inside test (a signed distance) and how to draw points
uniformly from the region a tag stands for. It knows nothing of time axes, point sets or random
keys: :class:`~jno.domain.Domain` adds those.

Conventions shared by every geometry:

* ``"interior"`` holds *every* node of the discretisation of the closed region, boundary nodes
  included (``line(mesh_size=0.01)`` has 101 interior nodes, ``0`` and ``1`` among them);
* ``"boundary"`` holds the nodes on the boundary, each once; every boundary tag (``"boundary"``,
  ``"left"``, ``"edge0"``, ``"inner"``, ...) carries one outward unit normal per node. A node
  where two faces meet (a corner) has, in ``"boundary"``, the normalised sum of the normals of
  the faces it lies on, and, in each face tag, that face's normal;
* a tag whose region is a finite set of points (the two ends of a line, sensor locations) is
  sampled uniformly from that set, with replacement.

Constructive solid geometry (:func:`union`, :func:`intersection`, :func:`difference`, or the
operators ``a | b``, ``a & b``, ``a - b``) lives in :mod:`jno.domain.csg`, which fills in
:data:`SET_OPERATIONS`, the table the operators call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# Readable aliases of the faces of a 1-, 2- or 3-D box: axis -> (name at min, name at max).
_FACE_ALIASES = {0: ("left", "right"), 1: ("bottom", "top"), 2: ("front", "back")}

# Rejection sampling gives up after this many rounds (the region is then ~empty).
_MAX_ROUNDS = 200
# Rows of points per chunk in the vectorised polygon distance (bounds memory use).
_CHUNK = 1 << 15

DrawFn = Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]]
KeepFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# The operators ``a | b``, ``a & b``, ``a - b`` of every geometry: ``{"union": union, ...}``,
# filled in by :mod:`jno.domain.csg` (imported with :mod:`jno.domain`), which builds on this
# module; so this module does not import it back.
SET_OPERATIONS: dict[str, Callable[[Geometry, Geometry], Geometry]] = {}


def sample_from_set(points: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` rows of ``points`` drawn uniformly with replacement."""
    return points[rng.integers(0, points.shape[0], size=n)]


# ---------------------------------------------------------------------------- validation
def _check_mesh_size(mesh_size: float) -> float:
    try:
        mesh_size = float(mesh_size)
    except (TypeError, ValueError):
        raise ValueError(f"mesh_size must be a positive number, got {mesh_size!r}") from None
    if not (mesh_size > 0 and math.isfinite(mesh_size)):
        raise ValueError(
            f"mesh_size must be a positive finite number (the node spacing), got {mesh_size}"
        )
    return mesh_size


def _check_point(value, dim: int, what: str) -> np.ndarray:
    """``value`` as a finite float array of shape ``(dim,)``, or a ValueError naming ``what``."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be {dim} numbers, got {value!r}") from None
    if array.shape != (dim,):
        raise ValueError(f"{what} must be {dim} numbers, got {value!r}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{what} must be finite (no NaN or inf), got {value!r}")
    return array


def _check_radius(radius: float, what: str) -> float:
    try:
        radius = float(radius)
    except (TypeError, ValueError):
        raise ValueError(f"{what} radius must be a positive number, got {radius!r}") from None
    if not (radius > 0 and math.isfinite(radius)):
        raise ValueError(f"{what} radius must be a positive finite number, got {radius}")
    return radius


def _unit(v: np.ndarray) -> np.ndarray:
    """Rows of ``v`` scaled to unit length."""
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------- faces
@dataclass(frozen=True)
class Face:
    """One smooth piece of a boundary, as used for sampling.

    Attributes:
        tags: the tags the piece belongs to besides ``"boundary"`` (e.g. ``("x0_min",
            "left")``, ``("edge2",)`` or ``()``).
        measure: its length or area (before ``keep``: an upper bound for CSG pieces).
        draw: ``draw(n, rng) -> (points (n, d), outward unit normals (n, d))``, uniform in
            length or area.
        keep: ``keep(points, normals) -> bool mask (n,)``, the part of the piece that is on the
            boundary (``None``: all of it). Sampling draws from ``draw`` and rejects the rest.
    """

    tags: tuple[str, ...]
    measure: float
    draw: DrawFn
    keep: KeepFn | None = None


def sample_faces(
    faces: Sequence[Face], n: int, rng: np.random.Generator, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform on the union of ``faces`` (by length/area), with their normals.

    Faces are picked with probability proportional to their measure and drawn uniformly;
    points failing a face's ``keep`` are rejected, so the result is uniform on the kept part.
    """
    weights = np.array([f.measure for f in faces], dtype=np.float64)
    probs = weights / weights.sum()
    pts_out: list[np.ndarray] = []
    nrm_out: list[np.ndarray] = []
    got, drawn, kept = 0, 0, 0
    for _ in range(_MAX_ROUNDS):
        rate = max(kept / drawn, 1e-3) if drawn else 1.0
        m = int(min(max(math.ceil(1.2 * (n - got) / rate) + 16, 64), 1 << 20))
        counts = rng.multinomial(m, probs)
        batch_p, batch_n = [], []
        for face, c in zip(faces, counts):
            if c == 0:
                continue
            p, nrm = face.draw(int(c), rng)
            if face.keep is not None:
                mask = face.keep(p, nrm)
                p, nrm = p[mask], nrm[mask]
            batch_p.append(p)
            batch_n.append(nrm)
        p = np.concatenate(batch_p)
        nrm = np.concatenate(batch_n)
        order = rng.permutation(p.shape[0])  # faces were drawn in blocks: restore exchangeability
        pts_out.append(p[order])
        nrm_out.append(nrm[order])
        drawn += m
        kept += p.shape[0]
        got += p.shape[0]
        if got >= n:
            return np.concatenate(pts_out)[:n], np.concatenate(nrm_out)[:n]
    raise ValueError(
        f"could not draw {n} points on {what}: almost every candidate was rejected, so this "
        "part of the boundary has (nearly) zero length or area"
    )


# ---------------------------------------------------------------------------- base class
class Geometry:
    """Base class: a spatial region with named point tags.

    Subclasses set ``label`` and ``dim``, fill ``self._tags`` (grid points per tag),
    ``self._normals`` (outward unit normals per boundary tag) and ``self.faces`` (the boundary
    pieces, for sampling), and implement :meth:`sdf` and :attr:`bounds` to take part in
    constructive solid geometry (``a | b``, ``a & b``, ``a - b``).
    """

    label: str = "geometry"
    dim: int

    def __init__(self) -> None:
        self._tags: dict[str, np.ndarray] = {}
        self._normals: dict[str, np.ndarray] = {}
        self.faces: list[Face] = []

    @property
    def tags(self) -> tuple[str, ...]:
        """The tag names, in definition order."""
        return tuple(self._tags)

    @property
    def boundary_tags(self) -> tuple[str, ...]:
        """The tags that carry outward normals (``"boundary"`` and its parts)."""
        return tuple(t for t in self._tags if t in self._normals)

    def points(self, tag: str) -> np.ndarray:
        """The ``(N, dim)`` grid points of ``tag``."""
        return self._tags[tag]

    def has_normals(self, tag: str) -> bool:
        """Whether ``tag`` is a boundary tag with outward normals."""
        return tag in self._normals

    def normals(self, tag: str) -> np.ndarray:
        """The ``(N, dim)`` outward unit normals at the grid points of boundary tag ``tag``."""
        if tag not in self._normals:
            raise ValueError(
                f"tag {tag!r} of this {self.label} has no outward normals; normals exist on the "
                f"boundary tags {', '.join(repr(t) for t in self.boundary_tags) or '(none)'}"
            )
        return self._normals[tag]

    # -- inside test -------------------------------------------------------------------
    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """Signed distance (or a function with the same sign) of ``(N, dim)`` points, shape
        ``(N,)``: negative inside, zero on the boundary, positive outside."""
        raise TypeError(
            f"a {type(self).__name__} geometry has no inside test, so it cannot be combined "
            "with union/intersection/difference; use rect, box, disk, polygon or ball"
        )

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``(lo, hi)`` corners of an axis-aligned box containing the region."""
        pts = np.concatenate(list(self._tags.values()))
        return pts.min(axis=0), pts.max(axis=0)

    @property
    def tol(self) -> float:
        """Distance below which a point counts as on the boundary (1e-9 x the diameter)."""
        lo, hi = self.bounds
        return 1e-9 * max(float(np.linalg.norm(hi - lo)), 1e-300)

    def contains(self, pts) -> np.ndarray:
        """Whether each of the ``(N, dim)`` points lies in the closed region, shape ``(N,)``."""
        pts = np.asarray(pts, dtype=np.float64).reshape(-1, self.dim)
        return self.sdf(pts) <= self.tol

    # -- sampling ----------------------------------------------------------------------
    def sample(self, tag: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points drawn uniformly from the region of ``tag``, shape ``(n, dim)``."""
        return self.sample_with_normals(tag, n, rng)[0]

    def sample_with_normals(
        self, tag: str, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """``n`` points uniform in the region of ``tag`` and their outward unit normals.

        The normals are ``None`` for a tag without normals (``"interior"``). The default draws
        ``"interior"`` by rejection from :attr:`bounds`, boundary tags from :attr:`faces`
        (by rejection where pieces are cut) and any other tag from its finite point set.
        """
        if tag == "interior" and self.faces:
            return self._sample_inside(n, rng), None
        faces = self._faces_of(tag)
        if faces:
            return sample_faces(faces, n, rng, f"tag {tag!r} of {self.label}")
        idx = rng.integers(0, self._tags[tag].shape[0], size=n)
        normals = self._normals.get(tag)
        return self._tags[tag][idx], None if normals is None else normals[idx]

    def _faces_of(self, tag: str) -> list[Face]:
        if tag == "boundary":
            return list(self.faces)
        return [f for f in self.faces if tag in f.tags]

    def _sample_inside(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Uniform in the region by rejection from the bounding box."""
        lo, hi = self.bounds
        out: list[np.ndarray] = []
        got, drawn = 0, 0
        for _ in range(_MAX_ROUNDS):
            rate = max(got / drawn, 1e-3) if drawn else 1.0
            m = int(min(max(math.ceil(1.2 * (n - got) / rate) + 16, 64), 1 << 20))
            p = rng.uniform(lo, hi, size=(m, self.dim))
            p = p[self.sdf(p) <= 0.0]
            out.append(p)
            drawn += m
            got += p.shape[0]
            if got >= n:
                return np.concatenate(out)[:n]
        raise ValueError(f"could not draw {n} interior points of {self.label}: it has ~no area")

    # -- constructive solid geometry ----------------------------------------------------
    def __or__(self, other: Geometry) -> Geometry:
        return SET_OPERATIONS["union"](self, other)

    def __and__(self, other: Geometry) -> Geometry:
        return SET_OPERATIONS["intersection"](self, other)

    def __sub__(self, other: Geometry) -> Geometry:
        return SET_OPERATIONS["difference"](self, other)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v.shape[0]}" for k, v in self._tags.items())
        return f"{type(self).__name__}({self.label}, dim={self.dim}, {counts})"


# ---------------------------------------------------------------------------- box
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

    Faces share their edge and corner nodes. Normals: ``-e_i`` on ``"x{i}_min"``, ``+e_i`` on
    ``"x{i}_max"``; in ``"boundary"`` an edge or corner node has the normalised sum of the
    normals of its faces (``(-1, -1)/√2`` at the lower-left corner of a rectangle).
    """

    def __init__(
        self,
        mesh_size: float,
        ranges: Sequence[tuple[float, float]],
        label: str = "box",
    ) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        try:
            ranges = [(float(lo), float(hi)) for lo, hi in ranges]
        except (TypeError, ValueError):
            raise ValueError(
                f"ranges of {label} must be (lo, hi) pairs of numbers, got {ranges!r}"
            ) from None
        if not ranges:
            raise ValueError("a box needs at least one (lo, hi) range")
        for i, (lo, hi) in enumerate(ranges):
            if not (math.isfinite(lo) and math.isfinite(hi)):
                raise ValueError(f"range {i} of {label} must be finite, got ({lo}, {hi})")
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
        on_face = np.any(on_min | on_max, axis=1)
        self._tags["interior"] = grid
        self._tags["boundary"] = grid[on_face]
        signed = on_max.astype(np.float64) - on_min.astype(np.float64)
        self._normals["boundary"] = _unit(signed[on_face])
        self._face_of: dict[str, tuple[int, int]] = {}  # tag -> (axis, 0 for min / 1 for max)
        for i in range(self.dim):
            names = [(f"x{i}_min", 0), (f"x{i}_max", 1)]
            if i in _FACE_ALIASES:
                names += [(_FACE_ALIASES[i][0], 0), (_FACE_ALIASES[i][1], 1)]
            for name, side in names:
                normal = np.zeros(self.dim)
                normal[i] = 1.0 if side else -1.0
                self._face_of[name] = (i, side)
                self._tags[name] = grid[(on_max if side else on_min)[:, i]]
                self._normals[name] = np.tile(normal, (self._tags[name].shape[0], 1))
            for side in (0, 1):
                normal = np.zeros(self.dim)
                normal[i] = 1.0 if side else -1.0
                tags = tuple(name for name, s in names if s == side)
                self.faces.append(
                    Face(tags, self._face_area(i), self._face_drawer(i, side, normal))
                )

    def _face_drawer(self, axis: int, side: int, normal: np.ndarray) -> DrawFn:
        def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            return self._sample_face(axis, side, n, rng), np.tile(normal, (n, 1))

        return draw

    def _face_area(self, axis: int) -> float:
        """(d-1)-dimensional measure of a face normal to ``axis`` (1 for the ends of a line)."""
        widths = np.delete(self.hi - self.lo, axis)
        return float(np.prod(widths))

    def _sample_face(self, axis: int, side: int, n: int, rng: np.random.Generator) -> np.ndarray:
        pts = rng.uniform(self.lo, self.hi, size=(n, self.dim))
        pts[:, axis] = self.hi[axis] if side else self.lo[axis]
        return pts

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """Exact signed distance to the box surface, shape ``(N,)``."""
        center, half = (self.lo + self.hi) / 2, (self.hi - self.lo) / 2
        q = np.abs(np.asarray(pts, dtype=np.float64) - center) - half
        outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
        return outside + np.minimum(q.max(axis=1), 0.0)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lo.copy(), self.hi.copy()

    def sample_with_normals(
        self, tag: str, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Uniform in the box volume, on its surface (faces weighted by area) or on one face."""
        if tag == "interior":
            return rng.uniform(self.lo, self.hi, size=(n, self.dim)), None
        if tag in self._face_of:
            axis, side = self._face_of[tag]
            return self._sample_face(axis, side, n, rng), np.tile(self._normals[tag][0], (n, 1))
        # "boundary": pick a face with probability proportional to its area, then a point on it.
        areas = np.repeat([self._face_area(i) for i in range(self.dim)], 2)
        face = rng.choice(2 * self.dim, size=n, p=areas / areas.sum())
        pts = rng.uniform(self.lo, self.hi, size=(n, self.dim))
        axis, side = face // 2, face % 2
        pts[np.arange(n), axis] = np.where(side == 1, self.hi[axis], self.lo[axis])
        normals = np.zeros((n, self.dim))
        normals[np.arange(n), axis] = np.where(side == 1, 1.0, -1.0)
        return pts, normals


# ---------------------------------------------------------------------------- disk
class Disk(Geometry):
    """A disk of radius ``radius`` about ``center`` in 2-D.

    Tags:

    * ``"boundary"``: ``max(3, round(2 pi radius / mesh_size))`` equally spaced points on the
      circle, the first at angle 0; normals ``(p - center) / radius``;
    * ``"interior"``: the nodes of a square grid of spacing ``mesh_size`` (aligned with the
      center) that lie strictly inside the circle, followed by the boundary points.
    """

    def __init__(
        self, mesh_size: float, center: Sequence[float] = (0.0, 0.0), radius: float = 1.0
    ) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        self.center = _check_point(center, 2, "disk center")
        self.radius = _check_radius(radius, "disk")
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
        self._normals["boundary"] = self._unit_circle(angles)
        self.faces.append(Face((), 2 * math.pi * self.radius, self._draw_circle))

    @staticmethod
    def _unit_circle(angles: np.ndarray) -> np.ndarray:
        return np.stack([np.cos(angles), np.sin(angles)], axis=-1)

    def _on_circle(self, angles: np.ndarray) -> np.ndarray:
        return self.center + self.radius * self._unit_circle(angles)

    def _draw_circle(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        angles = rng.uniform(0.0, 2 * math.pi, size=n)
        return self._on_circle(angles), self._unit_circle(angles)

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """``|p - center| - radius``, shape ``(N,)``."""
        return np.linalg.norm(np.asarray(pts, dtype=np.float64) - self.center, axis=1) - self.radius

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.center - self.radius, self.center + self.radius

    def sample_with_normals(
        self, tag: str, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Uniform in the disk area (``"interior"``) or on the circle (``"boundary"``)."""
        angles = rng.uniform(0.0, 2 * math.pi, size=n)
        if tag == "boundary":
            return self._on_circle(angles), self._unit_circle(angles)
        r = self.radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))
        return self.center + r[:, None] * self._unit_circle(angles), None


# ---------------------------------------------------------------------------- ball
class Ball(Geometry):
    """A ball of radius ``radius`` about ``center`` in 3-D.

    Tags:

    * ``"boundary"``: ``max(4, round(4 pi radius² / mesh_size²))`` points on the sphere, spread
      evenly by a Fibonacci lattice; normals ``(p - center) / radius``;
    * ``"interior"``: the nodes of a cubic grid of spacing ``mesh_size`` (aligned with the
      center) strictly inside the sphere, followed by the boundary points.
    """

    def __init__(
        self,
        mesh_size: float,
        center: Sequence[float] = (0.0, 0.0, 0.0),
        radius: float = 1.0,
    ) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        self.center = _check_point(center, 3, "ball center")
        self.radius = _check_radius(radius, "ball")
        self.label = "ball"
        self.dim = 3
        self.mesh_size = mesh_size
        k = int(math.floor(self.radius / mesh_size))
        offsets = mesh_size * np.arange(-k, k + 1)
        grid = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1)
        grid = grid.reshape(-1, 3)
        inside = grid[np.linalg.norm(grid, axis=1) < self.radius * (1 - 1e-9)] + self.center
        n_sphere = max(4, int(round(4 * math.pi * self.radius**2 / mesh_size**2)))
        i = np.arange(n_sphere) + 0.5
        z = 1.0 - 2.0 * i / n_sphere
        phi = math.pi * (3.0 - math.sqrt(5.0)) * np.arange(n_sphere)  # golden angle
        rho = np.sqrt(1.0 - z**2)
        unit = np.stack([rho * np.cos(phi), rho * np.sin(phi), z], axis=-1)
        sphere = self.center + self.radius * unit
        self._tags["interior"] = np.concatenate([inside, sphere])
        self._tags["boundary"] = sphere
        self._normals["boundary"] = unit
        self.faces.append(Face((), 4 * math.pi * self.radius**2, self._draw_sphere))

    def _draw_sphere(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        unit = _unit(rng.normal(size=(n, 3)))
        return self.center + self.radius * unit, unit

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """``|p - center| - radius``, shape ``(N,)``."""
        return np.linalg.norm(np.asarray(pts, dtype=np.float64) - self.center, axis=1) - self.radius

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.center - self.radius, self.center + self.radius

    def sample_with_normals(
        self, tag: str, n: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Uniform in the ball volume (``"interior"``) or on the sphere (``"boundary"``)."""
        if tag == "boundary":
            return self._draw_sphere(n, rng)
        unit = _unit(rng.normal(size=(n, 3)))
        r = self.radius * np.cbrt(rng.uniform(0.0, 1.0, size=n))
        return self.center + r[:, None] * unit, None


# ---------------------------------------------------------------------------- polygon
def _cross(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _segments_touch(p, q, r, s, eps: float) -> np.ndarray:
    """Whether closed segments ``pq`` and ``rs`` (rows of ``(K, 2)`` arrays) share a point."""
    d1, d2 = _cross(q - p, r - p), _cross(q - p, s - p)
    d3, d4 = _cross(s - r, p - r), _cross(s - r, q - r)
    collinear = (np.abs(d1) <= eps) & (np.abs(d2) <= eps)
    crossing = (d1 * d2 <= eps**2) & (d3 * d4 <= eps**2) & ~collinear
    # Collinear segments touch when their projections on pq overlap.
    u = q - p
    uu = np.einsum("ij,ij->i", u, u)
    tr = np.einsum("ij,ij->i", r - p, u) / uu
    ts = np.einsum("ij,ij->i", s - p, u) / uu
    overlap = (np.maximum(tr, ts) >= 0.0) & (np.minimum(tr, ts) <= 1.0)
    return crossing | (collinear & overlap)


class Polygon(Geometry):
    """A simple (non-self-intersecting) polygon in 2-D, given by its vertices in order.

    Either orientation works; vertex ``i`` and ``i + 1`` (cyclically) span edge ``i``. Tags:

    * ``"boundary"``: nodes along every edge, ``max(1, round(L_i / mesh_size))`` segments per
      edge, starting at each vertex, each node once; a vertex has the normalised sum of its two
      edges' normals, every other node its edge's normal;
    * ``"edge{i}"``: the nodes of edge ``i``, both end vertices included, with edge ``i``'s
      outward normal (the edge direction turned by 90°, away from the inside);
    * ``"interior"``: the nodes of a square grid of spacing ``mesh_size`` (aligned with the
      lower-left corner of the bounding box) strictly inside, followed by the boundary nodes.

    The inside test is the even-odd crossing rule, with points within ``tol`` of an edge
    counted as on the boundary; the signed distance is exact.
    """

    def __init__(self, vertices, mesh_size: float) -> None:
        super().__init__()
        mesh_size = _check_mesh_size(mesh_size)
        try:
            v = np.asarray(vertices, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"polygon vertices must be an (M, 2) array of numbers, got {vertices!r}"
            ) from None
        if v.ndim != 2 or v.shape[1] != 2:
            raise ValueError(
                f"polygon vertices must have shape (M, 2) (one (x, y) row per vertex), got "
                f"shape {v.shape}"
            )
        if v.shape[0] < 3:
            raise ValueError(
                f"polygon vertices: a polygon needs at least 3 vertices, got {v.shape[0]}"
            )
        if not np.all(np.isfinite(v)):
            raise ValueError("polygon vertices must be finite (no NaN or inf)")
        m = v.shape[0]
        scale = float(np.max(v.max(axis=0) - v.min(axis=0)))
        d = np.roll(v, -1, axis=0) - v
        lengths = np.linalg.norm(d, axis=1)
        short = np.nonzero(lengths <= 1e-12 * max(scale, 1e-300))[0]
        if short.size:
            i = int(short[0])
            raise ValueError(
                f"polygon vertices {i} and {(i + 1) % m} coincide; remove the duplicate (do not "
                "repeat the first vertex at the end)"
            )
        self._check_crossings(v, d, scale)
        signed_area = 0.5 * float(np.sum(_cross(v, np.roll(v, -1, axis=0))))
        if abs(signed_area) <= 1e-12 * scale**2:
            raise ValueError("polygon vertices are collinear: the polygon has zero area")
        self._check_folds(d, scale)
        self.vertices = v
        self.label = "polygon"
        self.dim = 2
        self.mesh_size = mesh_size
        self.area = abs(signed_area)
        self._d = d
        self._len2 = lengths**2
        orient = 1.0 if signed_area > 0 else -1.0  # +1: counter-clockwise
        edge_normals = orient * np.stack([d[:, 1], -d[:, 0]], axis=1) / lengths[:, None]
        self.edge_normals = edge_normals

        boundary, boundary_n = [], []
        edge_tags: dict[str, np.ndarray] = {}
        for i in range(m):
            segments = max(1, int(round(lengths[i] / mesh_size)))
            t = np.arange(segments + 1) / segments
            nodes = v[i] + t[:, None] * d[i]
            nodes[-1] = v[(i + 1) % m]  # the end vertex exactly
            edge_tags[f"edge{i}"] = nodes
            boundary.append(nodes[:-1])
            normals = np.tile(edge_normals[i], (segments, 1))
            normals[0] = _unit(edge_normals[i] + edge_normals[i - 1])
            boundary_n.append(normals)
        boundary_pts = np.concatenate(boundary)
        lo, hi = v.min(axis=0), v.max(axis=0)
        counts = np.floor((hi - lo) / mesh_size + 1e-9).astype(int) + 1
        axes = [lo[j] + mesh_size * np.arange(counts[j]) for j in range(2)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 2)
        inside = grid[self.sdf(grid) < -self.tol]
        self._tags["interior"] = np.concatenate([inside, boundary_pts])
        self._tags["boundary"] = boundary_pts
        self._normals["boundary"] = np.concatenate(boundary_n)
        for i in range(m):
            name = f"edge{i}"
            self._tags[name] = edge_tags[name]
            self._normals[name] = np.tile(edge_normals[i], (edge_tags[name].shape[0], 1))
            self.faces.append(Face((name,), float(lengths[i]), self._edge_drawer(i)))

    @staticmethod
    def _check_folds(d: np.ndarray, scale: float) -> None:
        """Adjacent edges may only share their common vertex: reject a fold back onto itself."""
        m = d.shape[0]
        nxt = np.roll(d, -1, axis=0)
        folds = (np.abs(_cross(d, nxt)) <= 1e-12 * scale**2) & (np.einsum("ij,ij->i", d, nxt) < 0)
        if folds.any():
            i = int(np.nonzero(folds)[0][0])
            raise ValueError(
                f"polygon vertices: edges {i} and {(i + 1) % m} fold back onto each other at "
                f"vertex {(i + 1) % m}; the polygon must be simple (not self-intersecting)"
            )

    @staticmethod
    def _check_crossings(v: np.ndarray, d: np.ndarray, scale: float) -> None:
        """Non-adjacent edges must not touch."""
        m = v.shape[0]
        ii, jj = np.triu_indices(m, k=2)
        keep = ~((ii == 0) & (jj == m - 1))  # edges 0 and m-1 are adjacent
        ii, jj = ii[keep], jj[keep]
        if ii.size == 0:
            return
        hit = _segments_touch(v[ii], v[ii] + d[ii], v[jj], v[jj] + d[jj], 1e-12 * scale**2)
        if hit.any():
            k = int(np.nonzero(hit)[0][0])
            raise ValueError(
                f"polygon vertices: edges {ii[k]} and {jj[k]} intersect, so the polygon is "
                "self-intersecting; list the vertices in order around the boundary"
            )

    def _edge_drawer(self, i: int) -> DrawFn:
        def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
            t = rng.uniform(0.0, 1.0, size=n)
            return self.vertices[i] + t[:, None] * self._d[i], np.tile(self.edge_normals[i], (n, 1))

        return draw

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """Exact signed distance to the polygon's edges (negative inside), shape ``(N,)``."""
        pts = np.asarray(pts, dtype=np.float64)
        out = np.empty(pts.shape[0])
        a, d = self.vertices, self._d
        b = a + d
        for s in range(0, pts.shape[0], _CHUNK):
            p = pts[s : s + _CHUNK]
            w = p[:, None, :] - a[None]
            t = np.clip(np.einsum("nmk,mk->nm", w, d) / self._len2, 0.0, 1.0)
            dist = np.linalg.norm(w - t[..., None] * d[None], axis=2).min(axis=1)
            py = p[:, 1:2]
            straddle = (a[None, :, 1] > py) != (b[None, :, 1] > py)
            with np.errstate(divide="ignore", invalid="ignore"):
                x_cross = a[None, :, 0] + (py - a[None, :, 1]) * d[None, :, 0] / d[None, :, 1]
            crossings = np.sum(straddle & (p[:, 0:1] < x_cross), axis=1)
            out[s : s + _CHUNK] = np.where(crossings % 2 == 1, -dist, dist)
        return out

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self.vertices.min(axis=0), self.vertices.max(axis=0)


# ---------------------------------------------------------------------------- points
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
        bad = np.nonzero(~np.isfinite(array).all(axis=1))[0]
        if bad.size:
            shown = ", ".join(str(int(r)) for r in bad[:5]) + (", ..." if bad.size > 5 else "")
            raise ValueError(
                f"points(array): {bad.size} location(s) have NaN or infinite coordinates (rows "
                f"{shown}); drop those rows (and the matching data rows) before points(...)"
            )
        self.label = "points"
        self.dim = int(array.shape[1])
        self._tags["interior"] = array


# ---------------------------------------------------------------------------- constructors
def line(mesh_size: float, x_range: tuple[float, float] = (0.0, 1.0)) -> Box:
    """The interval ``x_range`` with nodes ``mesh_size`` apart.

    Tags: ``"interior"`` (every node, both ends included), ``"boundary"`` (the two ends),
    ``"left"`` and ``"right"`` (normals ``-1`` and ``+1``).
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


def ball(mesh_size: float, center: Sequence[float] = (0.0, 0.0, 0.0), radius: float = 1.0) -> Ball:
    """A 3-D ball with tags ``"interior"`` and ``"boundary"`` (the sphere); see :class:`Ball`.

    Args:
        mesh_size: grid spacing inside; the sphere carries about ``4πr² / mesh_size²`` points.
        center: 3 numbers.
        radius: positive.
    """
    return Ball(mesh_size, center, radius)


def polygon(vertices, mesh_size: float) -> Polygon:
    """A simple polygon from its ``(M, 2)`` vertices in order (M >= 3, either orientation).

    Tags ``"interior"``, ``"boundary"`` and ``"edge0"``... ``"edge{M-1}"`` (edge ``i`` runs
    from vertex ``i`` to vertex ``i + 1``); see :class:`Polygon`. Raises ``ValueError`` for
    fewer than 3 vertices, non-finite or repeated vertices, zero area or self-intersection.
    """
    return Polygon(vertices, mesh_size)


def points(array) -> Points:
    """A finite set of locations, shape ``(N, d)`` (or ``(N,)`` for 1-D), tag ``"interior"``."""
    return Points(array)
