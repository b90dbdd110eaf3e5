"""Convert graphs to sympy (for display, LaTeX and checking).

Each node class gives its own form (:meth:`~jno.trace.node.Placeholder.sympy_form`); this
module walks the graph and holds the vocabulary they share: literals, and the sympy
counterparts of the JAX functions an ``Apply`` node wraps (by the function's name).
"""

from __future__ import annotations

import numpy as np
import sympy


def _positional(f):
    return lambda args, kwargs: f(*args)


_FUNCTIONS = {
    name: _positional(f)
    for name, f in {
        "sin": sympy.sin,
        "cos": sympy.cos,
        "tan": sympy.tan,
        "exp": sympy.exp,
        "log": sympy.log,
        "sqrt": sympy.sqrt,
        "tanh": sympy.tanh,
        "sinh": sympy.sinh,
        "cosh": sympy.cosh,
        "arctan": sympy.atan,
        "arcsin": sympy.asin,
        "arccos": sympy.acos,
        "abs": sympy.Abs,
        "maximum": sympy.Max,
        "minimum": sympy.Min,
        "neg": lambda a: -a,
    }.items()
}
_FUNCTIONS["ipow"] = lambda args, kwargs: args[0] ** kwargs["n"]
_BINARY = {
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
    "*": lambda a, b: a * b,
    "/": lambda a, b: a / b,
    "**": lambda a, b: a**b,
    "@": lambda a, b: a * b,
    "<": lambda a, b: sympy.Lt(a, b, evaluate=False),
    "<=": lambda a, b: sympy.Le(a, b, evaluate=False),
    ">": lambda a, b: sympy.Gt(a, b, evaluate=False),
    ">=": lambda a, b: sympy.Ge(a, b, evaluate=False),
    "==": lambda a, b: sympy.Eq(a, b, evaluate=False),
    "!=": lambda a, b: sympy.Ne(a, b, evaluate=False),
}


def literal_sympy(value: np.ndarray):
    """A constant: an integer, ``pi``/``E``, a 6-digit float, or a symbol for an array."""
    if value.size == 1:
        v = value.reshape(()).item()
        if isinstance(v, bool):
            return sympy.true if v else sympy.false
        if float(v).is_integer() and abs(v) < 1e12:
            return sympy.Integer(int(v))
        for const, sym in ((np.pi, sympy.pi), (np.e, sympy.E)):
            if np.isclose(v, const, rtol=1e-7, atol=0):
                return sym
        return sympy.Float(v, 6)
    return sympy.Symbol(f"C{value.shape}")


def apply_sympy(name: str, args: list, kwargs: dict):
    """The JAX function named ``name`` (an operator or a ``jno.np`` function) in sympy; an
    unknown function stays an undefined sympy function of that name."""
    if name in _BINARY and len(args) == 2:
        return _BINARY[name](*args)
    if name in _FUNCTIONS:
        return _FUNCTIONS[name](args, kwargs)
    return sympy.Function(name)(*args)


def to_sympy(node):
    """The sympy expression of a graph. Coordinates become symbols named as the coordinates,
    parameters symbols named as the model, network calls undefined functions."""
    memo: dict[int, object] = {}
    for n in node.walk():
        memo[n.id] = n.sympy_form([memo[a.id] for a in n.args])
    return memo[node.id]
