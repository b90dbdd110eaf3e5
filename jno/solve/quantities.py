"""What ``until=`` judges: chosen parameters and expressions, pushed through the kept draws.

R-hat over every weight of a network cannot reach 1.01 (a tanh network has symmetric modes
that chains never cross, and thousands of weights make the worst one an outlier), while the
physical parameters and the predictions can. So a stopping rule judges *quantities*:

* by default every sampled :class:`~jno.trace.model.Parameter` (``jno.np.parameter``), and no
  network weights; when no parameter is sampled, every sampled model (a network's weights),
  as before, and the log says how to choose;
* with ``jno.bayesian.converged(..., on=[k, net(x_test)])`` (or ``on={"u(0.5)": net(x_mid)}``
  for names) exactly those: a model's draws, or an expression evaluated at every kept draw of
  the models it depends on (``(K, N, *shape)``, as ``crux.eval`` returns it).

An expression is evaluated for all ``K·N`` kept draws at once, padded to the next power of two
rows so that a growing ``N`` compiles ``log2(keep)`` times, not once per chunk.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

import jax
import numpy as np

from ..lower.evaluate import model_key
from ..lower.program import constrained, split_module
from ..trace.model import Model, Parameter
from ..trace.node import Placeholder, as_node
from . import results

log = logging.getLogger("jno")


def _label(model: Model) -> str:
    return f"'{model.model_name}'"


class Quantities:
    """The quantities a stopping rule judges in one ``crux.solve`` call.

    Args:
        program: the compiled :class:`~jno.lower.program.Program`.
        plan: the solve plan (its recording blocks name the sampled models).
        on: ``None`` (the default choice above), a list of models and expressions, or a
            ``{label: model or expression}`` dict.

    Raises:
        TypeError: an item of ``on`` is not a jno model or expression.
        ValueError: an item is a model that is not sampled, or an expression that depends on
            no sampled model (its value would not vary between draws).
    """

    def __init__(self, program, plan, on=None):
        self.program = program
        # by uid: a Parameter's == builds an expression
        self.sampled = {
            mem.model.uid: mem.model for blk in plan.blocks if blk.records for mem in blk.members
        }
        sampled = list(self.sampled.values())
        self.items: dict[str, Model | Placeholder] = {}
        self._runs: dict[str, tuple] = {}
        if on is None:
            params = [m for m in sampled if isinstance(m, Parameter)]
            chosen = params or sampled
            self.items = {_label(m): m for m in chosen}
            self.note = (
                "the sampled parameters; network weights are not judged"
                if params
                else "every sampled model's weights (no parameter is sampled; R-hat over a "
                "network's weights rarely reaches 1.01: pass converged(..., on=[expression]))"
            )
            return
        labelled = on.items() if isinstance(on, Mapping) else enumerate(on)
        for i, item in labelled:
            self._add(str(i) if isinstance(on, Mapping) else None, i, item)
        self.note = "the quantities given by on="

    def _add(self, name: str | None, index, item) -> None:
        where = f"jno.bayesian.converged(on=...) item {index!r}"
        if isinstance(item, Model):
            if item.uid not in self.sampled:
                raise ValueError(
                    f"{where}: {item} is not sampled in this solve (no .bayesian(...) draws to "
                    "judge); give a sampled model or an expression of one"
                )
            self.items[name or _label(item)] = item
            return
        if not isinstance(item, Placeholder):
            raise TypeError(
                f"{where}: expected a jno model or expression (e.g. k or net(x_test)), got "
                f"{type(item).__name__}"
            )
        node = as_node(item)
        run, graph = self.program.evaluator_for([node])
        chained = [m for m in graph.models if m.uid in self.sampled]
        if not chained:
            raise ValueError(
                f"{where}: the expression depends on no sampled model, so its value is the same "
                "at every draw; give an expression of a .bayesian(...) model"
            )
        label = name or f"on[{index}]"
        self.items[label] = node
        self._runs[label] = (run, graph.models, chained, None)

    def describe(self) -> str:
        """One line for the log: what is judged."""
        return f"{', '.join(self.items)} ({self.note})"

    def draws(self, solver) -> dict:
        """``{label: (K, N, ...) draws}`` (a pytree for a network) of every quantity, from the
        draws the solver has kept so far."""
        state = solver.host_state()
        engine = solver.engine
        kept = {
            m.uid: params
            for m, (params, _) in results.posterior_params(
                engine, state, solver.recorder, solver.streams, solver.step_index > 0
            ).items()
        }
        live = engine.view(state)
        out = {}
        for label, item in self.items.items():
            if isinstance(item, Model):
                if item.uid in kept:
                    out[label] = constrained(item, kept[item.uid])
                continue
            values = self._push_forward(label, kept, live)
            if values is not None:
                out[label] = values
        return out

    def _push_forward(self, label: str, kept: dict, live: dict):
        run, models, chained, batched = self._runs[label]
        if any(m.uid not in kept for m in chained):
            return None
        point = {
            model_key(m): live[model_key(m)] if model_key(m) in live else split_module(m)[0]
            for m in models
        }
        lead = np.shape(jax.tree.leaves(kept[chained[0].uid])[0])[:2]
        rows = int(np.prod(lead))
        padded = 1 << max(0, math.ceil(math.log2(rows)))

        def flat(a):
            a = np.asarray(a).reshape((rows,) + np.shape(a)[2:])
            return np.pad(a, [(0, padded - rows)] + [(0, 0)] * (a.ndim - 1), mode="edge")

        draws = {model_key(m): jax.tree.map(flat, kept[m.uid]) for m in chained}
        if batched is None:
            batched = jax.jit(jax.vmap(lambda d, p: run({**p, **d})[0], in_axes=(0, None)))
            self._runs[label] = (run, models, chained, batched)
        values = np.asarray(batched(draws, point))[:rows]
        return values.reshape(lead + values.shape[1:])


__all__ = ["Quantities"]
