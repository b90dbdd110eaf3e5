"""The lowered program: constraints -> per-constraint losses as a pure JAX function.

The objective is written once here (docs/objective.md): constraint ``k`` has loss ``L_k``
(the value of its graph) and log-likelihood ``-L_k`` if it is a calibrated likelihood
(its node's ``calibrated``: ``r.gaussian(std)``, ``r.student_t(df, scale)``) or ``-λ·L_k``
otherwise, with ``λ`` the sampling model's ``likelihood_scale``.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..trace.model import Model, Parameter
from ..trace.node import Placeholder, _describe
from ..trace.pointset import default_float
from .evaluate import (
    Evaluator,
    GraphPlan,
    draw_noise,
    full_inputs,
    hoist_inputs,
    model_key,
    ps_key,
)
from .narrow import narrowed


def split_module(model: Model):
    """``(params, static)``: the inexact-array leaves and everything else. A constrained
    Parameter's params are its unconstrained value ``u = T⁻¹(module)`` (:mod:`jno.constraints`),
    what the solver moves."""
    params, static = eqx.partition(model.module, eqx.is_inexact_array)
    constraint = getattr(model, "constraint", None)
    return (params if constraint is None else constraint.inverse(params)), static


def constrained(model: Model, params):
    """The model's values (a pytree, or draws with leading axes) from its ``params``: ``T(u)``
    for a constrained Parameter, ``params`` unchanged otherwise."""
    constraint = getattr(model, "constraint", None)
    return params if constraint is None else constraint.forward(jnp.asarray(params))


class Program:
    """Constraints lowered to ``losses(params, inputs) -> (C,)``.

    Args:
        constraints: scalar (global) expressions; each one's value is a loss to minimise.
        noise_key: the key the observation noise is drawn from, once (the crux's ``noise``
            stream).
    """

    def __init__(self, constraints: Sequence[Placeholder], noise_key: jax.Array):
        if isinstance(constraints, Placeholder):
            constraints = [constraints]
        constraints = list(constraints)
        if not constraints:
            raise ValueError(
                "jno.core([]): the constraint list is empty; pass e.g. [residual.mse]."
            )
        for i, c in enumerate(constraints):
            if not isinstance(c, Placeholder) or isinstance(c, Parameter):
                raise TypeError(
                    f"jno.core: constraint {i} is {type(c).__name__}, not a reduced jno "
                    "expression; pass e.g. residual.mse or residual.gaussian(std=0.1)."
                )
            if c.pointset is not None or c.shape != ():
                what = (
                    f"point-wise on {c.pointset.label}"
                    if c.pointset is not None
                    else f"of shape {c.shape}"
                )
                raise ValueError(
                    f"jno.core: constraint {i} ({_describe(c)}) is not a scalar: it is {what}. "
                    "Reduce it with .mse, .mean, .sum, .mae, .max or .gaussian(std=...)."
                )
        self.constraints = constraints
        self.names = _constraint_names(constraints)
        self.calibrated = np.array([c.calibrated for c in constraints])
        self.plan = GraphPlan(constraints)
        self.models = list(self.plan.models)
        self.key = noise_key
        self.noise_registry: dict = {}
        self.noise = draw_noise(self.plan, self.key, self.noise_registry)
        self.inputs = full_inputs(self.plan, self.noise)
        self.redrawn = [
            (pk, nk, noise)
            for pk, noises in self.plan.noise_on.items()
            for nk, noise in noises.items()
            if noise.redrawn
        ]
        self.statics = {}
        for m in self.models:
            if not isinstance(m, Parameter):
                self.statics[model_key(m)] = split_module(m)[1]
        self._narrow_losses = narrowed(self._losses)

    def initial_params(self) -> dict:
        return {model_key(m): split_module(m)[0] for m in self.models}

    def losses(self, params: dict, inputs: dict | None = None) -> jax.Array:
        """Per-constraint losses ``(C,)`` at ``params`` on ``inputs`` (default: all points),
        evaluated with the point-wise arrays' unit trailing axes dropped (:mod:`.narrow`:
        ``(n, 1)`` element-wise work runs as ``(n,)``, several times faster on the CPU)."""
        return self._narrow_losses(params, self.inputs if inputs is None else inputs)

    def _losses(self, params: dict, inputs: dict) -> jax.Array:
        """:meth:`losses` as lowered (the arrays in their traced shapes)."""
        ev = Evaluator(self.plan, self.statics, params, inputs)
        return jnp.stack(
            [jnp.asarray(ev.value(c), dtype=default_float()) for c in self.constraints]
        )

    def hoist(self, inputs: dict) -> dict:
        """``inputs`` with the parameter-free point-wise sub-expressions of the constraints
        evaluated once (:func:`~jno.lower.evaluate.hoist_inputs`); :meth:`losses` on the
        result equals :meth:`losses` on ``inputs`` and skips that work. Call it outside a loop
        of steps."""
        return hoist_inputs(self.plan, self.statics, inputs)

    def loglik_weights(self, likelihood_scale: float) -> jax.Array:
        """``w_k`` with ``loglik = -Σ w_k L_k``: 1 for calibrated constraints, else λ."""
        return jnp.where(jnp.asarray(self.calibrated), 1.0, likelihood_scale).astype(
            default_float()
        )

    def evaluator_for(self, exprs: Sequence[Placeholder]):
        """A pure function ``params -> [values]`` for arbitrary expressions, reusing the noise
        drawn for the constraints and the arrays ``crux.condition`` put in ``self.inputs``
        (so ``crux.eval`` sees the data the solve saw)."""
        plan = GraphPlan(exprs)
        inputs = full_inputs(plan, draw_noise(plan, self.key, self.noise_registry))
        inputs = _overlay(inputs, self.inputs)
        statics = dict(self.statics)
        for m in plan.models:
            if model_key(m) not in statics and not isinstance(m, Parameter):
                statics[model_key(m)] = split_module(m)[1]

        def run(params):
            ev = Evaluator(plan, statics, params, inputs)
            return [ev.value(e) for e in exprs]

        return run, plan

    def redraw_noise(self, inputs: dict, key) -> dict:
        """``inputs`` with every ``redraw=True`` noise drawn anew from ``key``."""
        if not self.redrawn:
            return inputs
        out = {pk: {**rows, "noise": dict(rows["noise"])} for pk, rows in inputs.items()}
        for i, (pk, nk, noise) in enumerate(self.redrawn):
            n = out[pk]["coords"].shape[0]
            out[pk]["noise"][nk] = noise.sample(jax.random.fold_in(key, i), (n,))
        return out

    def pointset_sizes(self) -> dict[str, int]:
        return {ps_key(ps): ps.size for ps in self.plan.pointsets.values()}


def _overlay(inputs: dict, current: dict) -> dict:
    """``inputs`` with the coordinates, data and noise that ``current`` (the program's inputs,
    conditioned on new data) holds for the same point sets."""
    out = {}
    for pk, rows in inputs.items():
        now = current.get(pk)
        if now is None:
            out[pk] = rows
            continue
        out[pk] = {
            **rows,
            "coords": now["coords"],
            "data": {k: now["data"].get(k, v) for k, v in rows["data"].items()},
            "noise": {k: now["noise"].get(k, v) for k, v in rows["noise"].items()},
        }
    return out


def _constraint_names(constraints) -> list[str]:
    names, counts = [], {}
    for i, c in enumerate(constraints):
        base = c.label or f"{c.name_stem}_{i}"
        counts[base] = counts.get(base, 0) + 1
        names.append(base if counts[base] == 1 else f"{base}_{counts[base]}")
    return names
