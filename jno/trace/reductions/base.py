"""What every reduction and likelihood shares, and how one becomes a fluent method.

A :class:`Reduction` is a global scalar of a point-wise residual (its first argument). A
subclass sets ``kind`` (the name of its method, of its sympy function and the stem of its
constraints' default names) and ``reduce(*values)``, the JAX reduction of its arguments'
values (the residual's arrive batched, ``(n, ...)``). A :class:`Likelihood` is a reduction
whose value is an exact negative log-likelihood.
"""

from __future__ import annotations

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from ..node import Data, Placeholder, _describe, as_node


class Reduction(Placeholder):
    """A scalar loss of the residual ``args[0]`` over its points and components."""

    op = "reduce"
    kind = "reduce"
    #: the value is a sum over points: a subsample of ``n`` of the ``N`` points scales it by
    #: ``N/n`` so the estimate stays unbiased (means are unbiased already)
    sum_like = False

    def __init__(self, residual, *others: Placeholder):
        residual = as_node(residual)
        super().__init__((residual, *others), None, (), residual.dtype)

    @property
    def residual(self) -> Placeholder:
        return self.args[0]

    @property
    def name_stem(self) -> str:
        return self.kind

    def reduce(self, *values: jax.Array) -> jax.Array:
        """The reduction of the arguments' values (the residual's first, batched)."""
        raise NotImplementedError(f"{type(self).__name__} defines no reduce()")

    def lower(self, ev, args):
        out = self.reduce(*args)
        return out * ev.scale(self.residual) if self.sum_like else out

    def sympy_form(self, args):
        return sympy.Function(self.kind)(args[0])


class Likelihood(Reduction):
    """A calibrated likelihood of a residual ``r``: the value is the exact negative
    log-likelihood ``-Σ log p(r_i)`` over every point and component, normalising constants
    included. Its negative enters a log-density as it is (never tempered by
    ``likelihood_scale``), and it is a sum over points (``N/n`` under subsampling).

    ``reduce(r, *params)`` receives the arguments after the residual (a std, degrees of
    freedom, ...) shaped to broadcast against the batched residual ``(n, ...)``, not
    broadcast: a number stays a number, so a constant std costs no ``(n, ...)`` array (sum a
    term of a parameter alone with :func:`broadcast_sum`).
    """

    calibrated = True
    sum_like = True

    def lower(self, ev, args):
        r, *params = args
        params = [_aligned(v, n, self.residual) for v, n in zip(params, self.args[1:])]
        return super().lower(ev, [r, *params])


def broadcast_sum(value: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``Σ broadcast_to(value, shape)`` without forming the broadcast: ``Σ value`` times the
    number of copies, ``prod(shape) / value.size`` (``value`` broadcastable to ``shape``)."""
    value = jnp.asarray(value)
    return jnp.sum(value) * (math.prod(shape) // value.size)


def scaled_sum(h, degree: int, r: jax.Array, s: jax.Array) -> jax.Array:
    """``Σ h(r / s)`` for an ``h`` homogeneous of ``degree`` (``h(r / s) = h(r) / s^degree``:
    ``|·|``, ``(·)²``). With one ``s`` the sum is divided once, ``Σ h(r) / s^degree``: no
    ``(n, ...)`` array of ``r / s`` is formed (a NUTS leapfrog at n = 1e4 measured 15 % faster,
    ``benchmarks/README.md``)."""
    if jnp.size(s) == 1:
        return jnp.sum(h(r)) / jnp.reshape(s, ()) ** degree
    return jnp.sum(h(r / s))


def _aligned(value, node: Placeholder, residual: Placeholder) -> jax.Array:
    """``value`` of the argument ``node`` shaped to broadcast against the batched residual:
    a point-wise value ``(n, *node.shape)`` gets unit axes between its rows and its per-point
    axes (which align on the right); a global value is left as it is."""
    value = jnp.asarray(value)
    if node.pointset is not None:
        pad = (1,) * (len(residual.shape) - len(node.shape))
        value = jnp.reshape(value, value.shape[:1] + pad + value.shape[1:])
    return value


def _elementwise(value, node: Placeholder, r, residual: Placeholder) -> jax.Array:
    """``value`` of the argument ``node`` broadcast to the batched residual ``r``."""
    return jnp.broadcast_to(_aligned(value, node, residual), r.shape)


def positive_input(residual: Placeholder, value, kind: str, arg: str) -> Placeholder:
    """A likelihood's positive argument ``arg`` (a std, a scale, degrees of freedom) as a node.

    ``value`` is a number, an array broadcastable to the residual's per-point shape, an array
    with one row per point of the residual's point set (attached to it as data), or a jno
    expression such as a Parameter (learned). Numbers and arrays must be finite and > 0.

    Raises:
        ValueError: naming ``arg``, when a number or array is not finite and positive, a
            point-wise value lives on another point set than the residual, or the shapes do
            not broadcast to the residual's.
    """
    shown = value if isinstance(value, (int, float)) else "..."
    where = f"{_describe(residual)}.{kind}({arg}={shown})"
    if not isinstance(value, Placeholder):
        try:
            arr = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: {arg} must be a positive number, an array or a jno Parameter, "
                f"got {type(value).__name__}"
            ) from None
        if not np.all(np.isfinite(arr) & (arr > 0)):
            raise ValueError(f"{where}: {arg} must be finite and > 0 (every element)")
        ps = residual.pointset
        if ps is not None and arr.ndim >= 1 and arr.shape[0] == ps.size and ps.size > 1:
            name = f"_{arg}_{residual.id}"
            ps.attach(name, np.asarray(value))
            value = Data(ps, name)
    node = as_node(value)
    if node.pointset is not None and node.pointset is not residual.pointset:
        other = "no point set" if residual.pointset is None else "another point set"
        raise ValueError(
            f"{where}: {arg} is point-wise on '{node.pointset.label}', the residual on {other}"
        )
    try:
        fits = np.broadcast_shapes(residual.shape, node.shape) == residual.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{where}: {arg} of shape {node.shape} does not broadcast to the residual's "
            f"per-point shape {residual.shape}"
        )
    return node


def residual_property(cls: type[Reduction]) -> type[Reduction]:
    """Class decorator: the property ``r.<cls.kind>`` of every placeholder is ``cls(r)``."""
    return _register(cls, property(cls, doc=cls.__doc__))


def residual_method(cls: type[Reduction]) -> type[Reduction]:
    """Class decorator: the method ``r.<cls.kind>(*args, **kwargs)`` of every placeholder is
    ``cls(r, *args, **kwargs)`` (with the class's docstring and signature)."""

    def method(self, *args, **kwargs):
        return cls(self, *args, **kwargs)

    params = list(inspect.signature(cls.__init__).parameters.values())
    method.__signature__ = inspect.Signature([params[0], *params[2:]])
    method.__name__ = method.__qualname__ = cls.kind
    method.__doc__ = cls.__doc__
    return _register(cls, method)


def _register(cls, attribute):
    if cls.kind in vars(Placeholder):
        raise TypeError(
            f"{cls.__name__}: Placeholder.{cls.kind} exists already; choose another kind"
        )
    setattr(Placeholder, cls.kind, attribute)
    return cls
