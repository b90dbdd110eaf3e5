"""Derivative nodes: ``jno.diff``, ``u.d(x)``, gradients and Laplacians."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import sympy

from .node import Apply, Index, Placeholder, Variable, _describe, as_node
from .pointset import default_float


class Derivative(Placeholder):
    """``∂^k expr / ∂wrt[0] ... ∂wrt[k-1]`` evaluated point-wise.

    ``wrt`` lists one coordinate per differentiation, so ``(x, x)`` is ``∂²/∂x²`` and ``(x, y)``
    is the mixed partial. Lowered by nested forward-mode AD (``jax.jvp``) of the per-point
    function with respect to the point's coordinates, together with every other derivative
    of the same expression (:func:`lower_derivatives`).
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
        base, _ = differentiated(self)
        return lower_derivatives(ev, base, ev.plan.derivatives[base.id], at)[self.id]

    def sympy_form(self, args):
        return sympy.Derivative(args[0], *[v.sympy_form([]) for v in self.wrt])


#: the longest chain of directions one nest of JVPs takes: its trace holds ``2**k`` copies of
#: the expression's forward pass before XLA drops the unused ones, so compile time grows with
#: it (at 4, a 2-D Laplacian's gradient compiled in twice the time for 10 % fewer flops)
MAX_SHARED_ORDER = 3


def differentiated(node: Derivative) -> tuple[Placeholder, tuple]:
    """The expression whose derivative ``node`` takes, seen through components: ``diff(u[0:1],
    t)`` is ``diff(u, t)[0:1]``, so the derivatives of all of a network's outputs share one
    nest. Returns ``(base expression, indices to apply to its derivative, innermost first)``."""
    expr, indices = node.args[0], []
    while isinstance(expr, Index):
        indices.append(expr.index)
        expr = expr.args[0]
    return expr, tuple(reversed(indices))


def multi_index(node: Derivative) -> tuple[int, ...]:
    """The coordinates ``node`` differentiates against, sorted (partial derivatives of a
    smooth function commute, so ``∂x∂y`` and ``∂y∂x`` are one value)."""
    return tuple(sorted(v.index for v in node.wrt))


def _chain(indices) -> tuple[int, ...]:
    """The shortest sorted chain of directions containing every multi-index in ``indices``:
    each coordinate as often as the highest order any of them takes it."""
    most: dict[int, int] = {}
    for idx in indices:
        for i in set(idx):
            most[i] = max(most.get(i, 0), idx.count(i))
    return tuple(i for i in sorted(most) for _ in range(most[i]))


def _nests(members) -> list[list[Derivative]]:
    """``members`` split into groups whose chains are at most ``MAX_SHARED_ORDER`` long,
    lowest orders first (the first group also gives the expression's own value)."""
    groups: list[list[Derivative]] = []
    for m in sorted(members, key=lambda m: (len(m.wrt), multi_index(m))):
        for g in groups:
            if len(_chain([multi_index(o) for o in g + [m]])) <= MAX_SHARED_ORDER:
                g.append(m)
                break
        else:
            groups.append([m])
    return groups


def lower_derivatives(ev, expr: Placeholder, members, at) -> dict:
    """``expr`` and every :class:`Derivative` of it (or of a component of it) in ``members``
    at the point ``at``, from one nest of forward-mode JVPs, written into ``at.memo`` (which
    is returned).

    With the chain of directions ``d_1 … d_k`` (each coordinate as often as the highest order
    of it in ``members``), ``F_0(c) = expr(c)`` and ``F_j(c) = jvp(F_{j-1}, c, e_{d_j})``
    returns the pair (value, directional derivative) of everything ``F_{j-1}`` returns. So
    ``F_k`` holds ``∂^α expr`` for every multi-index ``α`` within the chain, the expression's
    value among them; the copies no member reads are dead code that XLA removes. One nest
    instead of one per derivative: the forward pass and, under ``jax.grad``, the backward pass
    through the expression are shared (Raissi's ``u, u_t, u_x, u_xx``: 35 % fewer flops in the
    gradient than four separate nests, 20 % fewer than reverse mode by hand). Chains longer
    than ``MAX_SHARED_ORDER`` are split into several nests (a 2-D Laplacian: ``∂xx`` with
    the value and first derivatives, ``∂yy`` in a second nest).
    """
    dim = at.coords.shape[0]

    def value(c):  # hoisted values are constants in c: never used inside a derivative
        return ev.point(expr, at.moved(c, expr.id))

    for n, group in enumerate(_nests(members)):
        chain = _chain([multi_index(m) for m in group])
        fn = value
        for direction in chain:
            fn = _with_directional(fn, direction, dim)
        values = fn(at.coords)
        if n == 0:
            at.memo.setdefault(expr.id, _pick(values, [0] * len(chain)))
        for m in group:
            idx = multi_index(m)
            bits = [0] * len(chain)
            for i in set(idx):
                first = chain.index(i)
                bits[first : first + idx.count(i)] = [1] * idx.count(i)
            out = _pick(values, bits)
            for index in differentiated(m)[1]:
                out = out[index]
            at.memo[m.id] = out
    return at.memo


def _with_directional(f, index: int, dim: int):
    """``c -> (f(c), ∂f/∂c[index](c))`` by one forward-mode JVP."""
    tangent = jnp.zeros((dim,), dtype=default_float()).at[index].set(1.0)

    def f_and_df(c):
        return jax.jvp(f, (c,), (tangent,))

    return f_and_df


def _pick(values, bits):
    """The entry of a nest's nested (value, derivative) pairs that takes the derivative at
    the chain positions where ``bits`` is 1 (the outermost JVP is the last position)."""
    for b in reversed(bits):
        values = values[b]
    return values


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
