"""Batched inference: independent MCMC solves on a stack of datasets in one compiled program.

``crux.solve_batch({y: ys})`` with ``ys`` of shape ``(D, *y.shape)`` runs ``D`` inferences,
each what ``crux.condition({y: ys[d]}, dataset=d)`` followed by ``crux.solve()`` runs:

* the solve state gets a leading dataset axis: the inputs hold dataset ``d``'s arrays (the
  arrays not named in ``datasets`` are shared), the models start at their initial values;
* dataset ``d`` draws every key from its own streams,
  :func:`~jno.solve.streams.dataset_streams` ``(crux streams, d)``; the streams are an
  argument of the compiled functions, so ``jax.vmap`` over ``(streams, state)`` turns the
  single-dataset init, window adaptation and chunk into the batched ones;
* the schedule is the default one of ``crux.solve()``: adaptation, the rest of the warm-up,
  then ``keep`` records of ``thin`` steps, as one scan.

The vmapped program is not the single-dataset program: XLA vectorises and fuses batched
operations differently, so the draws equal the separate solves' to float32 round-off, not bit
for bit, and NUTS can grow a last-place difference along its trajectories until the chains
part (measured: 4 datasets x 2 chains bit for bit; 64 x 2 a median difference of 0.3
posterior sd, every draw still a draw of the same posterior). ``group=1`` runs the datasets one
after another inside the compiled program (``jax.lax.map``), each on the single solve's own
program: bit for bit the separate solves.

With ``mesh=`` (a :class:`jax.sharding.Mesh`) the dataset axis is sharded over the mesh's
first axis (``D`` must be a multiple of its size) and ``jit`` runs each device's datasets
where they live.
"""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np

from . import starts
from .condition import replace, resolve
from .engine import Engine
from .layout import Layout
from .plan import block_initializer
from .results import Recorder, posterior_of
from .schedule import sampling_chunk
from .starts import nonfinite_rows
from .streams import dataset_streams


class BatchPosterior:
    """The posteriors of ``num_datasets`` independent inferences.

    ``result[model]`` (or ``result.posterior_samples[name]``) is the model's draws with a
    leading dataset axis: ``(D, K, N, *param)`` with ``num_chains``, ``(D, N, *param)``
    without (a network: its module with those leading axes on every array leaf);
    ``result.diagnostics(model)`` the per-draw diagnostics ``{field: (D, K, N)}`` or ``None``.
    """

    def __init__(self, samples: dict, diagnostics: dict, num_datasets: int):
        self._samples = samples
        self._diagnostics = diagnostics
        self.num_datasets = num_datasets
        self.models = list(samples)

    @property
    def posterior_samples(self) -> dict:
        """``{model name: draws}`` (see the class docstring)."""
        return {m.model_name: s for m, s in self._samples.items()}

    def __getitem__(self, model):
        for m, s in self._samples.items():
            if m is model:
                return s
        raise KeyError(
            f"solve_batch: {getattr(model, 'where', model)!r} has no posterior draws; the "
            f"sampled models are {', '.join(m.where for m in self._samples)}"
        )

    def diagnostics(self, model):
        self[model]  # raises for a model without draws
        return next(d for m, d in self._diagnostics.items() if m is model)

    def __repr__(self) -> str:
        names = ", ".join(m.model_name for m in self._samples)
        return f"BatchPosterior({self.num_datasets} datasets: {names})"


def _check_plan(solver, where: str) -> None:
    if not solver.fastpath(None):
        raise ValueError(
            f"{where}: batched inference runs MCMC models only (.bayesian with NUTS, HMC, "
            "MALA, MCLMC or SG-MCMC, all with the same warmup, keep and thin); this crux also "
            "has optax, VI or ensemble models or unequal schedules. Solve each dataset with "
            "crux.condition(...) and crux.solve()."
        )
    for blk in solver.plan.sampling:
        if block_initializer(blk) is not None:
            raise ValueError(
                f"{where}: model(s) {blk.label} start from a log-density initializer, which "
                "runs eagerly per dataset; drop .initialize(...) for batched inference or "
                "solve each dataset with crux.condition(...) and crux.solve()."
            )


def _shard(tree, mesh, num_datasets: int, where: str):
    from jax.sharding import Mesh, NamedSharding, PartitionSpec

    if not isinstance(mesh, Mesh):
        raise TypeError(f"{where}: mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    axis = mesh.axis_names[0]
    size = mesh.shape[axis]
    if num_datasets % size:
        raise ValueError(
            f"{where}: {num_datasets} datasets do not split evenly over the {size} devices of "
            f"mesh axis {axis!r}; pass a multiple of {size} datasets."
        )
    return jax.device_put(tree, NamedSharding(mesh, PartitionSpec(axis)))


def solve_batch(
    solver, datasets: dict, *, first: int = 0, group: int | None = None, mesh=None
) -> BatchPosterior:
    """``D`` independent inferences, one per dataset, in one compiled program.

    Args:
        solver: the crux's :class:`~jno.solve.driver.Solver`.
        datasets: ``{key: (D, *shape)}`` with the keys of ``crux.condition`` (data
            placeholders, noise leaves, point sets); ``shape`` is the replaced array's.
        first: the index of the first dataset: dataset ``d`` of the stack runs on the
            streams of index ``first + d`` (a long run split into batches keeps its keys).
        group: datasets vectorised together. ``None`` (default): all of them, one
            ``jax.vmap`` (the fast choice on accelerators); ``1``: one after the other in the
            same compiled program (``jax.lax.map``: each dataset runs the single solve's
            program, so its draws are those of ``condition`` + ``solve`` bit for bit, and on
            a CPU it is often the faster choice); ``k``: ``lax.map`` over groups of ``k``
            vmapped datasets.
        mesh: shard the dataset axis over this mesh's first axis (optional).

    Returns:
        A :class:`BatchPosterior`.
    """
    where = "crux.solve_batch"
    if group is not None and (not isinstance(group, int) or isinstance(group, bool) or group < 1):
        raise ValueError(f"{where}: group must be a positive int or None, got {group!r}")
    # Each dataset runs the single-device program: the crux's chain layout (chains sharded
    # over the local devices by default) does not nest inside the dataset vmap, and with
    # ``mesh=`` the datasets are what is sharded.
    engine = copy.copy(solver.engine_for(None, None))
    engine.layout = Layout("vectorized", None)
    _check_plan(solver, where)
    if not isinstance(first, int) or isinstance(first, bool) or first < 0:
        raise ValueError(f"{where}: first must be a non-negative int, got {first!r}")
    inputs, count = _stacked_inputs(solver.program, datasets, where)
    streams = jax.vmap(lambda d: dataset_streams(solver.base_streams, d))(first + jnp.arange(count))
    if mesh is not None:
        inputs, streams = _shard((inputs, streams), mesh, count, where)
    batched = _batched(solver, engine, group)
    state = batched("init", starts.init_state, (None, 0))(streams, solver.initial, inputs)
    _check_finite(engine, state, where)
    if engine.adapting():
        state = batched("adapt", Engine.adapt, (0,))(streams, state)
    s = solver.plan.blocks[0].settings
    stop = s.warmup + s.keep * s.thin
    step, records = int(np.asarray(state.step)[0]), None
    while step < stop:  # the rest of the warm-up in one chunk, then every kept draw in one
        limit = s.warmup - step if step < s.warmup else s.keep
        chunk = sampling_chunk(step, stop, limit, s.warmup, s.thin)
        run = batched(
            chunk.name,
            Engine.run_chunk,
            (0, None),
            **chunk.run_arguments(),
        )
        state, out = run(streams, state, jnp.asarray(chunk.stop, jnp.int32))
        records = out if chunk.records else records
        step = chunk.stop
    records = jax.tree.map(np.asarray, records)
    samples, diagnostics = _posteriors(solver, engine, state, records, streams, count)
    return BatchPosterior(samples, diagnostics, count)


def _posteriors(solver, engine, state, records, streams, count: int):
    """``({model: (D, ...) samples}, {model: {field: (D, ...)} or None})``: each dataset's
    posterior, as its own solve would publish it, stacked."""
    per_dataset = []
    for d in range(count):
        recorder = Recorder(solver.plan.blocks)
        recorder.add(jax.tree.map(lambda a, d=d: a[d], records))
        state_d = jax.tree.map(lambda a, d=d: a[d], state)
        streams_d = jax.tree.map(lambda a, d=d: a[d], streams)
        per_dataset.append(posterior_of(engine, state_d, recorder, streams_d, True))
    samples, diagnostics = {}, {}
    for m in per_dataset[0]:
        samples[m] = jax.tree.map(lambda *a: np.stack(a), *[p[m][0] for p in per_dataset])
        diags = [p[m][1] for p in per_dataset]
        diagnostics[m] = (
            None if diags[0] is None else {k: np.stack([g[k] for g in diags]) for k in diags[0]}
        )
    return samples, diagnostics


def _stacked_inputs(program, datasets: dict, where: str):
    """``(inputs with a leading (D,) axis, D)``: the datasets' arrays, the rest shared."""
    resolved, count = resolve(program, program.inputs, datasets, where, True)
    if count == 0:
        raise ValueError(f"{where}: the datasets are empty (leading axis 0)")
    shared = jax.tree.map(lambda a: jnp.broadcast_to(a, (count,) + jnp.shape(a)), program.inputs)
    return replace(shared, resolved), count


def _batched(solver, engine, group: int | None):
    """``batched(name, fn, in_axes, **static)``: ``fn(engine, *args)`` over the datasets
    (each on its own streams), compiled once by the solver."""

    def batched(name, fn, in_axes, **static):
        def over_datasets(keys, *args, **kw):
            def one(k, *a):
                return fn(engine.with_streams(k), *a, **kw)

            if group is None:
                return jax.vmap(one, in_axes=(0, *in_axes))(keys, *args)

            def body(xs):
                k, mapped = xs
                it = iter(mapped)
                return one(k, *[next(it) if ax == 0 else a for a, ax in zip(args, in_axes)])

            mapped = [a for a, ax in zip(args, in_axes) if ax == 0]
            return jax.lax.map(body, (keys, mapped), batch_size=None if group == 1 else group)

        tag = "" if group is None else f"[{group}]"
        return solver.jit(f"batch{tag}/{name}", over_datasets, **static)

    return batched


def _check_finite(engine, state, where: str) -> None:
    """Every chain of every dataset starts where the log-density is finite (the single solve
    would draw new starts; the batch asks for a better start instead)."""
    for blk, bs in zip(engine.blocks, state.blocks):
        bad = nonfinite_rows(bs.kernel, 1)
        if bad is not None and bad.any():
            raise ValueError(
                f"{where}: model(s) {blk.label}: the log-density is not finite at the start "
                f"of dataset(s) {np.nonzero(bad)[0][:5].tolist()}; start the models where every "
                "dataset's residual is defined (.initialize(value))."
            )
