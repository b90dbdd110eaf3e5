"""Chain starts: the initial solve state, initializers, and new starts for non-finite chains.

Every function takes the :class:`~jno.solve.engine.Engine` of the solve first (its
objectives, streams and layout); the driver compiles them with the key streams as an
argument, so a dataset's streams reuse one program.
"""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np

from ..family import accepts
from ..trace.pointset import default_float
from . import streams as st
from .blocks.base import drop_masked, field_of, jitter_tree, strong_types, take_masked
from .blocks.ensemble import member_starts
from .plan import block_initializer
from .state import BlockState, SolveState

log = logging.getLogger("jno")

MAX_RESTARTS = 10  # new starts tried for a chain whose log-density is not finite
RESTART_RADIUS = 2.0  # uniform(-r, r) around the start, as Stan and NumPyro do


def block_position(blk, params: dict) -> dict:
    """``{member key: pytree}``: the part of the models' ``params`` the block moves."""
    return {mem.key: take_masked(params[mem.model_key], mem.mask) for mem in blk.members}


def init_state(engine, params: dict, inputs: dict) -> SolveState:
    """The solve state at ``params`` on ``inputs`` (``Program.inputs``); chain starts are
    dispersed by ``init_jitter`` and ensemble members drawn around ``params``."""
    point = dict(params)
    starts, tuned = [], []
    for b, blk in enumerate(engine.blocks):
        pos = block_position(blk, params)
        for mem in blk.members:
            point[mem.model_key] = drop_masked(point[mem.model_key], mem.mask)
        if blk.population == "chains":
            jitter = getattr(blk.settings, "init_jitter", 0.0)
            keys = st.jitter_keys(engine.streams, b, engine.P)
            start = jax.vmap(lambda k, pos=pos, j=jitter: jitter_tree(k, pos, j))(keys)
        elif blk.population == "members":
            start = member_starts(pos, engine.P, st.ensemble_key(engine.streams, b))
        else:
            start = pos
        starts.append(start)
        t = blk.tuning(pos)
        if blk.population:
            t = jax.tree.map(lambda a: jnp.broadcast_to(a, (engine.P,) + a.shape), t)
        tuned.append(t)
    balancer = engine.balancer
    state = SolveState(
        point=point,
        inputs=inputs,
        blocks=(),
        step=jnp.zeros((), jnp.int32),
        grad_evals=jnp.zeros((), default_float()),
        balance=None if balancer is None else balancer.init(len(engine.program.constraints)),
    )
    return init_kernels(engine, state, starts, tuned)


def init_kernels(engine, state: SolveState, starts: list, tuned: list) -> SolveState:
    """Kernel states at the block starts (each needs the others' starts)."""
    out = []
    for b, blk in enumerate(engine.blocks):
        if blk.population:

            def one(key, tuned_k, view, b=b, blk=blk):
                obj = engine.objective(b, state.point, view, state.inputs)
                return blk.init(key, view[b], obj, tuned_k)

            keys = st.kernel_keys(engine.streams, b, engine.P)
            mapped = engine.layout.map(one, engine.P, (0, 0, engine.pop_axes), placed=False)
            kernel = mapped(keys, tuned[b], starts)
        else:
            obj = engine.pooled_objective(b, state.point, starts, state.inputs)
            key = st.kernel_keys(engine.streams, b, 1)[0]
            kernel = blk.init(key, starts[b], obj, tuned[b])
        out.append(BlockState(strong_types(kernel), strong_types(tuned[b])))
    return state._replace(blocks=tuple(out))


def reinit_sampling(engine, state: SolveState) -> SolveState:
    """The kernel states of the MCMC blocks re-initialised at their positions on
    ``state.inputs`` (a kernel state caches the log-density of the data it was made on),
    adapted arguments kept; VI, optax and ensemble states unchanged (a warm start on new
    data)."""
    tuned = [bs.tuned for bs in state.blocks]
    fresh = init_kernels(engine, state, engine.positions(state), tuned)
    blocks = tuple(
        new if blk.samples and not blk.variational else old
        for blk, new, old in zip(engine.blocks, fresh.blocks, state.blocks)
    )
    return state._replace(blocks=blocks)


def apply_initializers(engine, state: SolveState) -> SolveState:
    """Run each sampling block's log-density initializer (eagerly: initializers compile
    their own work and may check their results), then re-initialise the kernels.

    The new position replaces every chain's start (``init_jitter`` is overridden); the
    returned kernel arguments are kept when the block tunes them or the kernel takes them.
    """
    starts = engine.positions(state)
    tuned = [bs.tuned for bs in state.blocks]
    params = engine.program.initial_params()
    initial = [block_position(blk, params) for blk in engine.blocks]
    changed = False
    for b, blk in enumerate(engine.blocks):
        init = block_initializer(blk) if blk.samples else None
        if init is None or blk.variational:
            continue
        obj = engine.objective(b, state.point, initial, state.inputs)
        logd = jax.jit(blk.log_posterior(obj))
        new_pos, update = init(st.init_key(engine.streams, b), logd, initial[b], engine.P)
        if engine.P == 1:
            new_pos = jax.tree.map(lambda a: jnp.asarray(a)[None], new_pos)
        _check_starts(init, new_pos, starts[b], engine.P, blk.label)
        starts[b] = jax.tree.map(lambda a, ref: jnp.asarray(a, ref.dtype), new_pos, starts[b])
        for name, value in update.items():
            if name in tuned[b] or accepts(blk.settings.factory, name):
                if name == "inverse_mass_matrix":
                    value = blk.metric_argument(value)
                value = jax.tree.map(lambda a: jnp.asarray(a, default_float()), value)
                value = jax.tree.map(lambda a: jnp.broadcast_to(a, (engine.P,) + a.shape), value)
                tuned[b] = {**tuned[b], name: value}
        changed = True
    if not changed:
        return state
    return jax.jit(lambda s, p, t: init_kernels(engine, s, p, t))(state, starts, tuned)


def nonfinite_rows(kernel, lead: int) -> np.ndarray | None:
    """Flags of the rows of ``kernel``'s first ``lead`` axes (chains; datasets and chains)
    whose log-density or its gradient is not finite; ``None`` for a family that keeps
    neither."""
    ld = field_of(kernel, "logdensity")
    if ld is None:
        return None
    ld = np.asarray(ld)
    shape = ld.shape[:lead]
    ok = np.isfinite(ld).reshape(shape + (-1,)).all(axis=-1)
    for leaf in jax.tree.leaves(field_of(kernel, "logdensity_grad")):
        ok &= np.isfinite(np.asarray(leaf)).reshape(shape + (-1,)).all(axis=-1)
    return ~ok


def ensure_finite_starts(engine, state: SolveState) -> SolveState:
    """Retry the starts of chains whose log-density or gradient is not finite.

    A chain started where the log-density is NaN rejects every proposal and returns its
    start as the "posterior". Like Stan and NumPyro, up to :data:`MAX_RESTARTS` new starts
    ``start + U(-2, 2)`` are tried for those chains (logged); if none is finite a
    ``ValueError`` names the model and the constraints that are not finite there.
    """
    starts = engine.positions(state)
    tuned = [bs.tuned for bs in state.blocks]
    bad = _nonfinite_chains(engine, state)
    if not any(np.any(x) for x in bad):
        return state
    original = list(starts)
    init = jax.jit(lambda s, p, t: init_kernels(engine, s, p, t))
    for attempt in range(1, MAX_RESTARTS + 1):
        for b, flags in enumerate(bad):
            if np.any(flags):
                keys = st.restart_keys(engine.streams, b, attempt, engine.P)
                moved = jax.vmap(_uniform_around)(keys, original[b])
                starts[b] = _select_rows(jnp.asarray(flags), moved, starts[b])
                log.warning(
                    "Model %s: the log-density or its gradient is not finite at the start of "
                    "chain(s) %s; new start %d/%d drawn within +-%g of it.",
                    engine.blocks[b].label,
                    np.nonzero(flags)[0].tolist(),
                    attempt,
                    MAX_RESTARTS,
                    RESTART_RADIUS,
                )
        state = init(state, starts, tuned)
        bad = _nonfinite_chains(engine, state)
        if not any(np.any(x) for x in bad):
            return state
    b = next(i for i, flags in enumerate(bad) if np.any(flags))
    raise ValueError(_nonfinite_message(engine, state, b, int(np.nonzero(bad[b])[0][0])))


def _select_rows(flags, new, old):
    """``new``'s rows where ``flags``, else ``old``'s (leading axis)."""
    return jax.tree.map(
        lambda a, b: jnp.where(flags.reshape((-1,) + (1,) * (a.ndim - 1)), a, b), new, old
    )


def _nonfinite_chains(engine, state: SolveState) -> list[np.ndarray]:
    """Per block, ``(P,)`` flags of chains whose log-density or gradient is not finite."""
    out = []
    for blk, bs in zip(engine.blocks, state.blocks):
        flags = nonfinite_rows(bs.kernel, 1) if blk.samples else None
        out.append(np.zeros(engine.P, bool) if flags is None else flags)
    return out


def _nonfinite_message(engine, state: SolveState, b: int, chain: int) -> str:
    params = engine.assemble(state.point, engine.element(state, chain))
    losses = np.asarray(engine.program.losses(params, state.inputs))
    names = [n for n, v in zip(engine.program.names, losses) if not np.isfinite(v)]
    where = (
        f"constraint(s) {', '.join(names)} are not finite there"
        if names
        else "every constraint is finite there, so the prior or a gradient is not"
    )
    return (
        f"Model {engine.blocks[b].label}: the log-density is not finite at the start of chain "
        f"{chain} after {MAX_RESTARTS} new starts within +-{RESTART_RADIUS:g}; {where}. Start "
        "the model where the residual is defined (.initialize(value)) or reparametrise it."
    )


def _uniform_around(key, tree):
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, max(len(leaves), 1))
    return jax.tree.unflatten(
        treedef,
        [
            leaf + jax.random.uniform(k, leaf.shape, leaf.dtype, -RESTART_RADIUS, RESTART_RADIUS)
            for leaf, k in zip(leaves, keys)
        ],
    )


def _check_starts(init, new_pos, ref, num_chains: int, label: str) -> None:
    """An initializer's starts must match the position with a leading ``(K,)`` axis."""
    want = jax.tree.map(lambda r: r.shape, ref)
    try:
        got = jax.tree.map(lambda a: jnp.shape(a), new_pos)
        ok = jax.tree.structure(got) == jax.tree.structure(want) and all(
            g == w for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want))
        )
    except Exception:
        ok, got = False, new_pos
    if not ok:
        raise ValueError(
            f"Model(s) {label}: the initializer {type(init).__name__} returned starts of shapes "
            f"{got}, expected {want}: with num_chains={num_chains} > 1 every leaf needs a "
            "leading (K,) axis (one start per chain); with one chain, no chain axis."
        )
