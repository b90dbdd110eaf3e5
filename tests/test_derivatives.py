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


def _burgers_residual(net_module):
    """Raissi's Burgers residual on a network of (x, t): u, u_t, u_x and u_xx of one
    expression, which jno evaluates from one nest of JVPs."""
    import jax

    pts = np.asarray(jax.random.uniform(jax.random.PRNGKey(1), (64, 2), minval=-1.0))
    dom = jno.domain(constructor=jno.domain.points(pts))
    x, t, _ = dom.variable("interior")
    net = jno.nn.wrap(net_module, name="u")
    u = net(jno.np.concat([x, t], axis=-1))
    f = jno.diff(u, t) + u * jno.diff(u, x) - 0.01 * jno.diff(u, x, order=2)
    return pts, net, u, f, (x, t)


def _hand_burgers_loss(static, pts):
    """The same loss by hand: reverse mode per point (jax.grad, grad of grad)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    def loss(p):
        mlp = eqx.combine(p, static)

        def point(z):
            def u(z):
                return mlp(z)[0]

            g = jax.grad(u)(z)
            uxx = jax.grad(lambda s: jax.grad(u)(s)[0])(z)[0]
            return g[1] + u(z) * g[0] - 0.01 * uxx

        return jnp.mean(jax.vmap(point)(jnp.asarray(pts)) ** 2)

    return loss


def test_derivatives_of_one_expression_share_a_nest_and_equal_jax_by_hand():
    """Every derivative of one expression (orders 0-3, mixed partials in either order) equals
    jax.jacfwd/hessian on the module, and the loss gradient equals reverse mode by hand."""
    import equinox as eqx
    import jax

    from jno.lower.evaluate import model_key

    mlp = jno.nn.mlp(2, 1, hidden_dims=16, num_layers=3, key=jax.random.PRNGKey(0))
    pts, net, u, f, (x, t) = _burgers_residual(mlp)
    crux = jno.core([f.mse])
    parts = [u, jno.diff(u, x), jno.diff(u, t), jno.diff(u, x, order=2), jno.diff(u, x, t),
             jno.diff(u, t, x), jno.diff(u, x, x, t)]
    got = [np.asarray(g)[:, 0] for g in crux.eval(parts)]

    def scalar(z):
        return mlp(z)[0]

    jac = jax.vmap(jax.grad(scalar))(pts)
    hess = jax.vmap(jax.hessian(scalar))(pts)
    third = jax.vmap(jax.jacfwd(jax.hessian(scalar)))(pts)
    want = [jax.vmap(scalar)(pts), jac[:, 0], jac[:, 1], hess[:, 0, 0], hess[:, 0, 1],
            hess[:, 1, 0], third[:, 0, 0, 1]]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)

    params, static = eqx.partition(mlp, eqx.is_inexact_array)
    program = crux.program
    inputs = program.hoist(program.inputs)
    g_jno = jax.grad(lambda p: program.losses({model_key(net): p}, inputs).sum())(params)
    g_hand = jax.grad(_hand_burgers_loss(static, pts))(params)
    for a, b in zip(jax.tree.leaves(g_jno), jax.tree.leaves(g_hand)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_one_nest_costs_fewer_flops_than_a_nest_per_derivative():
    """The compiled gradient of the Burgers loss does less arithmetic (XLA's cost analysis)
    than the same loss with one JVP nest per derivative, written by hand: the forward and
    backward passes through the network are shared."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    from jno.lower.evaluate import model_key

    mlp = jno.nn.mlp(2, 1, hidden_dims=20, num_layers=4, key=jax.random.PRNGKey(0))
    pts, net, _, f, _ = _burgers_residual(mlp)
    program = jno.core([f.mse]).program
    inputs = program.hoist(program.inputs)
    params, static = eqx.partition(mlp, eqx.is_inexact_array)

    def separate_nests(p):
        module = eqx.combine(p, static)

        def point(z):
            def u(z):
                return module(z)[0]

            def d(fn, i):
                e = jnp.zeros(2).at[i].set(1.0)
                return lambda c: jax.jvp(fn, (c,), (e,))[1]

            return u(z) * d(u, 0)(z) + d(u, 1)(z) - 0.01 * d(d(u, 0), 0)(z)

        return jnp.mean(jax.vmap(point)(jnp.asarray(pts)) ** 2)

    def flops(fn):
        analysis = jax.jit(jax.grad(fn)).lower(params).compile().cost_analysis()
        return (analysis[0] if isinstance(analysis, list) else analysis)["flops"]

    jno_flops = flops(lambda p: program.losses({model_key(net): p}, inputs).sum())
    assert jno_flops < 0.8 * flops(separate_nests)
    assert jno_flops < flops(_hand_burgers_loss(static, pts))


def test_a_long_chain_is_split_into_nests():
    """A 3-D Laplacian with the value and a third mixed partial: the chain x x y y z z is
    longer than one nest takes, so it is split; every value still equals sympy's."""
    from jno.trace.derivative import MAX_SHARED_ORDER, _chain, _nests, multi_index

    dom = jno.domain(constructor=jno.domain.box(mesh_size=0.5, ranges=[(0, 1)] * 3))
    x, y, z, _ = dom.variable("interior")
    u = jno.np.exp(x) * jno.np.sin(y) * jno.np.cos(2.0 * z)
    su = sp.exp(xs) * sp.sin(ys) * sp.cos(2 * zs)
    members = [jno.diff(u, c, order=2) for c in (x, y, z)] + [jno.diff(u, x, y, z)]
    groups = _nests(members)
    assert len(groups) > 1
    assert all(len(_chain([multi_index(m) for m in g])) <= MAX_SHARED_ORDER for g in groups)
    pts = dom.points("interior")
    lap = members[0] + members[1] + members[2]
    _check(sum(sp.diff(su, s, 2) for s in (xs, ys, zs)), (xs, ys, zs), lap + 0.0 * members[3],
           pts)
    _check(sp.diff(su, xs, ys, zs), (xs, ys, zs), members[3] + 0.0 * lap, pts)


def test_derivatives_of_components_share_the_vector_nest():
    """``diff(u[0:1], t)`` for each output of a 3-output network equals jax.jacfwd, and its
    compiled gradient does the arithmetic of differentiating the vector once (the
    Kraichnan-Orszag residual written both ways)."""
    import equinox as eqx
    import jax

    from jno.lower.evaluate import model_key

    ts = np.linspace(0.0, 1.0, 50)[:, None]
    dom = jno.domain(constructor=jno.domain.points(ts))
    t, _ = dom.variable("interior")
    mlp = jno.nn.mlp(1, 3, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(mlp, name="u")
    u = net(t)
    u1, u2, u3 = u[0:1], u[1:2], u[2:3]
    by_component = [jno.diff(u1, t) - u2 * u3, jno.diff(u2, t) - u1 * u3,
                    jno.diff(u3, t) + 2.0 * u1 * u2]
    du = jno.diff(u, t)
    by_vector = [du[0:1] - u2 * u3, du[1:2] - u1 * u3, du[2:3] + 2.0 * u1 * u2]

    crux = jno.core([r.mse for r in by_component])
    got = np.concatenate([np.asarray(g) for g in crux.eval([jno.diff(c, t) for c in (u1, u2, u3)])],
                         axis=1)
    want = jax.vmap(jax.jacfwd(lambda s: mlp(s)))(ts)[:, :, 0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)

    params, _ = eqx.partition(mlp, eqx.is_inexact_array)

    def flops(residuals):
        program = jno.core([r.mse for r in residuals]).program
        inputs = program.hoist(program.inputs)
        fn = jax.grad(lambda p: program.losses({model_key(net): p}, inputs).sum())
        analysis = jax.jit(fn).lower(params).compile().cost_analysis()
        return (analysis[0] if isinstance(analysis, list) else analysis)["flops"]

    assert flops(by_component) <= 1.02 * flops(by_vector)
