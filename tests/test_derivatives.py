"""Derivatives of order 1-4 and mixed partials against sympy, in 1D, 2D and 3D."""

import numpy as np
import pytest
import sympy as sp

import jno

xs, ys, zs = sp.symbols("x y z", real=True)


def _check(sym_expr, sym_vars, jno_expr, pts, rtol=2e-4, atol=2e-4):
    f = sp.lambdify(sym_vars, sym_expr, "numpy")
    want = np.broadcast_to(f(*[pts[:, i] for i in range(pts.shape[1])]), (pts.shape[0],))
    crux = jno.core([(jno_expr * 0.0).mse])
    got = crux.eval([jno_expr])[:, 0]
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * max(1.0, np.abs(want).max()))


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_1d_orders(order):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    u = jno.np.sin(2.0 * x) * jno.np.exp(0.5 * x) + x**3
    su = sp.sin(2 * xs) * sp.exp(xs / 2) + xs**3
    _check(sp.diff(su, xs, order), (xs,), jno.diff(u, x, order=order), dom.points("interior"))


def test_d_and_dd_methods():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    u = jno.np.tanh(x) * jno.np.cos(3.0 * x)
    su = sp.tanh(xs) * sp.cos(3 * xs)
    pts = dom.points("interior")
    _check(sp.diff(su, xs), (xs,), u.d(x), pts)
    _check(sp.diff(su, xs, 2), (xs,), u.dd(x), pts)


def test_2d_mixed_and_laplacian():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.25, x_range=(0, 1), y_range=(0, 1)))
    x, y, _ = dom.variable("interior")
    u = jno.np.sin(x * y) + x**2 * jno.np.exp(y)
    su = sp.sin(xs * ys) + xs**2 * sp.exp(ys)
    pts = dom.points("interior")
    _check(sp.diff(su, xs, ys), (xs, ys), jno.diff(u, x, y), pts)
    _check(sp.diff(su, xs, xs, ys), (xs, ys), jno.diff(u, x, x, y), pts)
    _check(sp.diff(su, xs, 2) + sp.diff(su, ys, 2), (xs, ys), jno.np.laplacian(u, [x, y]), pts)


def test_3d_mixed_through_network():
    import jax

    dom = jno.domain(constructor=jno.domain.box(mesh_size=0.5, ranges=[(0, 1)] * 3))
    x, y, z, _ = dom.variable("interior")
    u = jno.np.exp(x) * jno.np.sin(y) * jno.np.cos(2.0 * z)
    su = sp.exp(xs) * sp.sin(ys) * sp.cos(2 * zs)
    pts = dom.points("interior")
    _check(sp.diff(su, xs, ys, zs), (xs, ys, zs), jno.diff(u, x, y, z), pts)
    # a network of the concatenated coordinates: compare with jax.hessian on the module
    mlp = jno.nn.mlp(3, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(mlp)
    un = net(jno.np.concat([x, y, z], axis=-1))
    crux = jno.core([(un * 0.0).mse])
    got = crux.eval([jno.diff(un, x, z)])[:, 0]
    hess = jax.vmap(jax.hessian(lambda p: mlp(p)[0]))(pts)
    np.testing.assert_allclose(got, hess[:, 0, 2], rtol=1e-4, atol=1e-5)


def test_grad_concatenates_partials():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.5, x_range=(0, 1), y_range=(0, 1)))
    x, y, _ = dom.variable("interior")
    u = x**2 * y
    crux = jno.core([(u * 0.0).mse])
    g = crux.eval([jno.np.grad(u, [x, y])])
    pts = dom.points("interior")
    np.testing.assert_allclose(g[:, 0], 2 * pts[:, 0] * pts[:, 1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g[:, 1], pts[:, 0] ** 2, rtol=1e-5, atol=1e-6)
