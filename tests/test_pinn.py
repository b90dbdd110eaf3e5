"""Forward PINNs and an inverse problem solved with optax, against closed-form solutions."""

import jax
import numpy as np
import optax
import sympy as sp

import jno


def _rel_l2(pred, exact):
    return float(np.linalg.norm(pred - exact) / np.linalg.norm(exact))


def test_poisson_1d():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-3))
    u = net(x)
    pde = jno.diff(u, x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse.name("pde"), net(xb).mse.name("bc")])
    history = crux.solve(4000, print_rate=500)
    pred = crux.eval([u])
    exact = np.sin(np.pi * dom.points("interior"))
    assert _rel_l2(pred, exact) < 1e-2
    assert history.losses["pde"][-1] < history.losses["pde"][0]


def test_poisson_2d_manufactured_in_sympy():
    X, Y = sp.symbols("x y", real=True)
    u_exact = sp.sin(sp.pi * X) * sp.sin(sp.pi * Y)
    f = -(sp.diff(u_exact, X, 2) + sp.diff(u_exact, Y, 2))  # -Δu = f
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.05, x_range=(0, 1), y_range=(0, 1)))
    x, y, _ = dom.variable("interior")
    xb, yb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(2, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(1)))
    net.optimizer(optax.adam(2e-3))
    u = net(jno.np.concat([x, y], axis=-1))
    source = jno.sym.from_sympy(f, {X: x, Y: y})
    pde = jno.np.laplacian(u, [x, y]) + source
    bc = net(jno.np.concat([xb, yb], axis=-1))
    crux = jno.core([pde.mse, 10 * bc.mse])
    crux.solve(3000, print_rate=500)
    pts = dom.points("interior")
    exact = sp.lambdify((X, Y), u_exact, "numpy")(pts[:, 0], pts[:, 1])[:, None]
    assert _rel_l2(crux.eval([u]), exact) < 3e-2


def test_inverse_reaction_coefficient():
    """Recover k in -u'' + k u = f from noisy sensors of u = sin(πx), with k = 2."""
    k_true = 2.0
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    sensors = np.linspace(0.05, 0.95, 19)[:, None]
    sd = jno.domain(constructor=jno.domain.points(sensors))
    xs, _ = sd.variable("interior")
    data = np.sin(np.pi * sensors) + 0.01 * np.random.default_rng(0).normal(size=sensors.shape)
    obs = sd.variable("u_obs", data)
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(2)))
    net.optimizer(optax.adam(2e-3))
    k = jno.np.parameter((1,), name="k", init=0.5).optimizer(optax.adam(1e-2))
    u = net(x)
    f = (np.pi**2 + k_true) * jno.np.sin(np.pi * x)
    pde = -jno.diff(u, x, order=2) + k * u - f
    crux = jno.core([pde.mse, net(xb).mse, 10 * (net(xs) - obs).mse])
    crux.solve(6000, print_rate=1000)
    k_hat = float(k.module[0])
    assert abs(k_hat - k_true) / k_true < 0.03, k_hat


def test_solve_continues_exactly():
    def build():
        dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
        x, _ = dom.variable("interior")
        net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(3)))
        a = jno.np.parameter((1,), name="a", init=0.1)
        r = net(x) * a - jno.np.cos(x)
        return jno.core([r.mse], seed=4), net, a

    c1, n1, a1 = build()
    c1.solve(70, print_rate=30)
    c1.solve(50, print_rate=30)
    c2, n2, a2 = build()
    c2.solve(120, print_rate=30)
    np.testing.assert_allclose(np.asarray(a1.module), np.asarray(a2.module), rtol=1e-6)
    w1 = jax.tree.leaves(n1.params())
    w2 = jax.tree.leaves(n2.params())
    for p, q in zip(w1, w2):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(c1.history.total_loss, c2.history.total_loss, rtol=1e-5)
