"""Evaluate a lowered program with its unit trailing axes dropped: ``(n, 1)`` work as ``(n,)``.

A point-wise expression is evaluated per point and vmapped over its rows, so a scalar field
(``sin πx``, a residual, a data column) is an ``(n, 1)`` array. XLA's CPU backend vectorises
an element-wise loop over the array's minor dimension, 1 here: the same maths on ``(n,)``
arrays runs 5-6 times faster at n = 1e4 (``benchmarks/scale_points.py``). jax's batching
rules put the batch axis first whatever the vmap's ``in_axes``, so the layout cannot be
chosen at the vmap.

:func:`narrowed` re-evaluates the traced program (its jaxpr) with every array of shape
``(..., m, 1, ..., 1)`` held as ``(..., m)``: element-wise operations, ``broadcast_in_dim``
and reductions run on the narrow arrays directly (the dropped axes have size 1, so the values
are the same numbers); every other operation gets its operands reshaped back to their traced
shapes (a reshape that drops or adds unit axes is a bitcast in XLA, free) and its result
reshaped to narrow. Nested ``jit`` calls are evaluated inline the same way; ``custom_jvp``,
control flow and the rest keep their own rules. The result is the function's own result, to
round-off, with the same gradients (autodiff sees ordinary jax operations).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

import jax
import jax.numpy as jnp
from jax.extend import core

# Primitives that act element by element on operands of one shape (operands of rank 0, and
# operands whose axes are 1 where the result's are not, broadcast).
ELEMENTWISE = frozenset(
    """
    abs acos acosh add and asin asinh atan atan2 atanh cbrt ceil clamp conj convert_element_type
    copy copy_p cos cosh digamma div erf erf_inv erfc exp exp2 expm1 floor igamma igammac
    imag integer_pow is_finite lgamma log log1p logistic max min mul ne eq ge gt le lt neg
    nextafter not or polygamma pow real reduce_precision rem round rsqrt select_n sign sin
    sinh sqrt square sub tan tanh xor zeta
    """.split()
)
REDUCTIONS = frozenset({"reduce_sum", "reduce_max", "reduce_min", "reduce_prod", "reduce_and",
                        "reduce_or"})


def narrow_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without its trailing unit axes, when it has at least two axes and ends in 1
    (``(n, 1) -> (n,)``, ``(n, 1, 1) -> (n,)``, ``(1, 1) -> ()``); otherwise ``shape``."""
    if len(shape) < 2 or shape[-1] != 1:
        return tuple(shape)
    k = len(shape)
    while k > 0 and shape[k - 1] == 1:
        k -= 1
    return tuple(shape[:k])


def _numeric(aval) -> bool:
    return hasattr(aval, "shape") and not jax.dtypes.issubdtype(aval.dtype, jax.dtypes.extended)


def _narrow_of(aval) -> tuple[int, ...] | None:
    """The narrow shape of a value of ``aval``, or ``None`` if it is held as traced."""
    if not _numeric(aval):
        return None
    short = narrow_shape(tuple(aval.shape))
    return short if short != tuple(aval.shape) else None


def _reshape(x, shape):
    return x if tuple(jnp.shape(x)) == tuple(shape) else jnp.reshape(x, shape)


def narrowed(fn: Callable) -> Callable:
    """``fn`` evaluated with unit trailing axes dropped (module docstring): same values and
    gradients, faster element-wise work on ``(n, 1)`` arrays. ``fn`` takes and returns
    pytrees of arrays; it is traced to a jaxpr at every call (inside ``jit``: once per
    compile) and that jaxpr is evaluated narrow."""

    @wraps(fn)
    def run(*args):
        closed, out_shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        outs = eval_narrow(closed.jaxpr, closed.consts, jax.tree.leaves(args))
        return jax.tree.unflatten(jax.tree.structure(out_shape), outs)

    return run


def eval_narrow(jaxpr, consts, args) -> list:
    """The outputs of ``jaxpr`` on ``args``, in their traced shapes, computed narrow."""
    env: dict = {}

    def read(v):
        if isinstance(v, core.Literal):
            return v.val
        return env[v]

    def write(v, value):
        if isinstance(v, core.DropVar):
            return
        short = _narrow_of(v.aval)
        env[v] = _reshape(value, short) if short is not None else value

    def traced(v):
        """``v``'s value in its traced shape."""
        x = read(v)
        return _reshape(x, v.aval.shape) if _numeric(v.aval) else x

    for v, c in zip(jaxpr.constvars, consts):
        write(v, c)
    for v, a in zip(jaxpr.invars, args):
        write(v, a)
    for eqn in jaxpr.eqns:
        with eqn.ctx.manager:  # the equation's context (compute placement, metadata)
            outs = _eval_eqn(eqn, read, traced)
        if not eqn.primitive.multiple_results:
            outs = [outs]
        for v, o in zip(eqn.outvars, outs):
            write(v, o)
    return [traced(v) for v in jaxpr.outvars]


def _eval_eqn(eqn, read, traced):
    name = eqn.primitive.name
    out_aval = eqn.outvars[0].aval
    short = None if eqn.primitive.multiple_results else _narrow_of(out_aval)
    if short is not None and name in ELEMENTWISE:
        k = len(short)
        if all(_elementwise_operand(v, len(out_aval.shape)) for v in eqn.invars):
            ops = [
                read(v) if len(getattr(v.aval, "shape", ())) == 0
                else _reshape(read(v), v.aval.shape[:k])
                for v in eqn.invars
            ]
            return eqn.primitive.bind(*ops, **eqn.params)
    if short is not None and name == "broadcast_in_dim" and len(eqn.invars) == 1:
        return _broadcast_narrow(eqn, read, short)
    if name in REDUCTIONS:
        return _reduce_narrow(eqn, read)
    if name in ("pjit", "jit") and _inlinable(eqn.params):
        inner = eqn.params["jaxpr"]
        return eval_narrow(inner.jaxpr, inner.consts, [traced(v) for v in eqn.invars])
    params = eqn.primitive.get_bind_params(eqn.params)
    return eqn.primitive.bind(*[traced(v) for v in eqn.invars], **params)


def _elementwise_operand(v, rank: int) -> bool:
    shape = getattr(v.aval, "shape", None)
    return shape is not None and len(shape) in (0, rank) and _numeric(v.aval)


def _broadcast_narrow(eqn, read, short):
    """``broadcast_in_dim`` to a narrow result: operand axes mapped to dropped (unit) result
    axes are unit themselves and are dropped too."""
    (operand,) = eqn.invars
    k = len(short)
    dims = eqn.params["broadcast_dimensions"]
    keep = [i for i, d in enumerate(dims) if d < k]
    op_shape = tuple(operand.aval.shape)
    x = _reshape(read(operand), tuple(op_shape[i] for i in keep))
    params = {**eqn.params, "shape": short, "broadcast_dimensions": tuple(dims[i] for i in keep)}
    return eqn.primitive.bind(x, **params)


def _reduce_narrow(eqn, read):
    """A reduction of a narrow operand over the axes it still has (the dropped ones are
    unit: reducing over them changes nothing)."""
    (operand,) = eqn.invars
    x = read(operand)
    k = len(jnp.shape(x))
    axes = tuple(a for a in eqn.params["axes"] if a < k)
    out = eqn.primitive.bind(x, **{**eqn.params, "axes": axes})
    target = _narrow_of(eqn.outvars[0].aval) or tuple(eqn.outvars[0].aval.shape)
    return _reshape(out, target)


def _inlinable(params) -> bool:
    """A nested ``jit`` without shardings, layouts or donations of its own: evaluating its
    body inline computes the same values."""
    unspecified = lambda s: type(s).__name__ == "UnspecifiedValue"  # noqa: E731
    return (
        all(unspecified(s) for s in params.get("in_shardings", ()))
        and all(unspecified(s) for s in params.get("out_shardings", ()))
        and all(lay is None for lay in params.get("in_layouts", ()))
        and all(lay is None for lay in params.get("out_layouts", ()))
        and not any(params.get("donated_invars", ()))
        and not params.get("compiler_options_kvs")
    )

