"""The sympy bridge: to_sympy, LaTeX display, from_sympy."""

import numpy as np
import sympy as sp

import jno


def test_to_sympy_matches_hand_written_expression():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.5, x_range=(0, 1), y_range=(0, 1)))
    x, y, _ = dom.variable("interior")
    k = jno.np.parameter((1,), name="k")
    expr = k * jno.np.sin(jno.np.pi * x) * y**2 - jno.np.exp(-x)
    X, Y, K = sp.symbols("x y k", real=True)
    want = K * sp.sin(sp.pi * X) * Y**2 - sp.exp(-X)
    assert sp.simplify(expr.to_sympy() - want) == 0
    lap = jno.np.laplacian(expr, [x, y]).to_sympy()
    assert sp.simplify(lap.doit() - (sp.diff(want, X, 2) + sp.diff(want, Y, 2))) == 0
    assert expr._repr_latex_().startswith("$") and "\\sin" in expr._repr_latex_()
    assert "sin" in str(expr)


def test_from_sympy_round_trip_values():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    X = sp.Symbol("x", real=True)
    e = sp.atan(X) + sp.Abs(X - sp.Rational(1, 2)) * sp.cosh(X) / (1 + X**2)
    node = jno.sym.from_sympy(e, {X: x})
    got = jno.core([(node * 0.0).mse]).eval([node])[:, 0]
    xs = dom.points("interior")[:, 0]
    np.testing.assert_allclose(got, sp.lambdify(X, e, "numpy")(xs), rtol=1e-5)


def test_from_sympy_missing_symbol():
    import pytest

    X, Y = sp.symbols("x y")
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    with pytest.raises(ValueError, match="no placeholder"):
        jno.sym.from_sympy(X * Y, {X: x})
