"""Where a solve runs: the device mesh, the chain method, and the placement of the state.

A solve has two parallel axes, both named axes of one :class:`jax.sharding.Mesh`:

``"chains"``
    the population axis: MCMC chains or ensemble members (the leading ``(K,)`` / ``(E,)``
    axis of every population block's state);
``"points"``
    the collocation points: the leading ``(N,)`` axis of every point set's coordinates,
    data and noise in ``SolveState.inputs``. The losses reduce over points with means and
    sums; XLA inserts the collectives (data-parallel training is one argument).

The chain method says how the population is mapped, as in NumPyro:

``"vectorized"``
    ``jax.vmap`` over the K chains: one program for all chains on every device (group).
``"sequential"``
    ``jax.lax.map`` over the chains: one chain at a time, peak memory about flat in K.
``"parallel"``
    the chains sharded over the ``"chains"`` mesh axis with ``jax.shard_map`` (manual over
    ``"chains"`` only, so the ``"points"`` axis stays automatic); each device vmaps its own
    K/D chains, with its own NUTS loops (no collective per leapfrog step).

On several processes (``jax.distributed.initialize``) the mesh spans every process's
devices: chains are split across processes, the records of each chunk are replicated so
every process holds ``posterior_samples``, and checkpoints are written by process 0.

The promise (``docs/scale_out.md``): one layout (mesh shape, processes, chain method)
repeated gives bit-identical draws; different layouts give the same first transition to
float32 round-off and the same posterior (different compiled programs round differently,
and NUTS trajectories amplify the last digits).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger("jno")

CHAIN_METHODS = ("vectorized", "sequential", "parallel")
CHAINS, POINTS = "chains", "points"
AXES = (CHAINS, POINTS)


def vmap_population(fn, size: int, in_axes):
    """``jax.vmap(fn, in_axes)``; with one element, a plain call on element 0 with a unit
    axis added to every output (a vmapped NUTS while-loop compiles to a larger program)."""
    if size > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def single(*args):
        out = fn(*[_take(ax, a, 0) for ax, a in zip(in_axes, args)])
        return jax.tree.map(lambda a: jnp.expand_dims(a, 0), out)

    return single


def map_sequential(fn, size: int, in_axes):
    """``fn`` over the ``size`` elements one at a time (``jax.lax.map``): the outputs are
    stacked along a new leading axis as with ``vmap``, the memory is one element's."""
    if size == 1:
        return vmap_population(fn, 1, in_axes)

    def run(*args):
        def one(i):
            return fn(*[_take(ax, a, i) for ax, a in zip(in_axes, args)])

        return jax.lax.map(one, jnp.arange(size))

    return run


def _take(ax, arg, i):
    """Element ``i`` of ``arg`` along the axes ``ax`` (``0``, ``None``, or a list of them)."""
    if ax is None:
        return arg
    if isinstance(ax, (list, tuple)):
        return type(arg)(_take(a, x, i) for a, x in zip(ax, arg))
    return jax.tree.map(lambda a: a[i], arg)


def _specs(ax):
    """``shard_map`` in-specs for ``in_axes``: ``0`` is sharded over chains, ``None`` not."""
    if isinstance(ax, (list, tuple)):
        return type(ax)(_specs(a) for a in ax)
    return PartitionSpec() if ax is None else PartitionSpec(CHAINS)


def as_mesh(mesh) -> Mesh | None:
    """A ``Mesh`` (axes a subset of ``("chains", "points")``), axis sizes ``{"chains": 2,
    "points": 2}`` laid over ``jax.devices()`` (every process's), or ``None``.

    Raises:
        TypeError / ValueError: another type, unknown axis names, or sizes that do not fit
            the devices.
    """
    if mesh is None:
        return None
    if isinstance(mesh, Mesh):
        names = tuple(mesh.axis_names)
        _check_names(names)
        # automatic axes: the population is mapped explicitly, the points by XLA
        return Mesh(mesh.devices, names)
    if isinstance(mesh, dict):
        _check_names(tuple(mesh))
        sizes = {}
        for name, size in mesh.items():
            if not isinstance(size, int) or isinstance(size, bool) or size < 1:
                raise ValueError(
                    f"jno.core(mesh=...): axis {name!r} needs a positive int size, got {size!r}"
                )
            sizes[name] = size
        devices = jax.devices()
        n = int(np.prod(list(sizes.values())))
        if n > len(devices):
            raise ValueError(
                f"jno.core(mesh={mesh}): {n} devices asked for, {len(devices)} available "
                f"({devices[0].platform}); shrink the axis sizes."
            )
        grid = np.array(devices[:n], dtype=object).reshape(tuple(sizes.values()))
        return Mesh(grid, tuple(sizes))
    raise TypeError(
        "jno.core(mesh=...): pass a jax.sharding.Mesh with axes 'chains' and/or 'points', or "
        f"their sizes as a dict such as {{'chains': 2, 'points': 2}}; got {type(mesh).__name__}"
    )


def _check_names(names: tuple) -> None:
    bad = [n for n in names if n not in AXES]
    if bad or len(set(names)) != len(names) or not names:
        raise ValueError(
            f"jno.core(mesh=...): the mesh axes must be 'chains' (chains, ensemble members) "
            f"and/or 'points' (collocation points), each once; got {names}."
        )


def check_chain_method(chain_method) -> None:
    if chain_method is not None and chain_method not in CHAIN_METHODS:
        raise ValueError(
            f"jno.core(chain_method=...): one of {', '.join(map(repr, CHAIN_METHODS))} "
            f"(or None: 'parallel' over a chains mesh axis, else 'vectorized'); "
            f"got {chain_method!r}"
        )


@dataclass(frozen=True)
class Layout:
    """The resolved placement of one solve: the chain method and the mesh (``None``: one
    device, nothing placed)."""

    method: str
    mesh: Mesh | None

    def size(self, axis: str) -> int:
        if self.mesh is None or axis not in self.mesh.axis_names:
            return 1
        return int(self.mesh.shape[axis])

    def describe(self) -> str:
        if self.mesh is None:
            return f"chain_method={self.method!r} on one device"
        shape = ", ".join(f"{k}={v}" for k, v in self.mesh.shape.items())
        return (
            f"chain_method={self.method!r} on a mesh ({shape}) over {self.mesh.size} devices "
            f"in {jax.process_count()} process(es)"
        )

    # ------------------------------------------------------------------ mapping
    def map(self, fn: Callable, size: int, in_axes, *, placed: bool = True):
        """``fn`` mapped over the population axis (``in_axes`` as in ``vmap``: the outputs
        gain a leading ``(size,)`` axis) by the chain method. ``placed=False`` (the set-up
        before the state is placed on the mesh) runs ``parallel`` as ``vectorized``."""
        if self.method == "sequential":
            return map_sequential(fn, size, in_axes)
        d = self.size(CHAINS)
        if self.method == "vectorized" or not placed or d == 1:
            return vmap_population(fn, size, in_axes)
        local = vmap_population(fn, size // d, in_axes)
        return jax.shard_map(
            local,
            mesh=self.mesh,
            in_specs=tuple(_specs(ax) for ax in in_axes),
            out_specs=PartitionSpec(CHAINS),
            axis_names={CHAINS},
            check_vma=False,
        )

    def pool(self, fn: Callable, size: int, in_axes):
        """Like :meth:`map` for a population average that is differentiated (the optax
        group's pooled loss): ``vmap`` (XLA partitions it over a sharded population) or,
        for ``sequential``, ``lax.map``."""
        if self.method == "sequential":
            return map_sequential(fn, size, in_axes)
        return jax.vmap(fn, in_axes=in_axes)

    # ------------------------------------------------------------------ placement
    def shardings(self, state, plan, *, report: bool = False):
        """A pytree of ``NamedSharding`` like ``state`` (``None`` without a mesh): population
        block states over ``"chains"`` (``parallel``), point-set rows over ``"points"``,
        everything else replicated."""
        if self.mesh is None:
            return None
        rep = NamedSharding(self.mesh, PartitionSpec())
        chained = (
            NamedSharding(self.mesh, PartitionSpec(CHAINS))
            if self.method == "parallel" and self.size(CHAINS) > 1
            else rep
        )
        blocks = tuple(
            jax.tree.map(lambda _: chained if blk.population else rep, bs)
            for blk, bs in zip(plan.blocks, state.blocks)
        )
        inputs = {pk: self._point_shardings(pk, rows, report) for pk, rows in state.inputs.items()}
        return state._replace(
            point=jax.tree.map(lambda _: rep, state.point),
            inputs=inputs,
            blocks=blocks,
            step=rep,
            grad_evals=rep,
            balance=jax.tree.map(lambda _: rep, state.balance),
        )

    def _point_shardings(self, pk: str, rows: dict, report: bool):
        """Rows of point set ``pk`` over ``"points"``; a set whose size the axis does not
        divide (a boundary's few points) is replicated."""
        rep = NamedSharding(self.mesh, PartitionSpec())
        d = self.size(POINTS)
        n = int(np.shape(rows["coords"])[0])
        if d == 1 or n % d:
            if d > 1 and report:
                log.info(
                    "Point set %s: %d points, not divisible by the 'points' axis of %d "
                    "devices; replicated.",
                    pk,
                    n,
                    d,
                )
            return jax.tree.map(lambda _: rep, rows)
        rowwise = NamedSharding(self.mesh, PartitionSpec(POINTS))
        return jax.tree.map(
            lambda a: rowwise if np.ndim(a) >= 1 and np.shape(a)[0] == n else rep, rows
        )

    def place(self, state, plan):
        """``state`` laid out on the mesh (unchanged without one). Every process passes the
        same values; each keeps the shards of its own devices."""
        shardings = self.shardings(state, plan, report=True)
        if shardings is None:
            return state
        if jax.process_count() == 1:
            return jax.device_put(state, shardings)
        host = jax.device_get(state)
        return jax.tree.map(
            lambda a, s: jax.make_array_from_callback(np.shape(a), s, lambda idx: a[idx]),
            host,
            shardings,
        )

    def constrain(self, state, plan):
        """Inside ``jit``: keep ``state`` in its placement (what the next chunk expects)."""
        shardings = self.shardings(state, plan)
        if shardings is None:
            return state
        return jax.lax.with_sharding_constraint(state, shardings)

    def replicate(self, tree):
        """Inside ``jit``: ``tree`` replicated on every device (every process can read it)."""
        if self.mesh is None:
            return tree
        return jax.lax.with_sharding_constraint(tree, NamedSharding(self.mesh, PartitionSpec()))

    def gather(self, tree):
        """``tree`` readable on this process: unchanged in one process; on several, gathered
        from every process as NumPy arrays (a collective: every process must call it)."""
        if jax.process_count() == 1:
            return tree
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(tree, tiled=True)


def resolve(mesh: Mesh | None, chain_method: str | None, population: int) -> Layout:
    """The layout of a solve with ``population`` chains (or members).

    Defaults: with no mesh and no method, every device on the ``"chains"`` axis with
    ``parallel`` when the population divides evenly over more than one device (else
    ``vectorized`` on one device); with a mesh, ``parallel`` when its ``"chains"`` axis has
    more than one device.
    """
    if mesh is None and chain_method in (None, "parallel"):
        devices = jax.devices()
        fits = population > 1 and len(devices) > 1 and population % len(devices) == 0
        if fits:
            mesh = Mesh(np.array(devices, dtype=object), (CHAINS,))
        elif chain_method == "parallel":
            raise ValueError(
                f"jno.core(chain_method='parallel'): {population} chain(s) do not divide over "
                f"{len(devices)} device(s); pass mesh={{'chains': D}} with D dividing "
                f"{population}, or chain_method='vectorized'."
            )
    layout = Layout("vectorized", mesh)
    d = layout.size(CHAINS)
    if chain_method is None:
        chain_method = "parallel" if d > 1 else "vectorized"
    if d > 1 and chain_method != "parallel":
        raise ValueError(
            f"jno.core(chain_method={chain_method!r}): the mesh's 'chains' axis has {d} "
            "devices, but this method runs every chain on each device; use "
            "chain_method='parallel' or a mesh without a 'chains' axis."
        )
    if d > 1 and population % d:
        raise ValueError(
            f"jno.core(mesh=...): {population} chain(s) or ensemble member(s) do not divide "
            f"over the 'chains' axis of {d} devices; set num_chains (or the ensemble size) "
            f"to a multiple of {d}."
        )
    return Layout(chain_method, mesh)
