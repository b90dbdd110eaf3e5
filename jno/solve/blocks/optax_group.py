"""The optax group: every trained (non-Bayesian, non-frozen) model, one optax step per solve
step on the total loss.

**One optimizer state per transformation, not per model.** Models given the same
transformation object (and models left at the default, which share one) form one optimizer
group: its transformation runs on the group's parameters as one pytree ``{model key:
params}``, with one state, so ``optax.lbfgs()`` on a network and two coefficients keeps one
curvature history and one line search over all of them (PITFALLS §18). Groups with different
transformations each see the gradient of the one total loss with respect to their own
parameters, which is what ``optax.multi_transform``/``optax.partition`` does with its masked
inner states; a line search varies its group's parameters with the others held. To keep
separate states on purpose, give each model its own transformation object
(``.optimizer(optax.lbfgs())`` twice makes two objects).

With Bayesian blocks present the loss is averaged over their K chains (a Monte-Carlo EM
gradient: pattern B's body sees the mean over the head's chains). Transformations that need
the loss itself (``optax.lbfgs``'s line search: ``GradientTransformationExtraArgs``) get
``value``, ``grad`` and ``value_fn`` in ``update``.

optax's zoom line search ends with the value and gradient at the point it accepts and keeps
them in its state. When the objective is the same function at every step (one optimizer group,
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
from .base import Block, strong_types, trainable


class OptaxState(NamedTuple):
    """``params``: ``{model key: trainable leaves}``; ``opt_state``: ``{group key: state}``,
    one optax state per optimizer group over ``{model key: params}`` of its models."""

    params: dict
    opt_state: dict


def optimizer_groups(txs: dict[str, Any]) -> dict[str, tuple[Any, tuple[str, ...]]]:
    """``{group key: (transformation, model keys)}``: the models of ``txs`` (``{model key:
    transformation}``) grouped by the identity of their transformation, in order. The group
    key joins the model keys with ``+``."""
    groups: list[tuple[Any, list[str]]] = []
    for key, tx in txs.items():
        for shared, keys in groups:
            if shared is tx:
                keys.append(key)
                break
        else:
            groups.append((tx, [key]))
    return {"+".join(keys): (tx, tuple(keys)) for tx, keys in groups}


def kept_line_search(opt_state):
    """The ``value`` that ``opt_state`` keeps from a line search (``optax.lbfgs()``: one
    ``value`` and one ``grad`` field), or ``None`` (no line search, or several)."""
    try:
        value, grad = optax.tree.get(opt_state, "value"), optax.tree.get(opt_state, "grad")
    except KeyError:
        return None
    return None if grad is None else value


def line_search_evaluations(opt_state) -> jax.Array:
    """Objective evaluations (value and gradient) of the last update's line searches: the
    ``num_linesearch_steps`` of every optax line search in ``opt_state`` (``optax.lbfgs()``'s
    zoom search evaluates once per step it counts); 0 without a line search."""
    found = optax.tree.get_all_with_path(opt_state, "num_linesearch_steps")
    return sum((jnp.asarray(v) for _, v in found), jnp.asarray(0))


class OptaxBlock(Block):
    """Point estimates of the trained models (no population axis).

    ``all_groups``: ``{group key: (transformation, model keys)}`` (:func:`optimizer_groups`),
    one optax state each; ``groups``: those a step moves (all of them, or a substep's in a view
    made by :meth:`for_substep`).
    ``static_objective``: the objective is the same function at every step, so a step may take
    its value and gradient from the line search of the step before (module docstring); set by
    the engine, off by default, carried by :meth:`for_substep`.
    """

    family = "optax"
    population = None
    records = False
    samples = False
    diagnostics = None

    def __init__(self, members, txs: dict[str, Any], groups=None):
        super().__init__(None, members)
        self.txs = txs
        self.all_groups = optimizer_groups(txs)  # the groups the state holds
        self.groups = self.all_groups if groups is None else groups  # the groups a step moves
        self.static_objective = False

    @property
    def label(self) -> str:
        return ", ".join(f"'{m.model.model_name}'" for m in self.members)

    def init(self, key, position, objective, tuned):
        opt = {
            g: tx.init(trainable({k: position[k] for k in keys}))
            for g, (tx, keys) in self.all_groups.items()
        }
        return OptaxState(position, opt)

    def step(self, key, state: BlockState, objective):
        params, opt = state.kernel
        moving = {k: params[k] for _, keys in self.groups.values() for k in keys}

        def loss(mv):
            return objective({**params, **mv})

        (g0, *more) = self.groups
        kept = kept_line_search(opt[g0]) if self.static_objective and not more else None
        if kept is not None:
            value, grads = optax.value_and_grad_from_state(lambda mv: loss(mv)[0])(
                moving, state=opt[g0]
            )
            losses = loss(moving)[1]
            evals = jnp.where(jnp.isfinite(kept), 0, 1)  # a fresh state computes it
        else:
            (value, losses), grads = jax.value_and_grad(loss, has_aux=True)(moving)
            evals = jnp.asarray(1)
        new_params, new_opt = dict(params), dict(opt)
        for g, (tx, keys) in self.groups.items():
            own = {k: moving[k] for k in keys}
            own_grads = {k: grads[k] for k in keys}
            extra = {}
            if isinstance(tx, optax.GradientTransformationExtraArgs):

                def value_fn(p, own_keys=keys):
                    return loss({**moving, **{k: p[k] for k in own_keys}})[0]

                extra = {"value": value, "grad": own_grads, "value_fn": value_fn}
            updates, new_opt[g] = tx.update(own_grads, opt[g], own, **extra)
            new_params.update(optax.apply_updates(own, updates))
            evals = evals + line_search_evaluations(new_opt[g])
        info = {"losses": losses, "grad_evals": evals}
        return BlockState(OptaxState(new_params, new_opt), state.tuned), info

    def same_optimizer(self, other: OptaxBlock, group: str) -> bool:
        """Whether ``group`` is an optimizer group of both blocks, with the same models and the
        same transformation object (its state can be carried from one to the other)."""
        mine, theirs = self.groups.get(group), other.groups.get(group)
        return mine is not None and theirs is not None and mine[0] is theirs[0]

    def forget_line_search(self, kernel: OptaxState) -> OptaxState:
        """``kernel`` with every kept line-search value set to ``inf``: the next step computes
        the value and gradient afresh (a new plan or engine may have changed the objective)."""
        opt = dict(kernel.opt_state)
        for g, state in opt.items():
            value = kept_line_search(state)
            if value is not None:
                opt[g] = optax.tree.set(state, value=jnp.full_like(value, jnp.inf))
        return OptaxState(kernel.params, opt)

    def restart_line_search(self, kernel: OptaxState) -> OptaxState:
        """``kernel`` with the states of optimizers that keep a line search (``optax.lbfgs()``)
        initialised anew: call it when the objective changes between steps (new points or
        data), since L-BFGS's curvature pairs and kept value describe the old one. Optimizers
        without a line search (Adam) keep their state."""
        opt = dict(kernel.opt_state)
        for g, state in opt.items():
            if kept_line_search(state) is not None:
                tx, keys = self.all_groups[g]
                opt[g] = strong_types(tx.init(trainable({k: kernel.params[k] for k in keys})))
        return OptaxState(kernel.params, opt)

    def for_substep(self, uids: set[int]):
        """The view of this group that moves only the models of a substep (``None``: none).

        An optimizer group is stepped whole: a group with models both inside and outside the
        substep is a ``ValueError`` (checked by :meth:`check_substeps` at solve start)."""
        keys = {m.key for m in self.members if m.model.uid in uids}
        groups = {g: v for g, v in self.groups.items() if set(v[1]) <= keys}
        if not groups:
            return None
        members = [m for m in self.members if m.key in keys]
        view = OptaxBlock(members, self.txs, groups)
        view.static_objective = self.static_objective and len(groups) == len(self.groups)
        return view

    def check_substeps(self, substeps: list[set[int]]) -> None:
        """Every optimizer group moves whole (one state, one step): a group with models both
        inside and outside a substep is a ``ValueError`` naming them and the fix."""
        model_of = {m.key: m.model for m in self.members}
        for _, keys in self.groups.values():
            uids = {model_of[k].uid for k in keys}
            if any(uids & moving and not uids <= moving for moving in substeps):
                names = ", ".join(model_of[k].where for k in keys)
                raise ValueError(
                    f"crux.solve(substeps=...): {names} share one optimizer (one state over all "
                    "their parameters) but do not move in the same substep; give each a "
                    "transformation object of its own, e.g. .optimizer(optax.adam(1e-3)) on "
                    "each (models left at the default share jno's default Adam)."
                )

    def position(self, kernel_state):
        return kernel_state.params

    def describe(self) -> str:
        return f"Models {self.label}: optax"
