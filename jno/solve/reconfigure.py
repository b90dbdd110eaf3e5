"""Configurators called after ``jno.core``: what may change between solves, and the state
carried over to the new plan.

Before the first solve anything may change (the plan is rebuilt). Afterwards ``.optimizer()``
and ``.freeze()`` of trained models take effect (the optax group is rebuilt, the sampled
chains keep their state and draws); a change of a Bayesian, ensemble or initializer
configuration is an error that says to build a new crux.
"""

from __future__ import annotations

import jax

from ..lower.evaluate import model_key
from ..lower.program import split_module
from .checkpoint import canonical_names
from .engine import Engine
from .results import Recorder
from .starts import init_state
from .state import BlockState


def configuration(model) -> tuple:
    """What a model's configurators set, to detect a change after ``jno.core``."""
    return (
        id(model.tx),
        model.frozen,
        tuple(id(g) for g in model.groups),
        id(model.ensemble_settings),
        id(model.initializer),
    )


def changed_models(program, before: dict, now: dict, started: bool) -> list:
    """The models whose configuration ``now`` differs from ``before`` (``{uid:
    configuration}`` each).

    Raises:
        ValueError: after the first solve (``started``), a model changed its Bayesian,
            ensemble or initializer configuration.
    """
    changed = [m for m in program.models if now[m.uid] != before[m.uid]]
    bayes = [m for m in changed if now[m.uid][2:] != before[m.uid][2:]]
    if started and bayes:
        names = ", ".join(m.where for m in bayes)
        raise ValueError(
            f"crux.solve: {names} changed its Bayesian, ensemble or initializer "
            "configuration after the crux started solving; build a new crux with "
            "jno.core(...) after configuring the models."
        )
    return changed


def carry_state(engine: Engine, old_plan, old_state, old_recorder: Recorder):
    """``(state, recorder)`` for ``engine``'s new plan from the current values: sampling
    blocks keep their chains and draws; trained models keep their values (and optimizer
    state when their optimizer is unchanged); a loss balancer keeps its state."""
    program, plan = engine.program, engine.plan
    values = {model_key(m): split_module(m)[0] for m in program.models}
    state = jax.jit(lambda v, i: init_state(engine, v, i))(values, old_state.inputs)
    sampling_old = [i for i, b in enumerate(old_plan.blocks) if b.samples]
    sampling_new = [i for i, b in enumerate(plan.blocks) if b.samples]
    blocks = list(state.blocks)
    for i_old, i_new in zip(sampling_old, sampling_new):
        blocks[i_new] = old_state.blocks[i_old]
    new_optax, old_optax = plan.optax, old_plan.optax
    if new_optax is not None and old_optax is not None:
        i_new, i_old = plan.blocks.index(new_optax), old_plan.blocks.index(old_optax)
        params, opt = blocks[i_new].kernel
        old_opt = old_state.blocks[i_old].kernel.opt_state
        opt = {
            g: old_opt[g] if new_optax.same_optimizer(old_optax, g) else v for g, v in opt.items()
        }
        blocks[i_new] = BlockState(type(blocks[i_new].kernel)(params, opt), blocks[i_new].tuned)
    state = state._replace(
        blocks=tuple(blocks),
        step=old_state.step,
        grad_evals=old_state.grad_evals,
        balance=old_state.balance,
    )
    recorder = Recorder(plan.blocks)
    old_records = [i for i, b in enumerate(old_plan.blocks) if b.records]
    new_records = [i for i, b in enumerate(plan.blocks) if b.records]
    recorder.carry(old_recorder, list(zip(old_records, new_records)))
    if recorder.store is not None:
        recorder.attach(recorder.store, engine.positions(state), canonical_names(program))
    return state, recorder
