"""Causal training's slice weights (:class:`~jno.trace.reductions.causal.CausalMSE`) as
solve metrics: which constraints hold a ``causal_mse`` and the weights it recorded."""

from __future__ import annotations

from ..trace.reductions.causal import CausalMSE
from .evaluate import Evaluator


def causal_nodes(constraint) -> list:
    """The causal reductions inside ``constraint``."""
    return [n for n in constraint.walk() if isinstance(n, CausalMSE)]


def has_causal(program) -> bool:
    return any(causal_nodes(c) for c in program.constraints)


def causal_metrics(program, params: dict, inputs: dict) -> dict:
    """``{"causal:<constraint>:<i>": w_i}`` of every causal constraint at ``params``."""
    ev = Evaluator(program.plan, program.statics, params, inputs)
    out = {}
    for name, c in zip(program.names, program.constraints):
        nodes = causal_nodes(c)
        if not nodes:
            continue
        ev.value(c)
        for j, node in enumerate(nodes):
            label = name if len(nodes) == 1 else f"{name}[{j}]"
            for i, w in enumerate(ev.aux[node.id]):
                out[f"causal:{label}:{i}"] = w
    return out
