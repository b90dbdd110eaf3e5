"""``jno.np``: numpy-like functions that build graph nodes when given placeholders.

With plain numbers or arrays they compute directly (``jno.np.sin(0.5)``), so the same code
serves for writing residuals and for checking them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as _np

from .constraints import Constraint
from .trace.derivative import grad, laplacian
from .trace.model import Parameter
from .trace.node import Apply, Placeholder, apply, as_node
from .trace.pointset import default_float

pi = float(_np.pi)
e = float(_np.e)
inf = float(_np.inf)


def _pointwise(jfn, name: str):
    @functools.wraps(jfn)
    def fn(*args, **kwargs):
        if any(isinstance(a, Placeholder) for a in args):
            return apply(jfn, *args, name=name, **kwargs)
        return jfn(*args, **kwargs)

    fn.__name__ = name
    fn.__doc__ = f"Point-wise ``jnp.{name}``; builds a graph node on placeholders."
    return fn


_UNARY_AND_BINARY = (
    "sin cos tan exp log log1p expm1 sqrt tanh abs sinh cosh arctan arcsin arccos arctanh "
    "arcsinh arccosh sign floor ceil square reciprocal maximum minimum where arctan2 power "
    "clip heaviside exp2 log2 log10 cbrt sinc logical_and logical_or logical_not"
).split()

for _name in _UNARY_AND_BINARY:
    globals()[_name] = _pointwise(getattr(jnp, _name), _name)


def _reduce_components(jfn, name):
    @functools.wraps(jfn)
    def fn(x, axis=-1, keepdims=True, **kwargs):
        if isinstance(x, Placeholder):
            return apply(jfn, x, name=name, axis=axis, keepdims=keepdims, **kwargs)
        return jfn(x, axis=axis, keepdims=keepdims, **kwargs)

    fn.__name__ = name
    fn.__doc__ = (
        f"``jnp.{name}`` over the per-point components (default last axis, keepdims). To "
        f"reduce over points use the ``.{name}`` property of an expression."
    )
    return fn


sum = _reduce_components(jnp.sum, "sum")  # noqa: A001
mean = _reduce_components(jnp.mean, "mean")
prod = _reduce_components(jnp.prod, "prod")
norm = _reduce_components(
    lambda x, axis=-1, keepdims=True: jnp.linalg.norm(x, axis=axis, keepdims=keepdims), "norm"
)


def concat(xs, axis: int = -1):
    """Concatenate per-point values (``jno.np.concat([x, y], axis=-1)``)."""
    if any(isinstance(a, Placeholder) for a in xs):
        nodes = [as_node(a) for a in xs]
        return Apply(lambda *a: jnp.concatenate(a, axis=axis), nodes, {}, "concat")
    return jnp.concatenate(xs, axis=axis)


concatenate = concat


def stack(xs, axis: int = -1):
    """Stack per-point values on a new axis."""
    if any(isinstance(a, Placeholder) for a in xs):
        nodes = [as_node(a) for a in xs]
        return Apply(lambda *a: jnp.stack(a, axis=axis), nodes, {}, "stack")
    return jnp.stack(xs, axis=axis)


def parameter(
    shape, key=None, name: str | None = None, init: float | None = None, constraint=None
) -> Parameter:
    """A trainable array usable in expressions.

    Args:
        shape: the parameter's shape, e.g. ``(1,)``.
        key: a PRNG key; the start is ``N(0, 1)`` draws (of the unconstrained value ``u`` when
            constrained: ``T(u)``). Without a key the start is zeros, ``T(0)`` when constrained
            (1 for ``positive``, the midpoint of an ``interval``), or ``init`` when given.
        name: shown in logs and history (``"a"``).
        init: a constant start value (inside the constraint's support).
        constraint: ``None`` (any real) or a :mod:`jno.constraints` support, e.g.
            ``jno.constraints.positive`` or ``jno.constraints.interval(0.0, 2.0)``: samplers,
            VI and optimisers move ``u = T⁻¹(θ)`` and every expression reads ``θ``; priors are
            written on ``θ``.
    """
    shape = _parameter_shape(shape, name)
    where = f"jno.np.parameter(shape={shape!r}{'' if name is None else f', name={name!r}'})"
    if constraint is not None and not isinstance(constraint, Constraint):
        raise TypeError(
            f"{where}: constraint must be one of jno.constraints (positive, unit_interval, "
            f"greater_than(c), less_than(c), interval(lo, hi)), got {constraint!r}"
        )
    if init is not None:
        value = jnp.full(shape, init, dtype=default_float())
        if constraint is not None and not constraint.contains(value):
            raise ValueError(
                f"{where}: init={init!r} is outside the support of constraint={constraint!r}; "
                "give a start inside it (or leave init out to start at the support's centre)"
            )
    elif key is not None:
        value = jax.random.normal(key, shape, dtype=default_float())
        value = value if constraint is None else constraint.forward(value)
    else:
        value = jnp.zeros(shape, dtype=default_float())
        value = value if constraint is None else constraint.forward(value)
    return Parameter(value, name=name, constraint=constraint)


def _parameter_shape(shape, name) -> tuple[int, ...]:
    """``shape`` as a tuple of non-negative ints, or a clear error naming the parameter."""
    where = f"jno.np.parameter(shape={shape!r}{'' if name is None else f', name={name!r}'})"
    hint = "shape must be an int or a tuple of ints, e.g. (1,) or (3, 2)"
    if isinstance(shape, (bool, _np.bool_)):
        raise TypeError(f"{where}: {hint}")
    if isinstance(shape, (int, _np.integer)):
        shape = (shape,)
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(f"{where}: {hint}") from None
    for d in dims:
        if isinstance(d, (bool, _np.bool_)) or not isinstance(d, (int, _np.integer)):
            raise TypeError(f"{where}: dimension {d!r} ({type(d).__name__}) is not an int; {hint}")
        if d < 0:
            raise ValueError(f"{where}: dimension {int(d)} is negative; dimensions are >= 0")
    return tuple(int(d) for d in dims)


__all__ = [
    *_UNARY_AND_BINARY,
    "sum",
    "mean",
    "prod",
    "norm",
    "concat",
    "concatenate",
    "stack",
    "parameter",
    "grad",
    "laplacian",
    "pi",
    "e",
    "inf",
]
