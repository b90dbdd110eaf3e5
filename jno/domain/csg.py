"""Constructive solid geometry: union, intersection and difference of geometries.

``union(a, b)`` (``a | b``), ``intersection(a, b)`` (``a & b``) and ``difference(a, b)``
(``a - b``) combine any geometries with an inside test (rect, box, disk, polygon, ball and
earlier combinations) of the same dimension. The result is itself a geometry:

* inside test: the signed distance ``min(a, b)``, ``max(a, b)`` or ``max(a, -b)`` (its sign is
  exact; its magnitude is a bound on the distance);
* ``"interior"`` nodes: for a union, every node of ``a`` plus the nodes of ``b`` outside ``a``;
  for an intersection, the nodes of ``a`` inside ``b``; for a difference, the nodes of ``a``
  outside ``b``; in the last two, plus the boundary nodes contributed by ``b``;
* boundary: the boundary of each operand kept where it is a boundary of the result, with the
  operand's outward normals, flipped for the boundary of ``b`` in a difference (it faces into
  the hole). Where the two boundaries coincide, the piece is kept once when the result lies on
  one side of it (decided by comparing the normal with the other operand's distance gradient);
* tags: ``"interior"``, ``"boundary"``, and every boundary tag of the operands (``"left"``,
  ``"edge2"``, ...) restricted to its kept part, tags of the same name merged. In a difference
  the kept boundary of ``b`` is tagged ``"inner"`` (its own side names are dropped), so a plate
  with a hole has ``"inner"`` on the hole. A tag with no node left is dropped.

Sampling is uniform by rejection: interior points from the bounding box, boundary points from
the operands' boundary pieces (by length or area) with the discarded parts rejected.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .geometry import SET_OPERATIONS, Face, Geometry, Points

_SYMBOL = {"union": "|", "intersection": "&", "difference": "-"}


def _sdf_gradient(geom: Geometry, pts: np.ndarray, h: float) -> np.ndarray:
    """Central-difference gradient of ``geom.sdf`` at ``(K, d)`` points."""
    grad = np.empty_like(pts)
    for i in range(pts.shape[1]):
        step = np.zeros(pts.shape[1])
        step[i] = h
        grad[:, i] = (geom.sdf(pts + step) - geom.sdf(pts - step)) / (2 * h)
    return grad


def _keeper(
    other: Geometry, side: str, tie: int, tol: float, h: float
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``keep(points, normals)``: a boundary piece of one operand tested against ``other``.

    ``side`` is ``"outside"`` (keep where ``other.sdf > tol``) or ``"inside"`` (``< -tol``).
    Points on ``other``'s boundary (``|sdf| <= tol``) are kept when ``tie * n . grad sdf > 0``
    (``tie = 0``: never).
    """

    def keep(pts: np.ndarray, normals: np.ndarray) -> np.ndarray:
        s = other.sdf(pts)
        mask = s > tol if side == "outside" else s < -tol
        if tie:
            on = np.nonzero(np.abs(s) <= tol)[0]
            if on.size:
                g = _sdf_gradient(other, pts[on], h)
                mask[on] = tie * np.einsum("ij,ij->i", g, normals[on]) > 0
        return mask

    return keep


def _wrap_face(face: Face, keep, sign: float, tags: tuple[str, ...]) -> Face:
    """``face`` with normals times ``sign``, further restricted by ``keep``."""

    def draw(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        p, nrm = face.draw(n, rng)
        return p, sign * nrm

    def kept(p: np.ndarray, nrm: np.ndarray) -> np.ndarray:
        mask = keep(p, nrm)
        if face.keep is not None:
            mask &= face.keep(p, sign * nrm)
        return mask

    return Face(tags, face.measure, draw, kept)


class CSG(Geometry):
    """The union, intersection or difference of two geometries; see :mod:`jno.domain.csg`.

    Attributes:
        op: ``"union"``, ``"intersection"`` or ``"difference"``.
        a, b: the operands.
    """

    def __init__(self, op: str, a: Geometry, b: Geometry) -> None:
        super().__init__()
        if op not in _SYMBOL:
            raise ValueError(f"op must be one of {sorted(_SYMBOL)}, got {op!r}")
        for name, g in (("first", a), ("second", b)):
            if not isinstance(g, Geometry):
                raise ValueError(
                    f"{op}: the {name} operand must be a geometry such as jno.domain.rect(...), "
                    f"got {type(g).__name__}"
                )
            if isinstance(g, Points) or not g.faces:
                raise ValueError(
                    f"{op}: the {name} operand ({g.label}) has no inside test; combine rect, box, "
                    "disk, polygon or ball geometries"
                )
        if a.dim != b.dim:
            raise ValueError(
                f"{op}: both operands must have the same dimension, got {a.label} in {a.dim}-D "
                f"and {b.label} in {b.dim}-D"
            )
        self.op, self.a, self.b = op, a, b
        self.dim = a.dim
        self.label = f"({a.label} {_SYMBOL[op]} {b.label})"
        (alo, ahi), (blo, bhi) = a.bounds, b.bounds
        if op == "union":
            self._lo, self._hi = np.minimum(alo, blo), np.maximum(ahi, bhi)
        elif op == "intersection":
            self._lo, self._hi = np.maximum(alo, blo), np.minimum(ahi, bhi)
            if np.any(self._hi <= self._lo):
                raise ValueError(
                    f"intersection: {a.label} and {b.label} do not overlap, so the intersection "
                    "is empty; move or enlarge one of them"
                )
        else:
            self._lo, self._hi = alo.copy(), ahi.copy()
        tol = self.tol
        h = 1e-6 * float(np.linalg.norm(self._hi - self._lo))

        if op == "union":
            keep_a = _keeper(b, "outside", +1, tol, h)
            keep_b = _keeper(a, "outside", 0, tol, h)
        elif op == "intersection":
            keep_a = _keeper(b, "inside", +1, tol, h)
            keep_b = _keeper(a, "inside", 0, tol, h)
        else:
            keep_a = _keeper(b, "outside", -1, tol, h)
            keep_b = _keeper(a, "inside", 0, tol, h)
        sign_b = -1.0 if op == "difference" else 1.0

        # Boundary pieces (for sampling).
        for f in a.faces:
            self.faces.append(_wrap_face(f, keep_a, 1.0, f.tags))
        for f in b.faces:
            tags = ("inner",) if op == "difference" else f.tags
            self.faces.append(_wrap_face(f, keep_b, sign_b, tags))

        # Grid nodes and normals of every boundary tag.
        pieces: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {"boundary": []}

        def add(tag: str, geom: Geometry, src: str, keep, sign: float) -> np.ndarray:
            pts, nrm = geom.points(src), sign * geom.normals(src)
            mask = keep(pts, nrm)
            pieces.setdefault(tag, []).append((pts[mask], nrm[mask]))
            return pts[mask]

        add("boundary", a, "boundary", keep_a, 1.0)
        for t in a.boundary_tags:
            if t != "boundary":
                add(t, a, t, keep_a, 1.0)
        b_boundary = add("boundary", b, "boundary", keep_b, sign_b)
        if op == "difference":
            add("inner", b, "boundary", keep_b, sign_b)
        else:
            for t in b.boundary_tags:
                if t != "boundary":
                    add(t, b, t, keep_b, 1.0)

        ai, bi = a.points("interior"), b.points("interior")
        if op == "union":
            interior = np.concatenate([ai, bi[a.sdf(bi) > tol]])
        elif op == "intersection":
            interior = np.concatenate([ai[b.sdf(ai) <= tol], b_boundary])
        else:
            interior = np.concatenate([ai[b.sdf(ai) > tol], b_boundary])
        if interior.shape[0] == 0:
            raise ValueError(
                f"{op} of {a.label} and {b.label} has no grid node left: the result is empty "
                "or thinner than the mesh; check the operands or use a smaller mesh_size"
            )
        self._tags["interior"] = interior
        for tag, parts in pieces.items():
            pts = np.concatenate([p for p, _ in parts])
            if pts.shape[0]:
                self._tags[tag] = pts
                self._normals[tag] = np.concatenate([n for _, n in parts])
        if "boundary" not in self._tags:
            raise ValueError(f"{op} of {a.label} and {b.label} has no boundary node left")

    def sdf(self, pts: np.ndarray) -> np.ndarray:
        """``min(a, b)`` (union), ``max(a, b)`` (intersection) or ``max(a, -b)`` (difference)."""
        sa, sb = self.a.sdf(pts), self.b.sdf(pts)
        if self.op == "union":
            return np.minimum(sa, sb)
        if self.op == "intersection":
            return np.maximum(sa, sb)
        return np.maximum(sa, -sb)

    @property
    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        return self._lo.copy(), self._hi.copy()


def union(a: Geometry, b: Geometry) -> CSG:
    """The union ``a ∪ b`` (also ``a | b``) of two geometries of one dimension.

    Tags: ``"interior"``, ``"boundary"`` and the operands' boundary tags (merged by name), each
    restricted to the part on the boundary of the union; see :mod:`jno.domain.csg`.
    """
    return CSG("union", a, b)


def intersection(a: Geometry, b: Geometry) -> CSG:
    """The intersection ``a ∩ b`` (also ``a & b``); tags as for :func:`union`."""
    return CSG("intersection", a, b)


def difference(a: Geometry, b: Geometry) -> CSG:
    """``a`` with ``b`` removed (also ``a - b``), e.g. a plate with a hole.

    Tags: ``"interior"``, ``"boundary"`` (all of it), ``a``'s boundary tags (``"left"``, ...)
    where they survive, and ``"inner"``: the part of ``b``'s boundary inside ``a``, with normals
    pointing into ``b`` (out of the result). Raises ``ValueError`` if nothing is left.
    """
    return CSG("difference", a, b)


# ``a | b``, ``a & b`` and ``a - b`` on every geometry.
SET_OPERATIONS.update(union=union, intersection=intersection, difference=difference)
