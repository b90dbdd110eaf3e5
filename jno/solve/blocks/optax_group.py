"""The optax group: every trained (non-Bayesian, non-frozen) model, one optax step per solve
step on the total loss.

With Bayesian blocks present the loss is averaged over their K chains (a Monte-Carlo EM
gradient: pattern B's body sees the mean over the head's chains). Transformations that need
the loss itself (``optax.lbfgs``'s line search: ``GradientTransformationExtraArgs``) get
``value``, ``grad`` and ``value_fn`` in ``update``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import optax

from ..state import BlockState
from .base import Block, trainable


class OptaxState(NamedTuple):
    """``params``: ``{model key: trainable leaves}``; ``opt_state``: ``{model key: state}``."""

    params: dict
    opt_state: dict


class OptaxBlock(Block):
    """Point estimates of the trained models (no population axis)."""

    family = "optax"
    population = None
    records = False
    samples = False
    diagnostics = None

    def __init__(self, members, txs: dict[str, Any]):
        super().__init__(None, members)
        self.txs = txs

    @property
    def label(self) -> str:
        return ", ".join(f"'{m.model.model_name}'" for m in self.members)

    def init(self, key, position, objective, tuned):
        opt = {k: self.txs[k].init(trainable(p)) for k, p in position.items()}
        return OptaxState(position, opt)

    def step(self, key, state: BlockState, objective):
        params, opt = state.kernel
        moving = {k: params[k] for k in self.txs}

        def loss(mv):
            return objective({**params, **mv})

        (value, losses), grads = jax.value_and_grad(loss, has_aux=True)(moving)
        new_params, new_opt = dict(params), dict(opt)
        for k, tx in self.txs.items():
            extra = {}
            if isinstance(tx, optax.GradientTransformationExtraArgs):

                def value_fn(p_k, k=k):
                    return loss({**moving, k: p_k})[0]

                extra = {"value": value, "grad": grads[k], "value_fn": value_fn}
            updates, new_opt[k] = tx.update(grads[k], opt[k], moving[k], **extra)
            new_params[k] = optax.apply_updates(moving[k], updates)
        return BlockState(OptaxState(new_params, new_opt), state.tuned), {"losses": losses}

    def for_substep(self, uids: set[int]):
        """The view of this group that moves only the models of a substep (``None``: none)."""
        members = [m for m in self.members if m.model.uid in uids]
        if not members:
            return None
        return OptaxBlock(members, {m.key: self.txs[m.key] for m in members})

    def position(self, kernel_state):
        return kernel_state.params

    def describe(self) -> str:
        return f"Models {self.label}: optax"
