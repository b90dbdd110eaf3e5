"""Derivative nodes: ``jno.diff``, ``u.d(x)``, gradients and Laplacians."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import sympy

from .node import Apply, Placeholder, Variable, _describe, as_node
from .pointset import default_float


class Derivative(Placeholder):
    """``∂^k expr / ∂wrt[0] ... ∂wrt[k-1]`` evaluated point-wise.

    ``wrt`` lists one coordinate per differentiation, so ``(x, x)`` is ``∂²/∂x²`` and ``(x, y)``
    is the mixed partial. Lowered by nested forward-mode AD (``jax.jvp``) of the per-point
    function with respect to the point's coordinates.
    """

    op = "diff"

    def __init__(self, expr: Placeholder, wrt: Sequence[Variable]):
        expr = as_node(expr)
        wrt = tuple(wrt)
        if not wrt:
            raise ValueError("jno.diff needs at least one coordinate to differentiate against")
        for v in wrt:
            if not isinstance(v, Variable):
                raise TypeError(
                    f"jno.diff({_describe(expr)}, ...): can only differentiate with respect to a "
                    f"coordinate returned by dom.variable(tag), got {_describe(as_node(v))}. "
                    "To differentiate with respect to a parameter use jax.grad on a jno.fn."
                )
        pointsets = {id(v.pointset): v.pointset for v in wrt}
        if len(pointsets) > 1:
            raise ValueError(
                f"jno.diff({_describe(expr)}, ...): the coordinates come from different point sets "
                f"({', '.join(p.label for p in pointsets.values())}); take all of them from one "
                "dom.variable(tag) call."
            )
        pointset = wrt[0].pointset
        if expr.pointset is not None and expr.pointset is not pointset:
            raise ValueError(
                f"jno.diff({_describe(expr)}, {wrt[0].var_name}): the expression lives on "
                f"'{expr.pointset.label}' but the coordinate on '{pointset.label}'. Evaluate the "
                f"model on the variables of '{pointset.label}' before differentiating."
            )
        for node in expr.walk():
            if node.residual is not None:
                raise ValueError(
                    f"jno.diff({_describe(expr)}, ...): the expression contains the reduction "
                    f"{_describe(node)}, which is not point-wise, so a per-point derivative "
                    "would be silently wrong. Differentiate the point-wise part, then reduce."
                )
        if not jnp.issubdtype(expr.dtype, jnp.floating):
            raise TypeError(f"jno.diff: cannot differentiate non-float {_describe(expr)}")
        super().__init__((expr,), pointset, expr.shape, expr.dtype)
        self.wrt = wrt

    def children(self):
        return self.args + self.wrt

    def lower_point(self, ev, at):
        expr = self.args[0]

        def f(c):  # hoisted values are constants in c: never used inside a derivative
            return ev.point(expr, at.moved(c))

        for v in self.wrt:
            f = _directional(f, v.index, at.coords.shape[0])
        return f(at.coords)

    def sympy_form(self, args):
        return sympy.Derivative(args[0], *[v.sympy_form([]) for v in self.wrt])


def _directional(f, index: int, dim: int):
    """``c -> ∂f/∂c[index]`` by one forward-mode JVP."""
    tangent = jnp.zeros((dim,), dtype=default_float()).at[index].set(1.0)

    def df(c):
        return jax.jvp(f, (c,), (tangent,))[1]

    return df


def diff(expr, *wrt: Variable, order: int = 1) -> Placeholder:
    """Derivative of ``expr`` with respect to coordinates.

    ``diff(u, x, order=k)`` is ``∂^k u/∂x^k``; ``diff(u, x, y)`` is ``∂²u/∂x∂y``.
    """
    if not isinstance(order, int) or order < 1:
        raise ValueError(f"jno.diff: order must be a positive integer, got {order!r}")
    if order != 1 and len(wrt) != 1:
        raise ValueError(
            "jno.diff: `order` applies to a single coordinate; for mixed partials list the "
            "coordinates, e.g. jno.diff(u, x, x, y)."
        )
    return Derivative(expr, tuple(wrt) * order)


def grad(expr, coords: Sequence[Variable]) -> Placeholder:
    """Gradient ``[∂u/∂c for c in coords]`` concatenated on the last axis.

    ``expr`` must have per-point shape ``(1,)`` (a scalar field); the result is ``(len(coords),)``.
    """
    expr = as_node(expr)
    if expr.shape not in ((), (1,)):
        raise ValueError(
            f"jno.np.grad({_describe(expr)}): needs a scalar field (per-point shape (1,)), got "
            f"{expr.shape}; take a component first, e.g. u[..., 0:1]."
        )
    parts = [Derivative(expr, (c,)) for c in coords]
    return Apply(
        lambda *a: jnp.concatenate([jnp.reshape(p, (1,)) for p in a], axis=-1),
        parts,
        {},
        "grad",
    )


def laplacian(expr, coords: Sequence[Variable]) -> Placeholder:
    """``Σ_c ∂²u/∂c²`` over the given coordinates."""
    expr = as_node(expr)
    terms = [Derivative(expr, (c, c)) for c in coords]
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total
