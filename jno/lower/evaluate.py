"""Lower a graph to a pure JAX function of ``(params, inputs)``.

Point-wise sub-graphs are evaluated by a per-point function that is vmapped over the rows of
its point set; all point-wise sub-graphs of one point set that are needed at the same time
share one vmap (and one memo, so common sub-expressions are computed once). Derivatives are
nested forward-mode AD (``jax.jvp``) of the per-point function with respect to the point's
coordinates; an expression and all its derivatives come from one nest
(:func:`~jno.trace.derivative.lower_derivatives`), so the passes through it are shared.
Global nodes (parameters, literals, reductions) are evaluated once, outside vmap.
Every node lowers itself (``lower_global`` / ``lower_point`` of its class, which call back
:class:`Evaluator`); this module plans the batches and walks the graph by node properties.

``inputs`` is a pytree ``{pointset_key: {"coords": (n, d), "data": {...}, "noise": {...},
"scale": RowScale(N/n)}}`` whose rows may be a subsample of the point set. ``N/n`` is known
when the rows are chosen, so it is static (:class:`RowScale`, no array): a compiled
log-density multiplies by a constant, not by an input (a runtime factor measured 30 % of a
NUTS leapfrog at n = 1e4, by changing how XLA fuses the likelihood's reduction).

**Hoisting.** A point-wise sub-expression that depends on no model and no redrawn noise
(``sin(πx)``, a source term, a transform of the data) has the same value at every step of a
solve. :attr:`GraphPlan.hoistable` lists the largest such sub-expressions of each point set;
:func:`hoist_inputs` evaluates them once and adds them to ``inputs`` as
``inputs[pk]["hoisted"][node key]`` (``(n, ...)`` rows, subsampled with the rest), and the
per-point function then reads them instead of recomputing them (never inside a derivative,
whose per-point function must see them as functions of the coordinates). The solve computes
them once per compiled chunk, outside its step loop (the arrays are loop-invariant operands),
so points or data changed between chunks (``crux.condition``, resampling) are always seen.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..trace.derivative import Derivative, differentiated, lower_derivatives
from ..trace.node import Noise, Placeholder


# Keys are zero-padded creation counters: jax orders dict keys by string, so padding keeps
# that order the creation order in every process (a notebook re-run gives other counters but
# the same order, hence the same flattened positions, mass matrices and draws).
def ps_key(pointset) -> str:
    return f"p{pointset.id:08d}"


def model_key(model) -> str:
    return f"m{model.uid:08d}"


def noise_key(noise: Noise) -> str:
    return f"n{noise.id:08d}"


def hoist_key(node: Placeholder) -> str:
    return f"h{node.id:08d}"


@jax.tree_util.register_static
@dataclass(frozen=True)
class RowScale:
    """``N/n``: how many points of its set each of a step's ``n`` rows stands for (1 with all
    ``N`` points). A static pytree node: part of a compiled program's structure."""

    value: float


#: the scale of all ``N`` rows of a point set
ALL_ROWS = RowScale(1.0)


class GraphPlan:
    """Static analysis of the graphs rooted at ``roots``: batches of point-wise roots."""

    def __init__(self, roots: Sequence[Placeholder]):
        self.roots = list(roots)
        nodes: dict[int, Placeholder] = {}
        for r in self.roots:
            for n in r.walk():
                nodes[n.id] = n
        self.nodes = nodes
        self.models = []
        self.pointsets = {}
        self.noise_on: dict[str, dict[str, Noise]] = defaultdict(dict)
        seen_models = set()
        for n in nodes.values():
            model = n.reads_model
            if model is not None and model.uid not in seen_models:
                seen_models.add(model.uid)
                self.models.append(model)
            if n.pointset is not None:
                self.pointsets[ps_key(n.pointset)] = n.pointset
        self.models.sort(key=lambda m: m.uid)
        # Point-wise roots: point-wise nodes consumed by global nodes (or requested directly).
        self.pw_roots: set[int] = set()
        for n in nodes.values():
            if not n.per_point:
                for c in n.children():
                    if c.pointset is not None:
                        self.pw_roots.add(c.id)
        for r in self.roots:
            if r.pointset is not None:
                self.pw_roots.add(r.id)
            if r.adopts_pointset:
                raise ValueError(
                    "jno.noise used on its own: add it to a point-wise expression, e.g. "
                    "`target = f(x) + jno.noise.gaussian(std=0.1)`"
                )
        self._plevel: dict[int, int] = {}
        self._glevel: dict[int, int] = {}
        self.batches: dict[tuple[str, int], list[int]] = defaultdict(list)
        for rid in sorted(self.pw_roots):
            r = nodes[rid]
            self.batches[(ps_key(r.pointset), self.plevel(r))].append(rid)
        for (pk, _), rids in self.batches.items():
            for rid in rids:
                for n in self._pointwise_region(nodes[rid]):
                    if isinstance(n, Noise):
                        self.noise_on[pk][noise_key(n)] = n
        self.hoistable: dict[str, list[int]] = self._find_hoistable()
        # {expression id: the Derivative nodes of it and of its components}: evaluated
        # together (lower_derivatives)
        self.derivatives: dict[int, list[Derivative]] = defaultdict(list)
        for n in nodes.values():
            if isinstance(n, Derivative):
                self.derivatives[differentiated(n)[0].id].append(n)
        for n in nodes.values():
            if not n.per_point and any(c.adopts_pointset for c in n.children()):
                raise ValueError(
                    "jno.noise must be combined with a point-wise expression (on a "
                    "domain's points) before it is reduced."
                )

    def _find_hoistable(self) -> dict[str, list[int]]:
        """``{pointset key: [node ids]}``: the largest point-wise sub-expressions of each batch
        that depend on no model, no redrawn noise and no reduction over points (and are more
        than an input leaf). A reduction is excluded because its value depends on the rows a
        step sees: under ``batch_size`` it is taken over the step's subsample, not over all
        the points a hoisted value would have been computed on."""
        free: dict[int, bool] = {}
        reads_points: dict[int, bool] = {}

        def over_points(n: Placeholder) -> bool:
            if n.id not in reads_points:
                own = n.pointset is not None
                reads_points[n.id] = own or any(over_points(c) for c in n.children())
            return reads_points[n.id]

        def parameter_free(n: Placeholder) -> bool:
            if n.id not in free:
                own = not n.reads_parameters and not n.redrawn
                if not n.per_point and over_points(n):  # a reduction (or a value of one)
                    own = False
                free[n.id] = own and all(parameter_free(c) for c in n.children())
            return free[n.id]

        out: dict[str, list[int]] = defaultdict(list)
        for (pk, _), rids in self.batches.items():
            region = {n.id: n for rid in rids for n in self._pointwise_region(self.nodes[rid])}
            consumers: dict[int, list[Placeholder]] = defaultdict(list)
            for n in region.values():
                if n.per_point:
                    for c in n.children():
                        consumers[c.id].append(n)
            for n in region.values():
                if (
                    n.pointset is None
                    or n.is_input_leaf
                    or not parameter_free(n)
                    or n.id in out[pk]
                ):
                    continue
                used_by_free = consumers[n.id] and all(parameter_free(c) for c in consumers[n.id])
                if not used_by_free or n.id in self.pw_roots:
                    out[pk].append(n.id)
        return {pk: sorted(ids) for pk, ids in out.items() if ids}

    def _pointwise_region(self, root: Placeholder):
        """Nodes evaluated inside the per-point function of ``root`` (stops at global nodes)."""
        out, stack, seen = [], [root], set()
        while stack:
            n = stack.pop()
            if n.id in seen:
                continue
            seen.add(n.id)
            out.append(n)
            if not n.per_point and n is not root:
                continue
            stack.extend(n.children())
        return out

    def residuals(self) -> list[Placeholder]:
        """Every point-wise residual a reduction or likelihood of the graphs consumes, each
        once, in the order a walk of the roots meets them."""
        found: dict[int, Placeholder] = {}
        for root in self.roots:
            for n in root.walk():
                r = n.residual
                if r is not None and r.pointset is not None:
                    found.setdefault(r.id, r)
        return list(found.values())

    def global_deps(self, root: Placeholder):
        """The global values the per-point function of ``root`` reads, computed before its
        vmap (leaves are read where they are used)."""
        return [
            n
            for n in self._pointwise_region(root)
            if not n.per_point and not n.is_leaf and n is not root
        ]

    def plevel(self, root: Placeholder) -> int:
        if root.id not in self._plevel:
            self._plevel[root.id] = max((self.glevel(g) for g in self.global_deps(root)), default=0)
        return self._plevel[root.id]

    def glevel(self, node: Placeholder) -> int:
        if node.id not in self._glevel:
            level = 0
            for c in node.children():
                if c.pointset is not None:
                    level = max(level, 1 + self.plevel(c))
                elif not c.adopts_pointset:
                    level = max(level, self.glevel(c))
            self._glevel[node.id] = level
        return self._glevel[node.id]


class Point(NamedTuple):
    """One row of a point set inside the per-point function, as node lowerings see it.

    ``row`` holds the row's ``data`` and ``noise``; ``memo`` the values computed at this point;
    ``hoisted`` the hoisted values of the row (empty inside a derivative); ``inside`` the ids
    of the expressions whose derivatives are being taken through this point (each is
    evaluated here as a plain function of the coordinates, not as a derivative group).
    """

    coords: jax.Array
    row: dict
    memo: dict
    hoisted: dict
    inside: frozenset = frozenset()

    def data(self, name: str) -> jax.Array:
        return self.row["data"][name]

    def noise(self, node: Noise) -> jax.Array:
        return self.row["noise"][noise_key(node)]

    @property
    def index(self) -> jax.Array:
        """The row's position in the point set's current rows (all points, or a subsample)."""
        return self.row["index"]

    def moved(self, coords: jax.Array, differentiating: int) -> Point:
        """The same row at ``coords``, with a fresh memo and nothing hoisted (a derivative's
        per-point function must see every value as a function of the coordinates), inside
        the derivatives of the node ``differentiating``."""
        return Point(coords, self.row, {}, {}, self.inside | {differentiating})


def _point_of(row: dict) -> Point:
    return Point(row["coords"], row, {}, row.get("hoisted", {}))


class Evaluator:
    """Evaluates the nodes of a :class:`GraphPlan` for given ``params`` and ``inputs``.

    Each node lowers itself (:meth:`~jno.trace.node.Placeholder.lower_global`,
    :meth:`~jno.trace.node.Placeholder.lower_point`) and calls back :meth:`value`,
    :meth:`point`, :meth:`scale`, :meth:`module` and :meth:`params_of`. ``params`` maps model
    keys to the inexact-array part of each model; ``statics`` (fixed at construction) holds the
    rest of each equinox module.
    """

    def __init__(self, plan: GraphPlan, statics: dict, params, inputs):
        self.plan = plan
        self.statics = statics
        self.params = params
        self.inputs = inputs
        self.gmemo: dict[int, jax.Array] = {}
        self.pmemo: dict[int, jax.Array] = {}  # batched values of point-wise roots
        self.aux: dict[int, jax.Array] = {}  # side outputs (causal slice weights)

    # ------------------------------------------------------------------ models
    def module(self, model):
        p = self.params[model_key(model)]
        static = self.statics.get(model_key(model))
        return p if static is None else eqx.combine(p, static)

    def params_of(self, model) -> jax.Array:
        """The array of a Parameter (or the parameter leaves of a model)."""
        return self.params[model_key(model)]

    def scale(self, node: Placeholder):
        """``N/n`` of the rows of ``node``'s point set in ``inputs`` (1 for a global node)."""
        if node.pointset is None:
            return 1.0
        return self.inputs[ps_key(node.pointset)]["scale"].value

    # ------------------------------------------------------------------ global level
    def value(self, node: Placeholder) -> jax.Array:
        """The value of ``node``: global nodes as arrays, point-wise nodes batched ``(n, ...)``."""
        if node.pointset is not None:
            return self.batched(node)
        if node.id in self.gmemo:
            return self.gmemo[node.id]
        out = node.lower_global(self)
        self.gmemo[node.id] = out
        return out

    def batched(self, node: Placeholder) -> jax.Array:
        """The values of a point-wise root, ``(n, ...)``."""
        if node.id not in self.pmemo:
            if node.id not in self.plan.pw_roots:
                raise KeyError(f"node {node!r} was not planned as a point-wise root")
            self._run_batch((ps_key(node.pointset), self.plan.plevel(node)))
        return self.pmemo[node.id]

    def _run_batch(self, batch_key):
        pk, _ = batch_key
        rids = self.plan.batches[batch_key]
        roots = [self.plan.nodes[r] for r in rids]
        for r in roots:  # global values used inside the per-point functions
            for g in self.plan.global_deps(r):
                self.value(g)
        rows = self.inputs[pk]

        def per_point(row):
            at = _point_of(row)
            return tuple(self.point(r, at) for r in roots)

        vm_rows = {
            "coords": rows["coords"],
            "data": rows["data"],
            "noise": rows["noise"],
            "hoisted": rows.get("hoisted", {}),
            "index": jnp.arange(rows["coords"].shape[0]),
        }
        outs = jax.vmap(per_point)(vm_rows)
        for r, o in zip(roots, outs):
            self.pmemo[r.id] = o

    def hoisted_values(self) -> dict:
        """``{pointset key: {hoist key: (n, ...)}}`` of the plan's hoistable nodes on
        ``inputs`` (no parameters needed: they depend on none)."""
        out = {}
        for pk, ids in self.plan.hoistable.items():
            nodes = [self.plan.nodes[i] for i in ids]
            rows = self.inputs[pk]

            def per_point(row, nodes=nodes):
                at = _point_of(row)
                return {hoist_key(n): self.point(n, at) for n in nodes}

            vm_rows = {
                "coords": rows["coords"],
                "data": rows["data"],
                "noise": rows["noise"],
                "index": jnp.arange(rows["coords"].shape[0]),
            }
            out[pk] = jax.vmap(per_point)(vm_rows)
        return out

    # ------------------------------------------------------------------ per-point level
    def on_points(self, node: Placeholder, compute) -> jax.Array:
        """``compute(coords)`` for ``node``'s point set's current rows ``(n, d)``, once per
        evaluation: a forward model's values at every point, read row by row."""
        if node.id not in self.gmemo:
            self.gmemo[node.id] = compute(self.inputs[ps_key(node.pointset)]["coords"])
        return self.gmemo[node.id]

    def point(self, node: Placeholder, at: Point) -> jax.Array:
        """The value of ``node`` at the point ``at`` (inside the vmapped per-point function):
        a hoisted value if there is one, a global value as it is, else the node's lowering."""
        if node.id in at.memo:
            return at.memo[node.id]
        key = hoist_key(node)
        if key in at.hoisted:
            out = at.hoisted[key]
        elif not node.per_point:
            out = self.value(node)
        elif node.id in self.plan.derivatives and node.id not in at.inside:
            # its value comes with its derivatives', from one nest of JVPs
            return lower_derivatives(self, node, self.plan.derivatives[node.id], at)[node.id]
        else:
            out = node.lower_point(self, at)
        at.memo[node.id] = out
        return out


def draw_noise(plan: GraphPlan, key, registry: dict | None = None) -> dict:
    """One fixed draw of every noise node on every point set it is used with.

    Each (noise, point set) pair draws from ``fold_in(fold_in(key, i), j)`` where ``i`` and
    ``j`` number the noise nodes and point sets in order of first use (``registry`` keeps
    the numbering across plans), so the same script gives the same data in any process.
    """
    registry = {} if registry is None else registry
    out: dict[str, dict[str, jax.Array]] = {}
    for pk, noises in sorted(plan.noise_on.items(), key=lambda kv: plan.pointsets[kv[0]].id):
        ps = plan.pointsets[pk]
        j = registry.setdefault(("ps", ps.id), len(registry))
        out[pk] = {}
        for nk, noise in sorted(noises.items(), key=lambda kv: kv[1].id):
            i = registry.setdefault(("noise", noise.id), len(registry))
            sub = jax.random.fold_in(jax.random.fold_in(key, i), j)
            out[pk][nk] = noise.sample(sub, (ps.size,))
    return out


def full_inputs(plan: GraphPlan, noise: dict) -> dict:
    """Every point of every point set, with its data and noise rows; ``scale = 1``."""
    inputs = {}
    for pk, ps in plan.pointsets.items():
        inputs[pk] = {
            "coords": jnp.asarray(ps.coords),
            "data": {k: jnp.asarray(v) for k, v in ps.data.items()},
            "noise": dict(noise.get(pk, {})),
            "scale": ALL_ROWS,
        }
    return inputs


def subsample_inputs(inputs: dict, indices: dict) -> dict:
    """Rows ``indices[pk]`` of each point set, with ``scale = N/n`` for sum-like reductions."""
    out = {}
    for pk, rows in inputs.items():
        idx = indices.get(pk)
        if idx is None:
            out[pk] = rows
            continue
        n_full = rows["coords"].shape[0]
        take = lambda a: jnp.take(a, idx, axis=0)  # noqa: E731
        out[pk] = {
            **rows,
            "coords": take(rows["coords"]),
            "data": jax.tree.map(take, rows["data"]),
            "noise": jax.tree.map(take, rows["noise"]),
            "scale": RowScale(n_full / idx.shape[0]),
        }
        if "hoisted" in rows:
            out[pk]["hoisted"] = jax.tree.map(take, rows["hoisted"])
    return out


def hoist_inputs(plan: GraphPlan, statics: dict, inputs: dict) -> dict:
    """``inputs`` with ``inputs[pk]["hoisted"]``: the plan's parameter-free point-wise
    sub-expressions evaluated once on these rows (module docstring, *Hoisting*). Evaluating
    on the result gives the values of evaluating on ``inputs``, without that work."""
    if not plan.hoistable:
        return inputs
    values = Evaluator(plan, statics, {}, inputs).hoisted_values()
    return {
        pk: ({**rows, "hoisted": values[pk]} if pk in values else rows)
        for pk, rows in inputs.items()
    }
