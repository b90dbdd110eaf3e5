"""One compiled step for every block of a solve, and the one chunked loop that runs it.

One step (global index ``i = state.step``), for every substep in turn (one substep, all
constraints and all models, unless ``substeps=`` is given):

1. each block that the substep moves, in plan order (sampling blocks as Gibbs blocks, then
   the optax group, then the ensemble), takes one step of its family on its objective with
   every other block held: population blocks (chains, members) vmapped over their leading
   axis, the optax group on the loss averaged over the population;
2. the per-constraint losses of the step are the optax group's (or ensemble's) pre-update
   losses, or, without one, the population-averaged losses after the step.

:meth:`Engine.run_chunk` scans ``length`` records of ``stride`` steps each; it serves the
general loop (``stride=1`` with losses) and the pure-sampling fastpath (``stride=thin``, no
losses, silent warm-up) alike, so both give the same draws: every key depends only on the
step index (:mod:`.streams`).
"""

from __future__ import annotations

import copy
import logging

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..lower.evaluate import subsample_inputs
from ..lower.program import Program
from ..trace.pointset import default_float
from . import streams as st
from .balance import check as check_balancer
from .balance import check_causal, residuals_of
from .blocks import Block
from .blocks.base import drop_masked, field_of, jitter_tree, take_masked
from .blocks.ensemble import member_starts
from .layout import Layout
from .plan import SolvePlan, block_initializer
from .state import BlockState, SolveState

log = logging.getLogger("jno")

MAX_RESTARTS = 10  # new starts tried for a chain whose log-density is not finite
RESTART_RADIUS = 2.0  # uniform(-r, r) around the start, as Stan and NumPyro do


class Engine:
    """The step and loop of one solve configuration.

    Args:
        program: the lowered constraints.
        plan: the blocks.
        streams: the named key streams of the crux.
        batch_size: points per point set per step (``None``: all).
        substeps: the resolved substeps (:func:`~jno.solve.plan.resolve_substeps`) or ``None``.
        balancer: a loss balancer (:mod:`.balance`) reweighting the optax group's loss.
        layout: the chain method and mesh (:mod:`.layout`); default: ``vmap`` on one device.
    """

    def __init__(
        self,
        program: Program,
        plan: SolvePlan,
        streams: st.KeyStreams,
        batch_size: int | None = None,
        substeps=None,
        balancer=None,
        layout: Layout | None = None,
    ):
        self.program = program
        self.layout = Layout("vectorized", None) if layout is None else layout
        self.plan = plan
        self.streams = streams
        self.batch_size = batch_size
        self.blocks: list[Block] = plan.blocks
        self.P = plan.population
        self.pop_axes = [0 if b.population else None for b in self.blocks]
        self.has_population = any(b.population for b in self.blocks)
        self.weights = [
            program.loglik_weights(getattr(b.settings, "likelihood_scale", 1.0))
            for b in self.blocks
        ]
        if substeps is None:
            everyone = {m.uid for m in program.models}
            substeps = [(np.ones(len(program.constraints), np.float32), everyone)]
        self.substeps = [(jnp.asarray(mask, default_float()), uids) for mask, uids in substeps]
        self.has_substeps = len(substeps) > 1 or not bool(np.all(substeps[0][0] == 1))
        check_balancer(balancer, program, plan)
        check_causal(program, plan)
        if balancer is not None and self.has_substeps:
            raise ValueError(
                f"crux.solve(substeps=...): not supported with jno.core(weights={balancer!r}); "
                "balance the whole loss or drop the substeps."
            )
        self.balancer = balancer
        if self.has_substeps and plan.optax is not None:
            plan.optax.check_substeps([uids for _, uids in substeps])
        # Kernel states are re-initialised each step when what they condition on moves.
        refresh = (
            len(plan.sampling) > 1
            or plan.optax is not None
            or batch_size is not None
            or bool(program.redrawn)
            or self.has_substeps
        )
        for b in plan.sampling:
            b.refresh = refresh
        # The objective is the same function at every step: L-BFGS may reuse its line search.
        if plan.optax is not None:
            plan.optax.static_objective = (
                len(self.blocks) == 1
                and balancer is None
                and batch_size is None
                and not program.redrawn
                and not self.has_substeps
            )

    def with_streams(self, streams: st.KeyStreams) -> Engine:
        """This engine drawing every key from ``streams`` (traced inside a compiled function,
        so one program serves every dataset's keys: ``crux.condition(..., dataset=d)`` and the
        vmapped ``solve_batch``)."""
        out = copy.copy(self)
        out.streams = streams
        return out

    # ------------------------------------------------------------------ objectives
    def assemble(self, point: dict, view: list) -> dict:
        """Full params from the held values and one population element's block positions."""
        params = dict(point)
        for blk, pos in zip(self.blocks, view):
            for mem in blk.members:
                piece = pos[mem.key]
                held = params[mem.model_key]
                params[mem.model_key] = (
                    piece if mem.mask is None or held is None else eqx.combine(piece, held)
                )
        return params

    def objective(self, b: int, point: dict, view: list, inputs, cmask=None):
        """``θ_b -> (Σ_k w_k L_k, L)`` for one population element's ``view`` of the other
        blocks; ``cmask`` restricts the sum to a substep's constraints."""
        w = self.weights[b] if cmask is None else self.weights[b] * cmask

        def f(pos_b):
            pos = list(view)
            pos[b] = pos_b
            losses = self.program.losses(self.assemble(point, pos), inputs)
            return jnp.sum(w * losses), losses

        return f

    def pooled_losses(self, point: dict, positions: list, inputs) -> jax.Array:
        """Per-constraint losses ``(C,)`` averaged over the population (chains, members)."""
        if not self.has_population:
            return self.program.losses(self.assemble(point, positions), inputs)

        def one(view):
            return self.program.losses(self.assemble(point, view), inputs)

        pooled = self.layout.pool(one, self.P, (self.pop_axes,))
        return jnp.mean(pooled(positions), axis=0)

    def pooled_objective(
        self, b: int, point: dict, positions: list, inputs, cmask=None, balance=None
    ):
        """The objective of a block without a population: the population-averaged loss;
        ``balance`` ``(C,)`` multiplies the weights (a loss balancer's, held constant)."""
        w = self.weights[b] if cmask is None else self.weights[b] * cmask
        if balance is not None:
            w = w * jax.lax.stop_gradient(balance)

        def f(pos_b):
            pos = list(positions)
            pos[b] = pos_b
            losses = self.pooled_losses(point, pos, inputs)
            return jnp.sum(w * losses), losses

        return f

    def view(self, state: SolveState) -> dict:
        """Full params of population element 0 (chain 0, member 0)."""
        view = [
            jax.tree.map(lambda a: a[0], p) if ax == 0 else p
            for p, ax in zip(self.positions(state), self.pop_axes)
        ]
        return self.assemble(state.point, view)

    def positions(self, state: SolveState) -> list:
        return [blk.position(bs.kernel) for blk, bs in zip(self.blocks, state.blocks)]

    # ------------------------------------------------------------------ state
    def init_state(self, params: dict, inputs: dict) -> SolveState:
        """The solve state at ``params`` on ``inputs`` (``Program.inputs``); chain starts
        are dispersed by ``init_jitter`` and ensemble members drawn around ``params``."""
        point = dict(params)
        starts, tuned = [], []
        for b, blk in enumerate(self.blocks):
            pos = {mem.key: take_masked(params[mem.model_key], mem.mask) for mem in blk.members}
            for mem in blk.members:
                point[mem.model_key] = drop_masked(point[mem.model_key], mem.mask)
            if blk.population == "chains":
                jitter = getattr(blk.settings, "init_jitter", 0.0)
                keys = st.jitter_keys(self.streams, b, self.P)
                start = jax.vmap(lambda k, pos=pos, j=jitter: jitter_tree(k, pos, j))(keys)
            elif blk.population == "members":
                start = member_starts(pos, self.P, st.ensemble_key(self.streams, b))
            else:
                start = pos
            starts.append(start)
            t = blk.tuning(pos)
            if self.balancer is not None and blk is self.plan.optax:
                t = {**t, "balance": self.balancer.init(len(self.program.constraints))}
            if blk.population:
                t = jax.tree.map(lambda a: jnp.broadcast_to(a, (self.P,) + a.shape), t)
            tuned.append(t)
        state = SolveState(
            point=point,
            inputs=inputs,
            blocks=(),
            step=jnp.zeros((), jnp.int32),
            grad_evals=jnp.zeros((), default_float()),
        )
        return self.init_kernels(state, starts, tuned)

    def init_kernels(self, state: SolveState, starts: list, tuned: list) -> SolveState:
        """Kernel states at the block starts (each needs the others' starts)."""
        out = []
        for b, blk in enumerate(self.blocks):
            if blk.population:

                def one(key, tuned_k, view, b=b, blk=blk):
                    obj = self.objective(b, state.point, view, state.inputs)
                    return blk.init(key, view[b], obj, tuned_k)

                keys = st.kernel_keys(self.streams, b, self.P)
                mapped = self.layout.map(one, self.P, (0, 0, self.pop_axes), placed=False)
                kernel = mapped(keys, tuned[b], starts)
            else:
                obj = self.pooled_objective(b, state.point, starts, state.inputs)
                kernel = blk.init(st.kernel_keys(self.streams, b, 1)[0], starts[b], obj, tuned[b])
            out.append(BlockState(kernel, tuned[b]))
        return state._replace(blocks=tuple(out))

    def restart_line_search(self, state: SolveState) -> SolveState:
        """``state`` with the optax group's L-BFGS-type optimizers started afresh
        (:meth:`~jno.solve.blocks.optax_group.OptaxBlock.restart_line_search`): call it when
        the points or data change between steps."""
        return self._optax_kernel(state, "restart_line_search")

    def forget_line_search(self, state: SolveState) -> SolveState:
        """``state`` with the optax group's kept line-search values forgotten
        (:meth:`~jno.solve.blocks.optax_group.OptaxBlock.forget_line_search`): call it when a
        new plan or engine takes over a state."""
        return self._optax_kernel(state, "forget_line_search")

    def _optax_kernel(self, state: SolveState, method: str) -> SolveState:
        opt = self.plan.optax
        if opt is None:
            return state
        b = self.blocks.index(opt)
        bs = state.blocks[b]
        blocks = list(state.blocks)
        blocks[b] = bs._replace(kernel=getattr(opt, method)(bs.kernel))
        return state._replace(blocks=tuple(blocks))

    def reinit_sampling(self, state: SolveState) -> SolveState:
        """The kernel states of the MCMC blocks re-initialised at their positions on
        ``state.inputs`` (a kernel state caches the log-density of the data it was made on),
        adapted arguments kept; VI, optax and ensemble states unchanged (a warm start on new
        data)."""
        fresh = self.init_kernels(state, self.positions(state), [bs.tuned for bs in state.blocks])
        blocks = tuple(
            new if blk.samples and not blk.variational else old
            for blk, new, old in zip(self.blocks, fresh.blocks, state.blocks)
        )
        return state._replace(blocks=blocks)

    def initial_view(self) -> list:
        """Every block's position at the model values, without a population axis."""
        params = self.program.initial_params()
        return [
            {mem.key: take_masked(params[mem.model_key], mem.mask) for mem in blk.members}
            for blk in self.blocks
        ]

    def apply_initializers(self, state: SolveState) -> SolveState:
        """Run each sampling block's log-density initializer (eagerly: initializers compile
        their own work and may check their results), then re-initialise the kernels.

        The new position replaces every chain's start (``init_jitter`` is overridden); the
        returned kernel arguments are kept when the block tunes them or the kernel takes them.
        """
        from ..trace.config import accepts

        starts = self.positions(state)
        tuned = [bs.tuned for bs in state.blocks]
        initial = self.initial_view()
        changed = False
        for b, blk in enumerate(self.blocks):
            init = block_initializer(blk) if blk.samples else None
            if init is None or blk.variational:
                continue
            obj = self.objective(b, state.point, initial, state.inputs)
            logd = jax.jit(blk.log_posterior(obj))
            new_pos, update = init(st.init_key(self.streams, b), logd, initial[b], self.P)
            if self.P == 1:
                new_pos = jax.tree.map(lambda a: jnp.asarray(a)[None], new_pos)
            _check_starts(init, new_pos, starts[b], self.P, blk.label)
            starts[b] = jax.tree.map(lambda a, ref: jnp.asarray(a, ref.dtype), new_pos, starts[b])
            for name, value in update.items():
                if name in tuned[b] or accepts(blk.settings.factory, name):
                    value = jnp.asarray(value, default_float())
                    tuned[b] = {**tuned[b], name: jnp.broadcast_to(value, (self.P,) + value.shape)}
            changed = True
        if not changed:
            return state
        return jax.jit(self.init_kernels)(state, starts, tuned)

    def ensure_finite_starts(self, state: SolveState) -> SolveState:
        """Retry the starts of chains whose log-density or gradient is not finite.

        A chain started where the log-density is NaN rejects every proposal and returns its
        start as the "posterior". Like Stan and NumPyro, up to :data:`MAX_RESTARTS` new starts
        ``start + U(-2, 2)`` are tried for those chains (logged); if none is finite a
        ``ValueError`` names the model and the constraints that are not finite there.
        """
        starts = self.positions(state)
        tuned = [bs.tuned for bs in state.blocks]
        bad = self._nonfinite_chains(state)
        if not any(np.any(x) for x in bad):
            return state
        original = list(starts)
        init = jax.jit(self.init_kernels)
        for attempt in range(1, MAX_RESTARTS + 1):
            for b, flags in enumerate(bad):
                if not np.any(flags):
                    continue
                keys = st.restart_keys(self.streams, b, attempt, self.P)
                moved = jax.vmap(_uniform_around)(keys, original[b])
                sel = jnp.asarray(flags)
                starts[b] = jax.tree.map(
                    lambda new, old: jnp.where(
                        sel.reshape((-1,) + (1,) * (new.ndim - 1)), new, old
                    ),
                    moved,
                    starts[b],
                )
            state = init(state, starts, tuned)
            bad_now = self._nonfinite_chains(state)
            for b, flags in enumerate(bad):
                if np.any(flags):
                    log.warning(
                        "Model %s: the log-density or its gradient is not finite at the start of "
                        "chain(s) %s; new start %d/%d drawn within +-%g of it.",
                        self.blocks[b].label,
                        np.nonzero(flags)[0].tolist(),
                        attempt,
                        MAX_RESTARTS,
                        RESTART_RADIUS,
                    )
            bad = bad_now
            if not any(np.any(x) for x in bad):
                return state
        b = next(i for i, flags in enumerate(bad) if np.any(flags))
        raise ValueError(self._nonfinite_message(state, b, int(np.nonzero(bad[b])[0][0])))

    def _nonfinite_chains(self, state: SolveState) -> list[np.ndarray]:
        """Per sampling block, ``(P,)`` flags of chains whose kernel state holds a
        non-finite log-density or gradient (families that keep neither: never flagged)."""
        out = []
        for blk, bs in zip(self.blocks, state.blocks):
            ld = field_of(bs.kernel, "logdensity") if blk.samples else None
            if ld is None:
                out.append(np.zeros(self.P, bool))
                continue
            ok = np.isfinite(np.asarray(ld))
            grad = field_of(bs.kernel, "logdensity_grad")
            for leaf in jax.tree.leaves(grad):
                ok &= np.all(np.isfinite(np.asarray(leaf)).reshape(self.P, -1), axis=1)
            out.append(~ok)
        return out

    def _nonfinite_message(self, state: SolveState, b: int, chain: int) -> str:
        view = [
            jax.tree.map(lambda a: a[chain], p) if ax == 0 else p
            for p, ax in zip(self.positions(state), self.pop_axes)
        ]
        losses = np.asarray(self.program.losses(self.assemble(state.point, view), state.inputs))
        names = [n for n, v in zip(self.program.names, losses) if not np.isfinite(v)]
        blk = self.blocks[b]
        where = (
            f"constraint(s) {', '.join(names)} are not finite there"
            if names
            else "every constraint is finite there, so the prior or a gradient is not"
        )
        return (
            f"Model {blk.label}: the log-density is not finite at the start of chain {chain} "
            f"after {MAX_RESTARTS} new starts within +-{RESTART_RADIUS:g}; {where}. Start the "
            "model where the residual is defined (.initialize(value)) or reparametrise it."
        )

    # ------------------------------------------------------------------ adaptation
    def adaptation_steps(self, warmup: int) -> int:
        """Adaptation steps out of ``warmup``: all of them for a single sampling block; half
        for Gibbs blocks, whose adaptation holds the other blocks at their starts, so the
        second half runs joint Gibbs sweeps with the adapted kernels (and is discarded)."""
        return warmup if len(self.plan.sampling) == 1 else max(1, warmup // 2)

    def adapting(self) -> list[Block]:
        return [b for b in self.plan.sampling if b.adapts(b.settings)]

    def adapt(self, state: SolveState) -> SolveState:
        """Warm-up tuning of every adapting block, each chain on its own (vmapped); the step
        index moves past the longest adaptation."""
        blocks = list(state.blocks)
        grads = state.grad_evals
        longest = 0
        hoisted = self.program.hoist(state.inputs)  # once, outside the adaptation loop
        for b, blk in enumerate(self.blocks):
            if not (blk.samples and blk.adapts(blk.settings)):
                continue
            n = self.adaptation_steps(blk.settings.warmup)
            longest = max(longest, n)
            positions = [p.position(bs.kernel) for p, bs in zip(self.blocks, blocks)]

            def one(key, bs, view, b=b, blk=blk, n=n):
                obj = self.objective(b, state.point, view, hoisted)
                return blk.adapt(key, bs, obj, n)

            keys = st.adapt_keys(self.streams, b, self.P)
            mapped = self.layout.map(one, self.P, (0, 0, self.pop_axes))
            blocks[b], used = mapped(keys, blocks[b], positions)
            grads = grads + jnp.sum(used)
        new = state._replace(blocks=tuple(blocks), step=state.step + longest, grad_evals=grads)
        return self.layout.constrain(new, self.plan)

    # ------------------------------------------------------------------ one step
    def step_inputs(self, inputs: dict, index):
        """This step's rows of ``inputs``: all points, or a subsample, with redrawn noise if
        asked for."""
        inputs = self.program.redraw_noise(inputs, st.redraw_key(self.streams, index))
        if self.batch_size is None:
            return inputs
        indices = {}
        for j, (pk, n) in enumerate(sorted(self.program.pointset_sizes().items())):
            if n > self.batch_size:
                key = st.batch_key(self.streams, index, j)
                indices[pk] = jax.random.choice(key, n, (self.batch_size,), replace=False)
        return subsample_inputs(inputs, indices)

    def step(self, state: SolveState, hoisted: dict | None = None) -> tuple[SolveState, dict]:
        """One outer step (see the module docstring). ``hoisted``: ``state.inputs`` with the
        parameter-free sub-expressions evaluated (``Program.hoist``), made once outside a loop
        of steps; ``None`` evaluates them in the step."""
        index = state.step
        inputs = self.step_inputs(state.inputs if hoisted is None else hoisted, index)
        point = state.point
        blocks = list(state.blocks)
        positions = self.positions(state)
        infos: list[dict] = [{} for _ in self.blocks]
        grads = state.grad_evals
        losses = None
        for cmask, uids in self.substeps:
            cm = cmask if self.has_substeps else None
            for b, blk in enumerate(self.blocks):
                moving = blk.for_substep(uids)
                if moving is None:
                    continue
                if blk.population:

                    def one(key, bs, view, b=b, moving=moving, cm=cm):
                        return moving.step(key, bs, self.objective(b, point, view, inputs, cm))

                    keys = st.step_keys(self.streams, index, b, self.P)
                    mapped = self.layout.map(one, self.P, (0, 0, self.pop_axes))
                    blocks[b], info = mapped(keys, blocks[b], positions)
                else:
                    key = st.step_keys(self.streams, index, b, 1)[0]
                    balance = None
                    if self.balancer is not None and blk is self.plan.optax:
                        blocks[b], balance = self.rebalance(
                            b, index, blocks[b], point, positions, inputs
                        )
                    obj = self.pooled_objective(b, point, positions, inputs, cm, balance)
                    blocks[b], info = moving.step(key, blocks[b], obj)
                    if balance is not None:
                        info = {**info, "balance_weights": balance}
                positions[b] = blk.position(blocks[b].kernel)
                info = dict(info)
                if "losses" in info:
                    step_losses = info.pop("losses")
                    losses = jnp.mean(step_losses, axis=0) if blk.population else step_losses
                if "num_integration_steps" in info:
                    grads = grads + jnp.sum(info["num_integration_steps"])
                infos[b] = info
        if self.has_substeps:
            losses = None
        new = state._replace(blocks=tuple(blocks), step=index + 1, grad_evals=grads)
        return new, {"losses": losses, "positions": positions, "infos": infos}

    def rebalance(self, b: int, index, bs: BlockState, point, positions, inputs):
        """The optax group's balancer state and weights ``(C,)`` for step ``index``."""

        def params_at(p):
            pos = list(positions)
            pos[b] = p
            return self.assemble(point, pos)

        new = self.balancer.update(
            bs.tuned["balance"],
            positions[b],
            losses_fn=lambda p: self.program.losses(params_at(p), inputs),
            residuals_fn=lambda p: residuals_of(self.program, params_at(p), inputs),
            key=st.balance_key(self.streams, index),
            step=index,
        )
        return bs._replace(tuned={**bs.tuned, "balance": new}), new.weights

    # ------------------------------------------------------------------ the loop
    def run_chunk(
        self,
        state: SolveState,
        stop,
        *,
        length: int,
        stride: int,
        with_losses: bool,
        partial: bool,
    ):
        """``length`` records of ``stride`` steps each (``stride - 1`` silent steps, then a
        recorded one). With ``partial``, steps at or past ``stop`` are no-ops (a solve's last
        chunk); a full chunk skips that select (one more compiled variant, never more).

        Returns the new state and ``{"step": (length,), "active": (length,), "positions":
        [block: (length, P, ...) or None], "infos": [...], "losses": (length, C)}``.
        """

        hoisted = self.program.hoist(state.inputs)  # once per chunk, outside the scan

        def advance(s):
            new, rec = self.step(s, hoisted)
            if partial:
                active = s.step < stop
                new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, s)
            return new, rec

        def body(s, _):
            if stride > 1:
                s = jax.lax.fori_loop(0, stride - 1, lambda i, x: advance(x)[0], s)
            index = s.step
            new, rec = advance(s)
            out = {
                "step": index,
                "active": index < stop,
                "positions": [
                    p if blk.records else None for p, blk in zip(rec["positions"], self.blocks)
                ],
                "infos": rec["infos"],
            }
            if with_losses:
                losses = rec["losses"]
                if losses is None:
                    losses = self.pooled_losses(new.point, rec["positions"], hoisted)
                out["losses"] = losses
            return new, out

        state, records = jax.lax.scan(body, state, None, length=length)
        return self.layout.constrain(state, self.plan), self.layout.replicate(records)

    def state_losses(self, state: SolveState) -> jax.Array:
        """Population-averaged per-constraint losses at ``state`` on all points."""
        losses = self.pooled_losses(state.point, self.positions(state), state.inputs)
        return self.layout.replicate(losses)


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
