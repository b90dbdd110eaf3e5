"""Domains: geometries, tagged point sets and the coordinate variables on them.

``domain`` is the user entry point: call it to build a :class:`Domain`
(``jno.domain(constructor=jno.domain.line(mesh_size=0.01))``) and use its attributes as the
geometry constructors (``jno.domain.line``, ``.rect``, ``.box``, ``.disk``, ``.points``).
"""

from __future__ import annotations

from . import geometry
from .domain import Domain
from .geometry import Box, Disk, Geometry, Points


class _DomainFactory:
    """Callable that builds a :class:`Domain` and carries the geometry constructors."""

    Domain = Domain
    line = staticmethod(geometry.line)
    rect = staticmethod(geometry.rect)
    box = staticmethod(geometry.box)
    disk = staticmethod(geometry.disk)
    points = staticmethod(geometry.points)

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

__all__ = ["Box", "Disk", "Domain", "Geometry", "Points", "domain"]
