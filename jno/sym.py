"""sympy bridge: ``expr.to_sympy()``, LaTeX display and :func:`from_sympy`."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import sympy

from .trace.to_sympy import to_sympy

__all__ = ["from_sympy", "to_sympy", "latex"]


def latex(expr) -> str:
    """LaTeX of a jno expression."""
    return sympy.latex(to_sympy(expr))


def from_sympy(expr, mapping: dict):
    """Build a jno expression from a sympy expression.

    Args:
        expr: a sympy expression.
        mapping: ``{sympy.Symbol: placeholder or number}`` for every free symbol.

    Returns:
        A placeholder whose value equals ``expr`` with the symbols substituted.
    """
    from . import np as jnp_ns  # functions that accept placeholders

    expr = sympy.sympify(expr)
    missing = expr.free_symbols - set(mapping)
    if missing:
        raise ValueError(
            f"from_sympy: no placeholder given for symbol(s) {sorted(map(str, missing))}; add "
            "them to the mapping {symbol: placeholder}."
        )
    symbols = list(mapping)
    module = {name: getattr(jnp_ns, name) for name in jnp_ns.__all__ if hasattr(jnp_ns, name)}
    module.update(
        {
            "asin": jnp_ns.arcsin,
            "acos": jnp_ns.arccos,
            "atan": jnp_ns.arctan,
            "Abs": jnp_ns.abs,
            "Max": jnp_ns.maximum,
            "Min": jnp_ns.minimum,
            "pi": float(np.pi),
            "E": float(np.e),
        }
    )
    fn = sympy.lambdify(symbols, expr, modules=[module, {"numpy": jnp}])
    return fn(*[mapping[s] for s in symbols])
