"""Domains: geometries, tagged point sets and the coordinate variables on them.

``domain`` is the user entry point: call it to build a :class:`Domain`
(``jno.domain(constructor=jno.domain.line(mesh_size=0.01))``) and use its attributes as the
geometry constructors (``jno.domain.line``, ``.rect``, ``.box``, ``.disk``, ``.polygon``,
``.ball``, ``.points``) and the set operations (``jno.domain.union``, ``.intersection``,
``.difference``; also ``a | b``, ``a & b``, ``a - b`` on geometries).
"""

from __future__ import annotations

from . import csg, geometry
from .csg import CSG
from .domain import Domain
from .geometry import Ball, Box, Disk, Geometry, Points, Polygon


class _DomainFactory:
    """Callable that builds a :class:`Domain` and carries the geometry constructors."""

    Domain = Domain
    line = staticmethod(geometry.line)
    rect = staticmethod(geometry.rect)
    box = staticmethod(geometry.box)
    disk = staticmethod(geometry.disk)
    polygon = staticmethod(geometry.polygon)
    ball = staticmethod(geometry.ball)
    points = staticmethod(geometry.points)
    union = staticmethod(csg.union)
    intersection = staticmethod(csg.intersection)
    difference = staticmethod(csg.difference)

    def __call__(
        self,
        constructor: Geometry,
        time: tuple[float, float, int] | None = None,
        seed: int = 0,
    ) -> Domain:
        """Build a :class:`Domain`; see its documentation for the arguments."""
        return Domain(constructor, time=time, seed=seed)

    def __repr__(self) -> str:
        return "jno.domain"


domain = _DomainFactory()

__all__ = ["CSG", "Ball", "Box", "Disk", "Domain", "Geometry", "Points", "Polygon", "domain"]
