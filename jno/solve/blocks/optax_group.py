"""The optax group: every trained (non-Bayesian, non-frozen) model, one optax step per solve
step on the total loss.

With Bayesian blocks present the loss is averaged over their K chains (a Monte-Carlo EM
gradient: pattern B's body sees the mean over the head's chains). Transformations that need
the loss itself (``optax.lbfgs``'s line search: ``GradientTransformationExtraArgs``) get
``value``, ``grad`` and ``value_fn`` in ``update``.

optax's zoom line search ends with the value and gradient at the point it accepts and keeps
them in its state. When the objective is the same function at every step (one trained model,
no other block, no balancer, minibatch, redrawn noise or substeps: the engine decides and sets
:attr:`OptaxBlock.static_objective`), a step takes them from there
(``optax.value_and_grad_from_state``, optax's own L-BFGS loop) instead of differentiating
again, and evaluates the loss forward only, for the history. The driver forgets the kept value
(:meth:`OptaxBlock.forget_line_search`) when a new plan or engine may have changed the
objective, and restarts optimizers that keep a line search from a fresh state
(:meth:`OptaxBlock.restart_line_search`) when the points or data change (resampling,
``crux.condition(warm_start=True)``): their curvature pairs describe the old objective. Adam
keeps its moments.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from ..state import BlockState
from .base import Block, trainable


class OptaxState(NamedTuple):
    """``params``: ``{model key: trainable leaves}``; ``opt_state``: ``{model key: state}``."""

    params: dict
    opt_state: dict


def kept_line_search(opt_state):
    """The ``value`` that ``opt_state`` keeps from a line search (``optax.lbfgs()``: one
    ``value`` and one ``grad`` field), or ``None`` (no line search, or several)."""
    try:
        value, grad = optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")
    except KeyError:
        return None
    return None if grad is None else value


class OptaxBlock(Block):
    """Point estimates of the trained models (no population axis).

    ``static_objective``: the objective is the same function at every step, so a step may take
    its value and gradient from the line search of the step before (module docstring); set by
    the engine, off by default, carried by :meth:`for_substep`.
    """

    family = "optax"
    population = None
    records = False
    samples = False
    diagnostics = None

    def __init__(self, members, txs: dict[str, Any]):
        super().__init__(None, members)
        self.txs = txs
        self.static_objective = False

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

        (k, *more) = self.txs
        if self.static_objective and not more and kept_line_search(opt[k]) is not None:

            def total(p_k):
                return loss({k: p_k})[0]

            value, grad = optax.value_and_grad_from_state(total)(moving[k], state=opt[k])
            grads, losses = {k: grad}, loss(moving)[1]
        else:
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

    def forget_line_search(self, kernel: OptaxState) -> OptaxState:
        """``kernel`` with every kept line-search value set to ``inf``: the next step computes
        the value and gradient afresh (a new plan or engine may have changed the objective)."""
        opt = dict(kernel.opt_state)
        for k, state in opt.items():
            value = kept_line_search(state)
            if value is not None:
                opt[k] = optax.tree.set(state, value=jnp.full_like(value, jnp.inf))
        return OptaxState(kernel.params, opt)

    def restart_line_search(self, kernel: OptaxState) -> OptaxState:
        """``kernel`` with the states of optimizers that keep a line search (``optax.lbfgs()``)
        initialised anew: call it when the objective changes between steps (new points or
        data), since L-BFGS's curvature pairs and kept value describe the old one. Optimizers
        without a line search (Adam) keep their state."""
        opt = dict(kernel.opt_state)
        for k, state in opt.items():
            if kept_line_search(state) is not None:
                opt[k] = self.txs[k].init(trainable(kernel.params[k]))
        return OptaxState(kernel.params, opt)

    def for_substep(self, uids: set[int]):
        """The view of this group that moves only the models of a substep (``None``: none)."""
        members = [m for m in self.members if m.model.uid in uids]
        if not members:
            return None
        view = OptaxBlock(members, {m.key: self.txs[m.key] for m in members})
        view.static_objective = self.static_objective and len(members) == len(self.members)
        return view

    def position(self, kernel_state):
        return kernel_state.params

    def describe(self) -> str:
        return f"Models {self.label}: optax"
