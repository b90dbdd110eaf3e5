"""Adaptive collocation: residual-based resampling of a point set between chunks.

``crux.solve(n, resample=jno.sampling.rad(x, every=1000))`` moves the points of ``x``'s point
set every ``every`` steps to where the residual is large (Wu, Zhu, Tan, Kartha & Lu 2023,
*A comprehensive study of non-adaptive and residual-based adaptive sampling for PINNs*).
At a resampling step ``i`` (``i % every == 0``, after the chunk that ends there):

1. a candidate pool ``S`` of ``candidates`` points is drawn uniformly from the point set's
   region (its domain's sampler, seeded by the ``resample`` key stream at step ``i``);
2. the residual magnitude ``ε(x) = sqrt(Σ_r |r(x)|²)`` over every residual reduced on that
   point set (``r.mse``, ``r.gaussian(...)``, ``r.causal_mse(...)``; all components) is
   evaluated at the live parameters (chain 0 / member 0) on ``S`` (and on the current points);
3. ``p(x) ∝ ε(x)^k / mean_S ε^k + c`` and:

   * **RAD** replaces all ``N`` points by ``N`` draws from ``S`` without replacement, with
     probabilities ``p`` (the paper's defaults ``k = 1, c = 1``);
   * **RAR-D** keeps the count fixed: the ``m`` current points with the smallest residual are
     replaced by ``m`` draws from ``S`` with probabilities ``p`` (defaults ``k = 2, c = 0``).
     The paper's RAR-D adds the ``m`` points to the set; a growing set would change the
     compiled program's shapes, so jno replaces the least useful points instead.

The points live in the solve state (``SolveState.inputs``): new coordinates of the same shape
reuse the compiled step, checkpoints carry them, and ``solve(n) + solve(m)`` equals
``solve(n + m)`` because the chunks end at every resampling step and the keys depend only on
the step index. Each resampling records ``"resample:<point set>"`` (mean ``ε`` over ``S``) in
the history.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import ALL_ROWS, Evaluator, GraphPlan, ps_key
from ..trace.node import Placeholder
from ..trace.pointset import PointSet, default_float
from . import streams as st


def _positive_int(value, what: str, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ValueError(f"jno.sampling.{name}: {what} must be a positive int, got {value!r}")
    return int(value)


def _pointset_of(where, name: str) -> PointSet:
    if isinstance(where, PointSet):
        return where
    ps = getattr(where, "pointset", None)
    if isinstance(where, Placeholder) and isinstance(ps, PointSet):
        return ps
    raise TypeError(
        f"jno.sampling.{name}: pass a coordinate variable of the points to move (x from "
        f"x, _ = dom.variable('interior')) or its point set, got {type(where).__name__}"
    )


class Resampler:
    """Base class: which points move, how often, and the residual weighting ``(k, c)``."""

    name = "resampler"

    def __init__(self, where, *, every: int, k: float, c: float, candidates: int | None):
        self.pointset = _pointset_of(where, self.name)
        self.every = _positive_int(every, "every", self.name)
        if not np.isfinite(k) or k < 0 or not np.isfinite(c) or c < 0:
            raise ValueError(
                f"jno.sampling.{self.name}: k and c must be finite and >= 0, got k={k!r}, c={c!r}"
            )
        self.k, self.c = float(k), float(c)
        n = self.pointset.size
        self.candidates = (
            10 * n if candidates is None else _positive_int(candidates, "candidates", self.name)
        )
        if self.candidates < n:
            raise ValueError(
                f"jno.sampling.{self.name}: candidates={self.candidates} is fewer than the "
                f"{n} points of {self.pointset.label}; pass candidates >= {n} (default 10 N)."
            )

    @property
    def label(self) -> str:
        return self.pointset.label

    def probabilities(self, eps: jax.Array) -> jax.Array:
        """``p ∝ ε^k / mean ε^k + c`` over the pool, normalised to sum 1."""
        w = eps**self.k
        w = w / jnp.mean(w) + self.c
        return w / jnp.sum(w)

    def new_coords(self, key, coords, pool, eps_pool, eps_now) -> jax.Array:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"jno.sampling.{self.name}({self.label}, every={self.every}, k={self.k}, c={self.c})"


class RAD(Resampler):
    """Residual-based adaptive distribution: all ``N`` points redrawn from the pool ∝ ``p``."""

    name = "rad"

    def new_coords(self, key, coords, pool, eps_pool, eps_now) -> jax.Array:
        p = self.probabilities(eps_pool)
        idx = jax.random.choice(key, pool.shape[0], (coords.shape[0],), replace=False, p=p)
        return pool[idx]


class RARD(Resampler):
    """Residual-based adaptive refinement with distribution at a fixed count: the ``m``
    points of smallest residual are replaced by ``m`` pool draws ∝ ``p``."""

    name = "rar_d"

    def __init__(self, where, *, every, k, c, candidates, replace):
        super().__init__(where, every=every, k=k, c=c, candidates=candidates)
        n = self.pointset.size
        if isinstance(replace, float) and not isinstance(replace, bool):
            if not 0.0 < replace <= 1.0:
                raise ValueError(
                    f"jno.sampling.rar_d: replace as a fraction must be in (0, 1], got {replace}"
                )
            replace = max(1, int(round(replace * n)))
        self.replace = _positive_int(replace, "replace", self.name)
        if self.replace > n:
            raise ValueError(
                f"jno.sampling.rar_d: replace={self.replace} exceeds the {n} points of "
                f"{self.label}."
            )

    def new_coords(self, key, coords, pool, eps_pool, eps_now) -> jax.Array:
        p = self.probabilities(eps_pool)
        idx = jax.random.choice(key, pool.shape[0], (self.replace,), replace=False, p=p)
        lowest = jnp.argsort(eps_now)[: self.replace]
        return coords.at[lowest].set(pool[idx])


def rad(where, *, every: int = 1000, k: float = 1.0, c: float = 1.0, candidates=None) -> RAD:
    """RAD (Wu et al. 2023): every ``every`` steps, the points of ``where``'s point set are
    redrawn from a pool of ``candidates`` (default ``10 N``) uniform points with probability
    ``∝ ε^k / mean ε^k + c``. ``k = 0`` or large ``c`` is uniform resampling."""
    return RAD(where, every=every, k=k, c=c, candidates=candidates)


def rar_d(
    where, *, every: int = 1000, k: float = 2.0, c: float = 0.0, candidates=None, replace=0.1
) -> RARD:
    """RAR-D at a fixed count: every ``every`` steps the ``replace`` points (a count, or a
    fraction of ``N``; default 10 %) with the smallest residual are replaced by draws from a
    pool of ``candidates`` uniform points with probability ``∝ ε^k / mean ε^k + c``."""
    return RARD(where, every=every, k=k, c=c, candidates=candidates, replace=replace)


# ---------------------------------------------------------------------- in the solve
class Bound(NamedTuple):
    """A resampler checked against a program: its point-set key and residual nodes."""

    resampler: Resampler
    index: int
    key: str
    residuals: list
    plan: GraphPlan


def bind(resample, program) -> list[Bound]:
    """Check ``crux.solve(resample=...)`` against ``program``; ``[]`` for ``None``."""
    if resample is None:
        return []
    items = list(resample) if isinstance(resample, (list, tuple)) else [resample]
    out, keys = [], set()
    for i, r in enumerate(items):
        if not isinstance(r, Resampler):
            raise TypeError(
                "crux.solve(resample=...): pass jno.sampling.rad(x, ...) or "
                f"jno.sampling.rar_d(x, ...) (or a list of them), got {type(r).__name__}"
            )
        ps, key = r.pointset, ps_key(r.pointset)
        where = f"crux.solve(resample={r!r})"
        if key not in program.inputs:
            raise ValueError(f"{where}: no constraint uses the points of {ps.label}.")
        rows = program.inputs[key]
        if rows["data"] or rows["noise"]:
            attached = sorted(rows["data"]) + sorted(rows["noise"])
            raise ValueError(
                f"{where}: {ps.label} carries data or noise ({attached}) tied to its points "
                "(observations, normals); only collocation points without data can move."
            )
        if ps.sampler is None:
            raise ValueError(
                f"{where}: {ps.label} was not made by a domain (user coordinates), so there is "
                "no region to draw candidates from; use dom.variable(tag) points."
            )
        if key in keys:
            raise ValueError(f"{where}: {ps.label} has two resamplers; pass one per point set.")
        keys.add(key)
        residuals = sorted(
            (r for r in program.plan.residuals() if r.pointset is ps), key=lambda r: r.id
        )
        if not residuals:
            raise ValueError(f"{where}: no residual is reduced on {ps.label}.")
        out.append(Bound(r, i, key, residuals, GraphPlan(residuals)))
    return out


def residual_magnitude(bound: Bound, program, params: dict, inputs: dict, coords) -> jax.Array:
    """``ε (n,)`` at ``coords (n, d)``: the root sum of squares of every residual on the set."""
    rows = {
        "coords": coords,
        "data": {},
        "noise": {},
        "scale": ALL_ROWS,
    }
    ev = Evaluator(bound.plan, program.statics, params, {**inputs, bound.key: rows})
    total = jnp.zeros(coords.shape[0], default_float())
    for r in bound.residuals:
        v = jnp.asarray(ev.value(r), default_float())
        total = total + jnp.sum(jnp.square(v.reshape(v.shape[0], -1)), axis=1)
    return jnp.sqrt(total)


def pool(bound: Bound, streams: st.KeyStreams, index: int) -> tuple[jax.Array, np.ndarray]:
    """The step's resampling key and its ``(candidates, d)`` uniform candidate pool."""
    key = jax.random.fold_in(st.resample_key(streams, index), bound.index)
    seed = np.asarray(jax.random.key_data(jax.random.fold_in(key, 0)), dtype=np.uint32)
    rng = np.random.default_rng(seed.tolist())
    r = bound.resampler
    cand = r.pointset.sampler(r.candidates, rng).astype(default_float())
    return jax.random.fold_in(key, 1), cand


def resample_inputs(bound: Bound, key, inputs: dict, cand, eps_pool, eps_now) -> dict | None:
    """``inputs`` with the point set's new coordinates, or ``None`` (residual not finite)."""
    if not (np.all(np.isfinite(eps_pool)) and np.all(np.isfinite(eps_now))):
        warnings.warn(
            f"jno.sampling.{bound.resampler.name}: the residual on {bound.resampler.label} is "
            "not finite; the points were kept.",
            stacklevel=3,
        )
        return None
    rows = inputs[bound.key]
    coords = bound.resampler.new_coords(key, rows["coords"], jnp.asarray(cand), eps_pool, eps_now)
    return {**inputs, bound.key: {**rows, "coords": coords.astype(rows["coords"].dtype)}}


__all__ = ["RAD", "RARD", "Resampler", "rad", "rar_d"]
