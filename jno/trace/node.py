"""The symbolic graph: :class:`Placeholder` and the operators that build it.

Building a graph computes nothing. Every node knows

* ``pointset``: the :class:`~jno.trace.pointset.PointSet` it is point-wise over, or ``None``
  for a global value (a parameter, a literal, a reduction);
* ``shape``: its per-point shape when point-wise, its full shape when global;
* ``args``: its child nodes.

and carries its own lowering and display (the lowering dispatches on these, never on a name):

* :meth:`Placeholder.lower` (the value from its arguments' values), or
  :meth:`~Placeholder.lower_global` / :meth:`~Placeholder.lower_point` where the two levels
  differ; each receives the :class:`~jno.lower.evaluate.Evaluator`, so this layer imports
  nothing of the lowering;
* :meth:`Placeholder.sympy_form`: its sympy expression from its arguments' (``to_sympy``);
* properties: ``is_leaf``, ``is_input_leaf``, ``adopts_pointset``, ``per_point``,
  ``reads_model`` / ``reads_parameters``, ``redrawn``, ``residual``, ``calibrated``,
  ``constant``, ``name_stem``.

Shapes are inferred with :func:`jax.eval_shape` on abstract values, so a shape mismatch is a
``ValueError`` raised while the expression is written, naming the expression.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import sympy

from .pointset import PointSet, default_float
from .to_sympy import apply_sympy, literal_sympy, to_sympy

_ids = itertools.count()


def _describe(node: Placeholder) -> str:
    try:
        text = str(node)
    except Exception:  # pragma: no cover - repr must never hide the real error
        text = node.op
    return text if len(text) < 120 else text[:117] + "..."


def common_pointset(args: Sequence[Placeholder], what: str) -> PointSet | None:
    """The one point set shared by ``args`` (``None`` if all are global).

    Raises:
        ValueError: two arguments live on different point sets.
    """
    found: PointSet | None = None
    for a in args:
        ps = a.pointset
        if ps is None:
            continue
        if found is None:
            found = ps
        elif ps is not found:
            raise ValueError(
                f"{what}: mixes point sets '{found.label}' ({found.size} points) and "
                f"'{ps.label}' ({ps.size} points) point-wise. Each point-wise expression must "
                "live on one point set: reduce each part first (e.g. `a.mse + b.mse`) or "
                "evaluate the model on the other set's variables."
            )
    return found


def as_node(value: Any) -> Placeholder:
    """Wrap numbers and arrays as :class:`Literal`; leave placeholders alone."""
    if isinstance(value, Placeholder):
        return value
    if isinstance(value, (int, float, bool, complex, np.ndarray, np.generic, jax.Array)):
        return Literal(value)
    raise TypeError(
        f"cannot use {type(value).__name__} {value!r} in a jno expression: use a number, an "
        "array, or a jno placeholder (wrap JAX functions with jno.fn)."
    )


class Placeholder:
    """A node of the symbolic graph. Operators on placeholders build new nodes.

    ``op`` is a display name (``repr``, sympy's fallback); nothing dispatches on it.
    """

    op: str = "node"
    __array_priority__ = 1000  # numpy defers to our reflected operators

    #: a leaf without arguments read directly (coordinates, data, noise, literals, parameters)
    is_leaf = False
    #: a leaf read from the inputs (coordinates, data, noise, literals): nothing to hoist
    is_input_leaf = False
    #: point-wise on whatever point set it is combined with, having none of its own (noise)
    adopts_pointset = False
    #: a leaf drawn anew at every step (``redraw=True`` noise)
    redrawn = False
    #: a calibrated likelihood: its value is an exact negative log-likelihood, never tempered
    #: by ``likelihood_scale``
    calibrated = False
    #: the point-wise residual a reduction or likelihood consumes (``None`` for other nodes)
    residual: Placeholder | None = None
    #: the value of a constant (a literal), ``None`` for other nodes
    constant: Any = None

    def __init__(self, args: Sequence[Placeholder], pointset: PointSet | None, shape, dtype):
        self.args = tuple(args)
        self.pointset = pointset
        self.shape = tuple(shape)
        self.dtype = dtype
        self.id = next(_ids)
        self.label: str | None = None

    # ------------------------------------------------------------------ structure
    @property
    def pointwise(self) -> bool:
        return self.pointset is not None

    def walk(self):
        """Every node of the sub-graph rooted here, each once, children first."""
        seen: set[int] = set()
        order: list[Placeholder] = []
        stack: list[tuple[Placeholder, bool]] = [(self, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
                continue
            if node.id in seen:
                continue
            seen.add(node.id)
            stack.append((node, True))
            for child in reversed(node.children()):
                if child.id not in seen:
                    stack.append((child, False))
        return order

    def children(self) -> tuple[Placeholder, ...]:
        return self.args

    def abstract(self) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(self.shape, self.dtype)

    @property
    def per_point(self) -> bool:
        """Evaluated inside the per-point function: on a point set, or adopting one (noise)."""
        return self.pointset is not None or self.adopts_pointset

    @property
    def reads_model(self):
        """The model whose parameters this node reads itself (a Parameter, a network's
        call), else ``None``."""
        return None

    @property
    def reads_parameters(self) -> bool:
        return self.reads_model is not None

    @property
    def name_stem(self) -> str:
        """The stem of a constraint's default name (``mse`` in ``mse_0``)."""
        return self.op

    # ------------------------------------------------------------------ lowering
    def lower(self, ev, args: list) -> jax.Array:
        """This node's value from its arguments' values, the same at the global and at the
        per-point level; ``ev`` is the :class:`~jno.lower.evaluate.Evaluator`."""
        raise NotImplementedError(f"jno.lower: cannot lower {self!r}")

    def lower_global(self, ev) -> jax.Array:
        """The value of a global node (point-wise arguments arrive batched, ``(n, ...)``)."""
        return self.lower(ev, [ev.value(a) for a in self.args])

    def lower_point(self, ev, at) -> jax.Array:
        """The value at one point ``at`` (a :class:`~jno.lower.evaluate.Point`), inside the
        vmapped per-point function."""
        return self.lower(ev, [ev.point(a, at) for a in self.args])

    def sympy_form(self, args: list):
        """This node as a sympy expression of its arguments' sympy expressions."""
        return sympy.Function(self.op)(*args)

    # ------------------------------------------------------------------ arithmetic
    def __add__(self, o):
        return apply(jnp.add, self, o, name="+")

    def __radd__(self, o):
        return apply(jnp.add, o, self, name="+")

    def __sub__(self, o):
        return apply(jnp.subtract, self, o, name="-")

    def __rsub__(self, o):
        return apply(jnp.subtract, o, self, name="-")

    def __mul__(self, o):
        return apply(jnp.multiply, self, o, name="*")

    def __rmul__(self, o):
        return apply(jnp.multiply, o, self, name="*")

    def __truediv__(self, o):
        return apply(jnp.divide, self, o, name="/")

    def __rtruediv__(self, o):
        return apply(jnp.divide, o, self, name="/")

    def __pow__(self, o):
        if isinstance(o, (int, float, np.integer, np.floating)) and float(o).is_integer():
            # integer powers stay smooth at 0 (jnp.power's derivative goes through log)
            return apply(integer_pow, self, name="ipow", n=int(o))
        return apply(jnp.power, self, o, name="**")

    def __rpow__(self, o):
        return apply(jnp.power, o, self, name="**")

    def __matmul__(self, o):
        return apply(jnp.matmul, self, o, name="@")

    def __rmatmul__(self, o):
        return apply(jnp.matmul, o, self, name="@")

    def __neg__(self):
        return apply(jnp.negative, self, name="neg")

    def __pos__(self):
        return self

    def __abs__(self):
        return apply(jnp.abs, self, name="abs")

    def __lt__(self, o):
        return apply(jnp.less, self, o, name="<")

    def __le__(self, o):
        return apply(jnp.less_equal, self, o, name="<=")

    def __gt__(self, o):
        return apply(jnp.greater, self, o, name=">")

    def __ge__(self, o):
        return apply(jnp.greater_equal, self, o, name=">=")

    def __eq__(self, o):  # type: ignore[override]
        return apply(jnp.equal, self, o, name="==")

    def __ne__(self, o):  # type: ignore[override]
        return apply(jnp.not_equal, self, o, name="!=")

    __hash__ = object.__hash__

    def __getitem__(self, index):
        return Index(self, index)

    def __bool__(self):
        raise TypeError(
            f"the truth value of the jno expression {_describe(self)} is symbolic; use "
            "jno.np.where(condition, a, b) instead of `if`/`and`/`or`."
        )

    def __iter__(self):
        raise TypeError(f"jno expression {_describe(self)} is not iterable; index it instead.")

    # ------------------------------------------------------------------ calculus
    def d(self, wrt, order: int = 1) -> Placeholder:
        """First (or ``order``-th) derivative with respect to the coordinate ``wrt``."""
        from .derivative import diff

        return diff(self, wrt, order=order)

    def dd(self, wrt) -> Placeholder:
        """Second derivative with respect to the coordinate ``wrt``."""
        from .derivative import diff

        return diff(self, wrt, order=2)

    # ------------------------------------------------------------------ constraints
    def name(self, label: str) -> Placeholder:
        """Give this expression a name (used for constraints in the History)."""
        if not isinstance(label, str):
            raise TypeError(f"name must be a string, got {type(label).__name__}")
        self.label = label
        return self

    # ------------------------------------------------------------------ display
    def to_sympy(self):
        """This expression as a sympy expression (coordinates and models become symbols)."""
        return to_sympy(self)

    def _repr_latex_(self) -> str:
        return f"${sympy.latex(self.to_sympy())}$"

    def __str__(self) -> str:
        return str(to_sympy(self))

    def __repr__(self) -> str:
        where = f"on {self.pointset.label}" if self.pointset is not None else "global"
        return f"<jno {self.op} {_describe(self)} {where} shape={self.shape}>"


# ---------------------------------------------------------------------- leaves
class Variable(Placeholder):
    """Coordinate ``index`` of a point set; per-point shape ``(1,)``."""

    op = "variable"
    is_leaf = is_input_leaf = True

    def __init__(self, pointset: PointSet, index: int, name: str):
        super().__init__((), pointset, (1,), default_float())
        self.index = int(index)
        self.var_name = name

    def lower_point(self, ev, at):
        return at.coords[self.index : self.index + 1]

    def sympy_form(self, args):
        return sympy.Symbol(self.var_name, real=True)


class Literal(Placeholder):
    """A constant (number or array), global."""

    op = "literal"
    is_leaf = is_input_leaf = True

    def __init__(self, value):
        value = np.asarray(value)
        if value.dtype == np.float64 and default_float() != np.float64:
            value = value.astype(default_float())
        if value.dtype == np.int64:
            value = value.astype(np.int32)
        super().__init__((), None, value.shape, value.dtype)
        self.value = value

    @property
    def constant(self):
        return self.value

    def lower_global(self, ev):
        return jnp.asarray(self.value)

    def sympy_form(self, args):
        return literal_sympy(self.value)


class Data(Placeholder):
    """A data array attached to a point set: row ``i`` belongs to point ``i``."""

    op = "data"
    is_leaf = is_input_leaf = True

    def __init__(self, pointset: PointSet, name: str):
        if name not in pointset.data:
            raise KeyError(f"no data '{name}' attached to point set '{pointset.label}'")
        array = pointset.data[name]
        super().__init__((), pointset, array.shape[1:], array.dtype)
        self.data_name = name

    def lower_point(self, ev, at):
        return at.data(self.data_name)

    def sympy_form(self, args):
        return sympy.Symbol(self.data_name.lstrip("_"), real=True)


class Noise(Placeholder):
    """Observation noise drawn once per solve from the crux seed.

    The draw has one value per point and per-point shape ``shape`` on whatever point set the
    noise is combined with. ``distribution`` is one of :mod:`jno.noise`'s distributions (a
    ``name`` and ``sample(key, shape)``). ``redraw=True`` draws it anew every step (opt-in;
    this makes the target random, so a sampler no longer sees one fixed data set).
    """

    op = "noise"
    is_leaf = is_input_leaf = adopts_pointset = True

    def __init__(self, distribution, shape=(), redraw: bool = False):
        super().__init__((), None, shape, default_float())
        self.distribution = distribution
        self.redrawn = bool(redraw)

    def sample(self, key, leading: tuple[int, ...]):
        """One draw of shape ``leading + shape``."""
        return self.distribution.sample(key, tuple(leading) + self.shape)

    def lower_point(self, ev, at):
        return at.noise(self)

    def sympy_form(self, args):
        return sympy.Symbol(f"epsilon_{self.distribution.name}", real=True)


# ---------------------------------------------------------------------- operations
class Apply(Placeholder):
    """A JAX function applied point-wise to its arguments."""

    op = "apply"

    def __init__(self, fn: Callable, args: Sequence[Placeholder], kwargs: dict, name: str):
        pointset = common_pointset(args, f"`{name}`")
        self.fn = fn
        self.kwargs = dict(kwargs)
        self.fn_name = name
        try:
            out = jax.eval_shape(lambda *a: fn(*a, **self.kwargs), *[a.abstract() for a in args])
        except Exception as err:
            shapes = ", ".join(str(a.shape) for a in args)
            raise ValueError(
                f"`{name}` cannot combine arguments of per-point shapes {shapes}: {err}. Fix the "
                "shapes (index components with u[..., i:i+1] or reshape) so they broadcast."
            ) from None
        if not isinstance(out, jax.ShapeDtypeStruct):
            raise TypeError(f"`{name}` must return one array, got {type(out).__name__}")
        super().__init__(args, pointset, out.shape, out.dtype)

    @property
    def name_stem(self) -> str:
        """A weighted constraint (``10 * bc.mse``) is named after its reduction."""
        if not self.args:
            return self.op
        return max(self.args, key=lambda a: a.residual is not None).name_stem

    def lower(self, ev, args):
        return self.fn(*args, **self.kwargs)

    def sympy_form(self, args):
        return apply_sympy(self.fn_name, args, self.kwargs)


class Index(Placeholder):
    """``expr[index]`` on the per-point value."""

    op = "index"

    def __init__(self, expr: Placeholder, index):
        if isinstance(index, Placeholder):
            raise TypeError("indexing with a jno expression is not supported; use jno.np.where")
        self.index = index
        try:
            out = jax.eval_shape(lambda v: v[index], expr.abstract())
        except Exception as err:
            raise ValueError(
                f"cannot index {_describe(expr)} of per-point shape {expr.shape} with "
                f"{index!r}: {err}"
            ) from None
        super().__init__((expr,), expr.pointset, out.shape, out.dtype)

    def lower(self, ev, args):
        return args[0][self.index]

    def sympy_form(self, args):
        return sympy.Function("component")(args[0], sympy.Symbol(str(self.index)))


def integer_pow(a, *, n: int):
    """``a ** n`` for an integer ``n`` (smooth everywhere)."""
    return jax.lax.integer_pow(a, n) if n >= 0 else 1.0 / jax.lax.integer_pow(a, -n)


def apply(fn: Callable, *args, name: str | None = None, **kwargs) -> Placeholder:
    """Apply the JAX function ``fn`` point-wise to placeholders (numbers become literals)."""
    nodes = [as_node(a) for a in args]
    return Apply(fn, nodes, kwargs, name or getattr(fn, "__name__", "fn"))
