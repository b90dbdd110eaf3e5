"""Convert graphs to sympy (for display, LaTeX and checking) and build graphs from sympy."""

from __future__ import annotations

import numpy as np
import sympy

_SYMPY_FUNCS = {
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
}
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


def _literal(value: np.ndarray):
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


def to_sympy(node):
    """The sympy expression of a graph. Coordinates become symbols named as the coordinates,
    parameters symbols named as the model, network calls undefined functions."""
    memo: dict[int, object] = {}
    for n in node.walk():
        args = [memo[a.id] for a in n.args]
        memo[n.id] = _convert(n, args, memo)
    return memo[node.id]


def _convert(n, args, memo):
    op = n.op
    if op == "variable":
        return sympy.Symbol(n.var_name, real=True)
    if op == "literal":
        return _literal(n.value)
    if op == "parameter":
        return sympy.Symbol(n.model_name, real=True)
    if op == "data":
        return sympy.Symbol(n.data_name.lstrip("_"), real=True)
    if op == "noise":
        return sympy.Symbol(f"epsilon_{n.kind}", real=True)
    if op == "call":
        return sympy.Function(n.model.model_name)(*args)
    if op == "index":
        return sympy.Function("component")(args[0], sympy.Symbol(str(n.index)))
    if op == "diff":
        syms = [memo[v.id] for v in n.wrt]
        return sympy.Derivative(args[0], *syms)
    if op == "reduce":
        return sympy.Function(n.kind)(args[0])
    if op == "gaussian":
        return sympy.Function("gaussian_nll")(args[0], args[1])
    if op == "apply":
        name = n.fn_name
        if name in _BINARY and len(args) == 2:
            return _BINARY[name](*args)
        if name == "ipow":
            return args[0] ** n.kwargs["n"]
        if name == "neg":
            return -args[0]
        if name in _SYMPY_FUNCS:
            return _SYMPY_FUNCS[name](*args)
        return sympy.Function(name)(*args)
    return sympy.Function(op)(*args)


def to_text(node) -> str:
    return str(to_sympy(node))
