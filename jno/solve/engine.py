"""One compiled step for every block of a solve, and the one chunked loop that runs it.

One step (global index ``i = state.step``), for every substep in turn (one substep, all
constraints and all models, unless ``substeps=`` is given):

1. each block that the substep moves, in plan order (sampling blocks as Gibbs blocks, then
   the optax group, then the ensemble), takes one step of its family on its objective
   (:mod:`.objective`) with every other block held: population blocks (chains, members)
   vmapped over their leading axis, the optax group on the loss averaged over the population;
2. the per-constraint losses of the step are the optax group's (or ensemble's) pre-update
   losses, or, without one, the population-averaged losses after the step.

:meth:`Engine.run_chunk` scans ``length`` records of ``stride`` steps each; it serves the
general loop (``stride=1`` with losses) and the pure-sampling fastpath (``stride=thin``, no
losses, silent warm-up) alike, so both give the same draws: every key depends only on the
step index (:mod:`.streams`). Chain starts live in :mod:`.starts`.
"""

from __future__ import annotations

import copy

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
from .layout import Layout
from .objective import Objectives
from .plan import SolvePlan
from .records import ChunkRecord, StepInfo
from .state import SolveState


class Engine(Objectives):
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
        if substeps is None:
            everyone = {m.uid for m in program.models}
            substeps = [(np.ones(len(program.constraints), np.float32), everyone)]
        has_substeps = len(substeps) > 1 or not bool(np.all(substeps[0][0] == 1))
        check_balancer(balancer, program, plan)
        check_causal(program, plan)
        if balancer is not None and has_substeps:
            raise ValueError(
                f"crux.solve(substeps=...): not supported with jno.core(weights={balancer!r}); "
                "balance the whole loss or drop the substeps."
            )
        if has_substeps and plan.optax is not None:
            plan.optax.check_substeps([uids for _, uids in substeps])
        moving = batch_size is not None or bool(program.redrawn) or has_substeps
        plan = plan.for_step(
            refresh=moving or len(plan.sampling) > 1 or plan.optax is not None,
            static_objective=not moving and len(plan.blocks) == 1 and balancer is None,
        )
        super().__init__(program, plan, layout)
        self.streams = streams
        self.batch_size = batch_size
        self.balancer = balancer
        self.substeps = [(jnp.asarray(mask, default_float()), uids) for mask, uids in substeps]
        self.has_substeps = has_substeps

    def with_streams(self, streams: st.KeyStreams) -> Engine:
        """This engine drawing every key from ``streams`` (traced inside a compiled function,
        so one program serves every dataset's keys: ``crux.condition(..., dataset=d)`` and the
        vmapped ``solve_batch``)."""
        out = copy.copy(self)
        out.streams = streams
        return out

    # ------------------------------------------------------------------ the optax group
    def restart_line_search(self, state: SolveState) -> SolveState:
        """The optax group's L-BFGS-type optimizers started afresh (the points or data
        changed: :meth:`~jno.solve.blocks.optax_group.OptaxBlock.restart_line_search`)."""
        return self._optax_kernel(state, "restart_line_search")

    def forget_line_search(self, state: SolveState) -> SolveState:
        """The optax group's kept line-search values forgotten (a new engine takes over:
        :meth:`~jno.solve.blocks.optax_group.OptaxBlock.forget_line_search`)."""
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

    def step(self, state: SolveState, hoisted: dict | None = None) -> tuple[SolveState, StepInfo]:
        """One outer step (see the module docstring). ``hoisted``: ``state.inputs`` with the
        parameter-free sub-expressions evaluated (``Program.hoist``), made once outside a loop
        of steps; ``None`` evaluates them in the step."""
        index = state.step
        inputs = self.step_inputs(state.inputs if hoisted is None else hoisted, index)
        blocks = list(state.blocks)
        positions = self.positions(state)
        infos: list[dict] = [{} for _ in self.blocks]
        grads, balance, losses, weights = state.grad_evals, state.balance, None, None
        for cmask, uids in self.substeps:
            cm = cmask if self.has_substeps else None
            for b, blk in enumerate(self.blocks):
                moving = blk.for_substep(uids)
                if moving is None:
                    continue
                if blk.population:
                    blocks[b], info = self._population_step(
                        moving, b, index, state.point, blocks[b], positions, inputs, cm
                    )
                else:
                    if balance is not None and blk is self.plan.optax:
                        balance = self.rebalance(b, index, balance, state.point, positions, inputs)
                        weights = balance.weights
                    obj = self.pooled_objective(b, state.point, positions, inputs, cm, weights)
                    key = st.step_keys(self.streams, index, b, 1)[0]
                    blocks[b], info = moving.step(key, blocks[b], obj)
                positions[b] = blk.position(blocks[b].kernel)
                info = dict(info)
                if "losses" in info:
                    step_losses = info.pop("losses")
                    losses = jnp.mean(step_losses, axis=0) if blk.population else step_losses
                if "num_integration_steps" in info:
                    grads = grads + jnp.sum(info["num_integration_steps"])
                if "grad_evals" in info:  # an optax step: its gradient and line searches
                    grads = grads + info.pop("grad_evals")
                infos[b] = info
        new = state._replace(
            blocks=tuple(blocks), step=index + 1, grad_evals=grads, balance=balance
        )
        losses = None if self.has_substeps else losses
        return new, StepInfo(losses, positions, infos, weights)

    def _population_step(self, moving: Block, b: int, index, point, bs, positions, inputs, cm):
        """Block ``b``'s step, every population element (chain, member) on its own view."""

        def one(key, bs, view):
            return moving.step(key, bs, self.objective(b, point, view, inputs, cm))

        keys = st.step_keys(self.streams, index, b, self.P)
        return self.layout.map(one, self.P, (0, 0, self.pop_axes))(keys, bs, positions)

    def rebalance(self, b: int, index, balance, point, positions, inputs):
        """The loss balancer's state after step ``index`` (its ``weights`` ``(C,)`` weigh the
        optax group's objective)."""

        def params_at(p):
            pos = list(positions)
            pos[b] = p
            return self.assemble(point, pos)

        return self.balancer.update(
            balance,
            positions[b],
            losses_fn=lambda p: self.program.losses(params_at(p), inputs),
            residuals_fn=lambda p: residuals_of(self.program, params_at(p), inputs),
            key=st.balance_key(self.streams, index),
            step=index,
        )

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
    ) -> tuple[SolveState, ChunkRecord]:
        """``length`` records of ``stride`` steps each (``stride - 1`` silent steps, then a
        recorded one). With ``partial``, steps at or past ``stop`` are no-ops (a solve's last
        chunk); a full chunk skips that select (one more compiled variant, never more).

        Returns the new state and the chunk's :class:`~jno.solve.records.ChunkRecord`.
        """
        hoisted = self.program.hoist(state.inputs)  # once per chunk, outside the scan

        def advance(s):
            new, info = self.step(s, hoisted)
            if partial:
                active = s.step < stop
                new = jax.tree.map(lambda a, b: jnp.where(active, a, b), new, s)
            return new, info

        def body(s, _):
            if stride > 1:
                s = jax.lax.fori_loop(0, stride - 1, lambda i, x: advance(x)[0], s)
            index = s.step
            new, info = advance(s)
            losses = None
            if with_losses:
                losses = info.losses
                if losses is None:
                    losses = self.pooled_losses(new.point, info.positions, hoisted)
            record = ChunkRecord(
                step=index,
                active=index < stop,
                positions=[p if b.records else None for p, b in zip(info.positions, self.blocks)],
                infos=info.infos,
                losses=losses,
                balance_weights=info.balance_weights,
            )
            return new, record

        state, records = jax.lax.scan(body, state, None, length=length)
        return self.layout.constrain(state, self.plan), self.layout.replicate(records)

    def state_losses(self, state: SolveState) -> jax.Array:
        """Population-averaged per-constraint losses at ``state`` on all points."""
        losses = self.pooled_losses(state.point, self.positions(state), state.inputs)
        return self.layout.replicate(losses)
