"""The :class:`Domain`: tagged point sets and the coordinate variables that live on them."""

from __future__ import annotations

import functools

import numpy as np

from ..trace.node import Data, Variable
from ..trace.pointset import PointSet
from .geometry import Geometry

_SPACE_NAMES = ("x", "y", "z")


def _space_names(dim: int) -> tuple[str, ...]:
    """``x, y, z`` then ``x3, x4, ...``."""
    return tuple(_SPACE_NAMES[i] if i < len(_SPACE_NAMES) else f"x{i}" for i in range(dim))


class Domain:
    """A geometry with named point tags, an optional time axis and a seed for point sampling.

    Args:
        constructor: a geometry from ``line``, ``rect``, ``box``, ``disk``, ``polygon``,
            ``ball``, ``points``, or a combination by ``union``/``intersection``/``difference``
            (``a | b``, ``a & b``, ``a - b``); all available as ``jno.domain.line`` etc.
        time: optional ``(t0, t1, nt)``. Every tag's points become the product of its spatial
            points with the ``nt`` equally spaced times, time-major (all spatial points at
            ``t0`` first, so values reshape to ``(nt, n_space)``); the time is the last
            coordinate. The tag ``"initial"`` holds the interior points at ``t0``.
        seed: seed of point sampling; the ``k``-th sampled set of this domain is drawn from a
            numpy ``Generator`` seeded with ``(seed, k)``, so a script draws the same points on
            every run.

    ``dom.variable(tag)`` returns variables on one :class:`~jno.trace.pointset.PointSet` per
    tag, created on first use and reused afterwards, so expressions from separate calls
    combine point-wise. ``dom.normal(tag)`` (or ``dom.normal(x)`` for a variable ``x``, sampled
    or not) gives the outward unit normals as data on that same point set.
    """

    def __init__(
        self,
        constructor: Geometry,
        time: tuple[float, float, int] | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(constructor, Geometry):
            raise TypeError(
                f"jno.domain(constructor=...) needs a geometry such as "
                f"jno.domain.line(mesh_size=0.01), got {type(constructor).__name__}"
            )
        self.geometry = constructor
        self.seed = int(seed)
        self.times: np.ndarray | None = None
        if time is not None:
            t0, t1, nt = time
            if not float(t1) > float(t0) or int(nt) < 2 or int(nt) != nt:
                raise ValueError(
                    f"time must be (t0, t1, nt) with t1 > t0 and an integer nt >= 2, got {time!r}"
                )
            self.times = np.linspace(float(t0), float(t1), int(nt))
        self.names = _space_names(constructor.dim) + (("t",) if self.has_time else ())
        self._user: dict[str, np.ndarray] = {}  # user tag -> spatial or space-time points
        self._user_normals: dict[str, np.ndarray] = {}  # user tag -> (N, spatial_dim) normals
        self._pointsets: dict[str, PointSet] = {}
        # id of every point set made here -> its (N, spatial_dim) normals, or None without.
        self._made: dict[int, tuple[PointSet, np.ndarray | None]] = {}
        self._draws = 0

    # ------------------------------------------------------------------ tags and points
    @property
    def has_time(self) -> bool:
        """Whether the domain has a time axis."""
        return self.times is not None

    @property
    def spatial_dim(self) -> int:
        """The number of spatial coordinates."""
        return self.geometry.dim

    @property
    def tags(self) -> tuple[str, ...]:
        """Every tag name: the geometry's, ``"initial"`` with a time axis, then user tags."""
        return self.geometry.tags + (("initial",) if self.has_time else ()) + tuple(self._user)

    def _check_tag(self, tag: str) -> None:
        if tag not in self.tags:
            raise ValueError(
                f"unknown tag {tag!r} for this {self.geometry.label} domain; available tags: "
                f"{', '.join(repr(t) for t in self.tags)}. Add your own with "
                "dom.add_tag(name, points)."
            )

    def add_tag(self, name: str, points, normals=None) -> None:
        """Add a user tag holding the given points.

        ``points`` has shape ``(N, d)`` (or ``(N,)`` when ``d == 1``). With a time axis, ``d``
        may be the spatial dimension (the points are then taken at every time node, like the
        built-in tags) or the spatial dimension + 1 (explicit space-time points).
        ``normals`` (optional, shape ``(N, spatial_dim)``, unit rows) makes the tag a boundary
        tag for :meth:`normal`.
        """
        if not isinstance(name, str) or not name:
            raise TypeError(f"tag name must be a non-empty string, got {name!r}")
        if name in self.tags:
            raise ValueError(f"tag {name!r} already exists; choose another name")
        array = np.asarray(points, dtype=np.float64)
        if array.ndim == 1:
            array = array[:, None]
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise ValueError(
                f"tag {name!r}: {bad} point coordinate(s) are NaN or infinite; drop or repair "
                "those rows before add_tag"
            )
        allowed = {self.spatial_dim} | ({self.spatial_dim + 1} if self.has_time else set())
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] not in allowed:
            raise ValueError(
                f"tag {name!r}: points must have shape (N, d) with N > 0 and d in "
                f"{sorted(allowed)} (coordinates {self.names}), got {np.shape(points)}"
            )
        if normals is not None:
            nrm = np.asarray(normals, dtype=np.float64)
            if nrm.ndim == 1 and self.spatial_dim == 1:
                nrm = nrm[:, None]
            if nrm.shape != (array.shape[0], self.spatial_dim) or not np.all(np.isfinite(nrm)):
                raise ValueError(
                    f"tag {name!r}: normals must be a finite ({array.shape[0]}, "
                    f"{self.spatial_dim}) array (one spatial vector per point), got shape "
                    f"{np.shape(normals)}"
                )
            length = np.linalg.norm(nrm, axis=1)
            if not np.allclose(length, 1.0, atol=1e-6):
                raise ValueError(
                    f"tag {name!r}: normals must have unit length; divide each row by its norm"
                )
            self._user_normals[name] = nrm
        self._user[name] = array

    def _with_time(self, space: np.ndarray) -> np.ndarray:
        """The time-major product of spatial points with the time nodes."""
        if self.times is None:
            return space
        n = space.shape[0]
        return np.concatenate(
            [np.tile(space, (self.times.size, 1)), np.repeat(self.times, n)[:, None]], axis=1
        )

    def points(self, tag: str) -> np.ndarray:
        """The ``(N, d)`` coordinates of ``tag`` (spatial columns, then time if any)."""
        self._check_tag(tag)
        if tag == "initial":
            interior = self.geometry.points("interior")
            return np.concatenate([interior, np.full((len(interior), 1), self.times[0])], axis=1)
        if tag in self._user:
            array = self._user[tag]
            return array if array.shape[1] == len(self.names) else self._with_time(array)
        return self._with_time(self.geometry.points(tag))

    def sample(self, tag: str, n: int) -> np.ndarray:
        """``n`` points drawn uniformly from the region of ``tag`` (next seeded draw).

        A finite tag (sensor points, user tags, the ends of a line) is sampled from its points
        with replacement; with a time axis the time is drawn uniformly in ``[t0, t1]`` (``t0``
        for ``"initial"``).
        """
        return self._sample(tag, n)[0]

    def sample_region(self, tag: str, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` points of ``tag``'s region drawn with ``rng`` (the domain's draw counter is
        left alone): the candidate pools of adaptive resampling (:mod:`jno.sampling`)."""
        return self._sample(tag, n, rng)[0]

    def _sample(
        self, tag: str, n: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """:meth:`sample` and the spatial outward normals at the points (``None`` if none)."""
        self._check_tag(tag)
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
            raise ValueError(f"sample must be a positive integer, got {n!r}")
        if rng is None:
            rng = np.random.default_rng([self.seed, self._draws])
            self._draws += 1
        normals = None
        if tag in self._user:
            idx = rng.integers(0, self._user[tag].shape[0], size=n)
            points = self._user[tag][idx]
            if tag in self._user_normals:
                normals = self._user_normals[tag][idx]
            if points.shape[1] == len(self.names):
                return points, normals
            space = points
        else:
            space, normals = self.geometry.sample_with_normals(
                "interior" if tag == "initial" else tag, n, rng
            )
            if tag == "initial":
                normals = None
        if self.times is None:
            return space, normals
        t0, t1 = self.times[0], self.times[-1]
        t = np.full(n, t0) if tag == "initial" else rng.uniform(t0, t1, size=n)
        return np.concatenate([space, t[:, None]], axis=1), normals

    def _tag_normals(self, tag: str) -> np.ndarray | None:
        """The ``(N, spatial_dim)`` normals of the fixed points of ``tag``, or ``None``."""
        if tag == "initial":
            return None
        if tag in self._user:
            nrm = self._user_normals.get(tag)
            if nrm is None or self._user[tag].shape[1] == len(self.names):
                return nrm
        elif self.geometry.has_normals(tag):
            nrm = self.geometry.normals(tag)
        else:
            return None
        return nrm if self.times is None else np.tile(nrm, (self.times.size, 1))

    # ------------------------------------------------------------------ placeholders
    def pointset(self, tag: str) -> PointSet:
        """The (cached) point set of ``tag``."""
        if tag not in self._pointsets:
            ps = PointSet(self.points(tag), self.names, tag, label=f"{self.geometry.label}.{tag}")
            ps.sampler = functools.partial(self.sample_region, tag)
            self._pointsets[tag] = ps
            self._made[ps.id] = (ps, self._tag_normals(tag))
        return self._pointsets[tag]

    def variable(self, name: str, data=None, *, tag: str | None = None, sample: int | None = None):
        """Coordinate variables of a tag, or a data placeholder attached to a tag.

        * ``dom.variable(tag)`` returns one :class:`~jno.trace.node.Variable` per spatial
          coordinate followed by the time variable (``None`` without a time axis):
          ``x, t = line_dom.variable("interior")``, ``x, y, t = rect_dom.variable("left")``.
          Repeated calls return variables on the same point set.
        * ``dom.variable(tag, sample=n)``: the same on ``n`` freshly drawn points (a new point
          set every call; see :meth:`sample`).
        * ``dom.variable(name, array, tag="interior")`` attaches ``array`` (leading axis = the
          tag's points) to the tag's point set and returns a :class:`~jno.trace.node.Data`.
        """
        if data is not None:
            if sample is not None:
                raise ValueError(
                    f"data {name!r}: cannot attach data to sampled points; attach it to a tag's "
                    "fixed points (dom.variable(name, array, tag=...)) instead"
                )
            _check_finite_data(name, data)
            ps = self.pointset("interior" if tag is None else tag)
            if name in ps.data:
                raise ValueError(f"data {name!r} is already attached to '{ps.label}'; rename it")
            ps.attach(name, data)
            return Data(ps, name)
        if tag is not None:
            raise TypeError(
                f"dom.variable({name!r}, tag={tag!r}): `tag=` is for attaching data "
                "(dom.variable(name, array, tag=...)); for coordinates write dom.variable(tag)"
            )
        if sample is None:
            ps = self.pointset(name)
        else:
            k = self._draws
            coords, normals = self._sample(name, sample)
            ps = PointSet(
                coords, self.names, name, label=f"{self.geometry.label}.{name}[sample {k}]"
            )
            ps.sampler = functools.partial(self.sample_region, name)
            self._made[ps.id] = (ps, normals)
        variables = tuple(Variable(ps, i, v) for i, v in enumerate(self.names))
        return variables if self.has_time else variables + (None,)

    def normal(self, where, *, vector: bool = False, sample: int | None = None):
        """Outward unit normals on a boundary tag, as data on that tag's very point set.

        Args:
            where: a boundary tag (``"boundary"``, ``"left"``, ``"edge0"``, ``"inner"``, ...),
                or a coordinate variable returned by :meth:`variable`, which gives the normals
                on *its* point set; this is how sampled points get their normals::

                    xb, yb, _ = dom.variable("boundary", sample=256)
                    nx, ny = dom.normal(xb)      # the normals of those 256 points

            vector: return one placeholder with per-point shape ``(spatial_dim,)`` (for
                ``jno.np.grad(u, [x, y]) @ n``) instead of one per coordinate.
            sample: not accepted: a separate draw would not match any variables; sample the
                coordinates with ``dom.variable(tag, sample=n)`` and pass one of them.

        Returns:
            One :class:`~jno.trace.node.Data` of per-point shape ``(1,)`` per *spatial*
            coordinate (``nx, ny = dom.normal("boundary")``; no time entry), or with
            ``vector=True`` a single ``(spatial_dim,)`` one. With a time axis the normals are
            repeated at every time. Data names are ``n_x``, ``n_y``, ... and ``n``.

        Raises:
            ValueError: for a tag without normals (``"interior"``, ``"initial"``, user tags
                added without ``normals=``), or a variable of another domain.
        """
        if sample is not None:
            raise ValueError(
                "dom.normal(tag, sample=n) would draw points unrelated to your variables; draw "
                "them with xb, yb, _ = dom.variable(tag, sample=n) and call dom.normal(xb)"
            )
        if isinstance(where, str):
            ps = self.pointset(where)
        elif isinstance(where, Variable):
            ps = where.pointset
            if ps.id not in self._made or self._made[ps.id][0] is not ps:
                raise ValueError(
                    f"dom.normal({where.var_name}): that variable lives on point set "
                    f"'{ps.label}', which this domain did not make; call normal() on the domain "
                    "whose variable() returned it"
                )
        else:
            raise TypeError(
                "dom.normal(where): where must be a tag name or a coordinate variable from "
                f"dom.variable(...), got {type(where).__name__}"
            )
        normals = self._made[ps.id][1]
        if normals is None:
            with_normals = [t for t in self.tags if self._tag_normals(t) is not None]
            raise ValueError(
                f"tag {ps.tag!r} ({ps.label}) has no outward normals: they exist on boundary "
                f"tags only ({', '.join(repr(t) for t in with_normals) or 'none here'}); "
                "give a user tag normals with dom.add_tag(name, points, normals=...)"
            )
        spatial = self.names[: self.spatial_dim]
        names = [f"n_{c}" for c in spatial] + ["n"]
        arrays = [normals[:, i : i + 1] for i in range(self.spatial_dim)] + [normals]
        for name, array in zip(names, arrays):
            if name in ps.data:
                if not np.array_equal(ps.data[name], array.astype(ps.data[name].dtype)):
                    raise ValueError(
                        f"data {name!r} on '{ps.label}' is not the normals; the names n, n_x, "
                        "n_y, ... are reserved for dom.normal(): rename your data"
                    )
            else:
                ps.attach(name, array)
        if vector:
            return Data(ps, "n")
        return tuple(Data(ps, name) for name in names[:-1])

    def __repr__(self) -> str:
        time = ""
        if self.times is not None:
            time = f", time=[{self.times[0]}, {self.times[-1]}] x {self.times.size}"
        return f"Domain({self.geometry!r}{time}, seed={self.seed})"


def _check_finite_data(name: str, data) -> None:
    """Reject NaN or infinite entries in data attached with ``dom.variable(name, array)``."""
    array = np.asarray(data)
    if array.ndim == 0 or not np.issubdtype(array.dtype, np.inexact):
        return  # shapes and non-float data are checked when the data is attached
    finite = np.isfinite(array)
    if finite.all():
        return
    rows = np.nonzero(~finite.reshape(array.shape[0], -1).all(axis=1))[0]
    nan = int(np.isnan(array).sum())
    inf = int(array.size - np.count_nonzero(finite) - nan)
    shown = ", ".join(str(int(r)) for r in rows[:5]) + (", ..." if rows.size > 5 else "")
    raise ValueError(
        f"data {name!r}: {nan} NaN and {inf} infinite value(s) (rows {shown}); a likelihood of "
        "non-finite data is NaN everywhere. Drop those points (with their coordinates), or "
        "impute them, before dom.variable(name, array)."
    )
