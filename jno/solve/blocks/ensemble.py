"""The DSL's deep ensemble (``model.ensemble(size=E, ...)``) as a block.

The E members are the population (leading ``(E,)`` axis, vmapped by the engine); each takes
one step of :func:`jno.inference.step.member_update`, the same update ``jno.inference``'s
``ensemble_step`` runs, on ``Σ_k L_k - Σ_m w_m log prior_m`` (``w_m`` the model's
``prior_weight``). After the solve the members are the models' ``posterior_samples``
``(1, E, ...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ...inference.state import EnsembleState
from ...inference.step import member_update
from ..state import BlockState
from .base import Block


def member_starts(params, size: int, key):
    """``size`` independent starts ``(E, ...)`` for a deep ensemble.

    Member 0 is ``params``. Every other member redraws each leaf from ``N(mean, std²)`` of
    that leaf's own entries (a network's weights keep their init scale; constant leaves such
    as zero biases stay constant) and a scalar-like leaf (a Parameter) adds ``N(0, 1)``.
    """
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(key, max(len(leaves), 1))
    out = []
    for leaf, k in zip(leaves, keys):
        draws = jax.random.normal(k, (size,) + leaf.shape, leaf.dtype)
        std = jnp.std(leaf)
        spread = jnp.where(std > 0, std, 1.0 if leaf.size <= 4 else 0.0)
        stacked = jnp.mean(leaf) + spread * draws if leaf.size > 4 else leaf + spread * draws
        out.append(stacked.at[0].set(leaf))
    return jax.tree.unflatten(treedef, out)


class EnsembleBlock(Block):
    """Deep-ensemble members trained by optax (population ``"members"``)."""

    family = "ensemble"
    population = "members"
    records = False
    samples = False
    diagnostics = None

    def __init__(self, members, txs: dict, prior_terms: list):
        super().__init__(None, members, [p for p, _ in prior_terms])
        self.prior_weights = [w for _, w in prior_terms]
        self.size = members[0].model.ensemble_settings.size
        self.tx = (
            next(iter(txs.values()))
            if len(txs) == 1
            else optax.multi_transform(txs, {k: k for k in txs})
        )

    def init(self, key, position, objective, tuned):
        return EnsembleState(position, self.tx.init(position))

    def step(self, key, state: BlockState, objective):
        def loss(params):
            data, losses = objective(params)
            lp = sum(
                w * prior(params[m.key])
                for prior, w, m in zip(self.priors, self.prior_weights, self.members)
            )
            return data - lp, losses

        params, opt_state, (_, losses) = member_update(
            loss, self.tx, state.kernel.params, state.kernel.opt_state, has_aux=True
        )
        return BlockState(EnsembleState(params, opt_state), state.tuned), {"losses": losses}

    def position(self, kernel_state):
        return kernel_state.params

    def posterior(self, key, state: BlockState, recorded):
        return jax.tree.map(lambda a: a[None], state.kernel.params)

    def describe(self) -> str:
        return f"Models {self.label}: deep ensemble of {self.size} members"
