"""Objective assembly: every block's objective with the other blocks held.

A solve's parameters are split into ``point`` (what no block moves) and one position per
block. For block ``b`` and one population element's ``view`` of the other blocks,

    f_b(θ_b) = (Σ_k w_bk m_k L_k(θ), L(θ))

with ``L (C,)`` the per-constraint losses, ``w_b`` the block's likelihood weights
(:meth:`jno.lower.program.Program.loglik_weights`) and ``m`` a substep's constraint mask.
Blocks without a population (the optax group) see the losses averaged over the population.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..lower.program import Program
from .blocks import Block
from .layout import Layout
from .plan import SolvePlan
from .state import SolveState


class Objectives:
    """The objectives of a plan's blocks (the base of :class:`~jno.solve.engine.Engine`).

    Args:
        program: the lowered constraints.
        plan: the blocks.
        layout: the chain method and mesh (:mod:`.layout`); default: ``vmap`` on one device.
    """

    def __init__(self, program: Program, plan: SolvePlan, layout: Layout | None = None):
        self.program = program
        self.plan = plan
        self.layout = Layout("vectorized", None) if layout is None else layout
        self.blocks: list[Block] = plan.blocks
        self.P = plan.population
        self.pop_axes = [0 if b.population else None for b in self.blocks]
        self.has_population = any(b.population for b in self.blocks)
        self.weights = [
            program.loglik_weights(getattr(b.settings, "likelihood_scale", 1.0))
            for b in self.blocks
        ]

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

    def element(self, state: SolveState, i: int = 0) -> list:
        """Every block's position for population element ``i`` (chain ``i``, member ``i``);
        blocks without a population as they are."""
        return [
            jax.tree.map(lambda a: a[i], p) if ax == 0 else p
            for p, ax in zip(self.positions(state), self.pop_axes)
        ]

    def view(self, state: SolveState) -> dict:
        """Full params of population element 0 (chain 0, member 0)."""
        return self.assemble(state.point, self.element(state, 0))

    def positions(self, state: SolveState) -> list:
        """Every block's position (population blocks with their leading axis)."""
        return [blk.position(bs.kernel) for blk, bs in zip(self.blocks, state.blocks)]
