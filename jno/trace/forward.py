"""Numerical forward models inside the likelihood: ``jno.forward_model(fn, x, *params)``.

A forward model is a JAX function of the whole point set's coordinates and of global values
(parameters, expressions without a point set) that returns one value per point, e.g. an ODE
solved by ``diffrax`` and read at the observation times, or a finite-difference solve sampled
at the sensors:

    fn(coords (n, d), *args) -> (n, *shape)

``jno.forward_model`` makes it a point-wise expression on the point set of ``x``: its value at
a point is its row of ``fn``'s output, computed once per evaluation (not once per point), for
the point set's current rows (all points, a subsample, or resampled points). It combines with
data and likelihoods like any expression, and samplers differentiate through the solver with
respect to the parameters. It has no derivative with respect to the coordinates (its values
live on the points).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import sympy

from .node import Placeholder, _describe, as_node


class ForwardModel(Placeholder):
    """``fn(coords, *args)``'s row at each point of ``x``'s point set (see the module)."""

    op = "forward_model"

    def __init__(self, fn: Callable, x: Placeholder, args, name: str):
        x = as_node(x)
        where = f"jno.forward_model({name})"
        if x.pointset is None:
            raise ValueError(f"{where}: x must be a point-wise variable (its point set's points)")
        nodes = [as_node(a) for a in args]
        for a in nodes:
            if a.pointset is not None:
                raise ValueError(
                    f"{where}: argument {_describe(a)} is point-wise; a forward model takes "
                    "global values (parameters, numbers) and receives the coordinates itself"
                )
        ps = x.pointset
        coords = jax.ShapeDtypeStruct(ps.coords.shape, ps.coords.dtype)
        try:
            out = jax.eval_shape(lambda c, *a: fn(c, *a), coords, *[a.abstract() for a in nodes])
        except Exception as err:
            raise ValueError(f"{where}: calling it on ({ps.size}, {ps.dim}) coordinates failed: "
                             f"{err}") from None
        if not isinstance(out, jax.ShapeDtypeStruct) or out.ndim == 0 or out.shape[0] != ps.size:
            got = getattr(out, "shape", type(out).__name__)
            raise ValueError(
                f"{where}: the output must have one row per point of '{ps.label}' "
                f"({ps.size}, ...), got {got}"
            )
        self.fn, self.fn_name = fn, name
        shape = out.shape[1:] or (1,)
        super().__init__(nodes, ps, shape, out.dtype)

    def lower_point(self, ev, at):
        def compute(coords):
            values = self.fn(coords, *[ev.value(a) for a in self.args])
            return jnp.reshape(values, (values.shape[0],) + self.shape)

        return ev.on_points(self, compute)[at.index]

    def lower_global(self, ev):
        raise NotImplementedError  # point-wise: the evaluator reads it per point

    def sympy_form(self, args):
        return sympy.Function(self.fn_name)(*args)


def forward_model(fn: Callable, x, *args, name: str | None = None) -> Placeholder:
    """The forward model ``fn(coords (n, d), *args) -> (n, ...)`` as a point-wise expression
    on ``x``'s point set (module docstring); ``args`` are global values such as Parameters."""
    return ForwardModel(fn, x, args, name or getattr(fn, "__name__", "forward_model"))


__all__ = ["ForwardModel", "forward_model"]
