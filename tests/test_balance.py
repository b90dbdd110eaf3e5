"""Loss balancers and causal weights against hand-written computations of the papers'
formulas (gradients by jax.grad, NTK traces by jax.jacfwd, ReLoBRaLo's recursion in numpy
with the same Bernoulli draws), continuation and the refusals."""

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.solve import streams as st


def _poisson(seed=0, **core):
    """-u'' = π² sin(πx) on [0, 1], u(0) = u(1) = 0, a small tanh MLP."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(seed)))
    net.optimizer(optax.adam(1e-2))
    pde = jno.diff(net(x), x, order=2) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse.name("pde"), (3.0 * net(xb).mse).name("bc")], seed=seed, **core)
    return crux, net, dom.points("interior")[:, 0], dom.points("boundary")[:, 0]


def _hand(module, xi, xb):
    """Per-point residuals of the same problem, written without jno: ``(r_pde, r_bc)``."""

    def u(p, x):
        return eqx.combine(p, static)(jnp.reshape(x, (1,)))[0]

    params, static = eqx.partition(module, eqx.is_inexact_array)

    def residuals(p):
        d2 = jax.vmap(jax.grad(jax.grad(lambda x: u(p, x))))(jnp.asarray(xi))
        r_pde = d2 + jnp.pi**2 * jnp.sin(jnp.pi * jnp.asarray(xi))
        r_bc = jax.vmap(lambda x: u(p, x))(jnp.asarray(xb))
        return r_pde, r_bc

    return params, residuals


def _flat(tree):
    return jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])


@pytest.mark.slow
def test_grad_norm_weights_match_the_paper_formula():
    alpha = 0.3
    crux, net, xi, xb = _poisson(weights=jno.balance.grad_norm(alpha=alpha, every=5))
    lam = 1.0
    for chunk in range(3):
        params, residuals = _hand(net.module, xi, xb)
        g_pde = _flat(jax.grad(lambda p: jnp.mean(residuals(p)[0] ** 2))(params))
        g_bc = _flat(jax.grad(lambda p: 3.0 * jnp.mean(residuals(p)[1] ** 2))(params))
        ratio = float(jnp.max(jnp.abs(g_pde)) / (lam * jnp.mean(jnp.abs(g_bc))))
        lam = (1 - alpha) * lam + alpha * ratio
        crux.solve(5, print_rate=5)
        steps, w_bc = crux.history.metrics["weight:bc"]
        _, w_pde = crux.history.metrics["weight:pde"]
        np.testing.assert_array_equal(steps, np.arange(5 * (chunk + 1)))
        np.testing.assert_allclose(w_bc[-5:], lam, rtol=2e-4)  # held between updates
        np.testing.assert_array_equal(w_pde, 1.0)


@pytest.mark.slow
def test_ntk_trace_weights_match_jacfwd():
    crux, net, xi, xb = _poisson(weights=jno.balance.ntk_trace(every=4))
    params, residuals = _hand(net.module, xi, xb)
    j_pde, j_bc = jax.jacfwd(residuals)(params)
    tr_pde = float(jnp.sum(_flat(jax.tree.map(jnp.square, j_pde))))
    tr_bc = 3.0 * float(jnp.sum(_flat(jax.tree.map(jnp.square, j_bc))))
    crux.solve(3, print_rate=3)
    m = crux.history.metrics
    total = tr_pde + tr_bc
    np.testing.assert_allclose(m["weight:pde"][1], total / tr_pde, rtol=2e-4)
    np.testing.assert_allclose(m["weight:bc"][1], total / tr_bc, rtol=2e-4)


@pytest.mark.slow
def test_ntk_trace_per_point_mean():
    crux, net, xi, xb = _poisson(weights=jno.balance.ntk_trace(every=4, per_point=True))
    params, residuals = _hand(net.module, xi, xb)
    j_pde, j_bc = jax.jacfwd(residuals)(params)
    tr_pde = float(jnp.sum(_flat(jax.tree.map(jnp.square, j_pde)))) / len(xi)
    tr_bc = 3.0 * float(jnp.sum(_flat(jax.tree.map(jnp.square, j_bc)))) / len(xb)
    crux.solve(1, print_rate=1)
    np.testing.assert_allclose(
        crux.history.metrics["weight:bc"][1], (tr_pde + tr_bc) / tr_bc, rtol=2e-4
    )


def test_relobralo_recursion_by_hand():
    alpha, rho_mean, temp = 0.9, 0.5, 0.5
    crux, *_ = _poisson(weights=jno.balance.relobralo(alpha, rho_mean, temp))
    n = 12
    crux.solve(n, print_rate=5)
    losses = np.stack([crux.history.losses["pde"], crux.history.losses["bc"]], axis=1)
    got = np.stack([crux.history.metrics["weight:pde"][1], crux.history.metrics["weight:bc"][1]], 1)

    def bal(now, then):
        z = now / (temp * then)
        e = np.exp(z - z.max())
        return 2 * e / e.sum()

    lam = np.ones(2)
    draws = []
    for t in range(n):
        if t > 0:
            rho = float(jax.random.bernoulli(st.balance_key(crux.streams, t), rho_mean))
            draws.append(rho)
            hist = rho * lam + (1 - rho) * bal(losses[t], losses[0])
            lam = alpha * hist + (1 - alpha) * bal(losses[t], losses[t - 1])
        np.testing.assert_allclose(got[t], lam, rtol=1e-4)
    assert 0 < sum(draws) < len(draws)  # both branches of the lookback were taken


@pytest.mark.parametrize(
    "balancer",
    [
        pytest.param(jno.balance.grad_norm(every=7), marks=pytest.mark.slow),
        jno.balance.relobralo(expected_rho=0.5),
    ],
    ids=["grad_norm", "relobralo"],
)
@pytest.mark.slow
def test_continuation_equals_one_solve(balancer):
    c1, n1, *_ = _poisson(weights=balancer)
    c1.solve(13, print_rate=5)
    c1.solve(9, print_rate=5)
    c2, n2, *_ = _poisson(weights=balancer)
    c2.solve(22, print_rate=5)
    for p, q in zip(jax.tree.leaves(n1.params()), jax.tree.leaves(n2.params())):
        np.testing.assert_allclose(np.asarray(p), np.asarray(q), rtol=1e-5, atol=1e-7)
    for name in ("weight:pde", "weight:bc"):
        np.testing.assert_allclose(c1.history.metrics[name][1], c2.history.metrics[name][1], 1e-5)


def test_balanced_state_survives_an_optimizer_change():
    crux, net, *_ = _poisson(weights=jno.balance.relobralo(alpha=0.5))
    crux.solve(5, print_rate=5)
    net.optimizer(optax.sgd(1e-4))
    crux.solve(1, print_rate=5)
    w = crux.history.metrics["weight:bc"][1]
    assert w[0] == 1.0 and abs(w[5] - 1.0) > 1e-3  # a reset state would start at 1 again


def test_bayesian_model_with_a_balancer_is_refused():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.5)
    a.bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="reweights only the loss of trained"):
        jno.core([(a * x - x).mse], weights=jno.balance.relobralo())
    with pytest.raises(TypeError, match="expected a balancer"):
        jno.core([(x - 1).mse], weights=[1.0, 2.0])


def test_causal_weights_match_the_formula():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1), time=(0.0, 1.0, 11))
    x, t = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=1.0).optimizer(optax.sgd(0.0))
    r = a * jno.np.sin(3 * x) * t + t**2
    eps, m = 2.0, 4
    crux = jno.core([r.causal_mse(t, slices=m, eps=eps).name("pde")])
    crux.solve(2, print_rate=2)
    pts = dom.points("interior")
    res = np.sin(3 * pts[:, 0]) * pts[:, 1] + pts[:, 1] ** 2
    idx = np.clip(np.floor(pts[:, 1] * m), 0, m - 1).astype(int)
    loss = np.array([np.mean(res[idx == i] ** 2) for i in range(m)])
    w = np.exp(-eps * (np.cumsum(loss) - loss))
    metrics = crux.history.metrics
    got = np.array([metrics[f"causal:pde:{i}"][1][0] for i in range(m)])
    assert metrics["causal:pde:0"][0].tolist() == [1]
    np.testing.assert_allclose(got, w, rtol=1e-5)
    np.testing.assert_allclose(crux.history.losses["pde"], np.mean(w * loss), rtol=1e-5)


def test_causal_gradient_treats_weights_as_constants():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.25), time=(0.0, 1.0, 5))
    x, t = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.7).optimizer(optax.sgd(0.1))
    r = a * t - 0.5 * x
    crux = jno.core([r.causal_mse(t, slices=2, eps=1.0)])
    crux.solve(1, print_rate=1)
    pts = dom.points("interior")
    idx = np.clip(np.floor(pts[:, 1] * 2), 0, 1).astype(int)

    def loss(av, stop):
        res = av * pts[:, 1] - 0.5 * pts[:, 0]
        ls = jnp.stack([jnp.mean(res[idx == i] ** 2) for i in range(2)])
        w = jnp.exp(-(jnp.cumsum(ls) - ls))
        return jnp.mean((jax.lax.stop_gradient(w) if stop else w) * ls)

    g = jax.grad(loss)(0.7, True)
    assert abs(g - jax.grad(loss)(0.7, False)) > 1e-3  # the two gradients differ here
    np.testing.assert_allclose(float(a.module[0]), 0.7 - 0.1 * float(g), rtol=1e-5)


def test_causal_mse_errors():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1), time=(0.0, 1.0, 5))
    x, t = dom.variable("interior")
    with pytest.raises(ValueError, match="time coordinate"):
        (x - t).causal_mse(x * 2)
    with pytest.raises(ValueError, match="slices"):
        (x - t).causal_mse(t, slices=0)
    b = jno.np.parameter((1,), name="b", init=0.5)
    b.bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="causal_mse"):
        jno.core([(b * x - t).causal_mse(t)])


HELMHOLTZ_STEPS = 20000  # measured: fixed 1.18e-1, grad_norm 8.5e-3 (benchmarks/README.md)
HELMHOLTZ_RATIO = 5.0
ALLEN_CAHN_STEPS = 500


def _benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "pinn_balancing.py"
    spec = importlib.util.spec_from_file_location("pinn_balancing", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_helmholtz_balanced_beats_fixed_weights():
    """Wang, Teng & Perdikaris 2021's Helmholtz problem against its exact solution."""
    bench = _benchmark()
    fixed, *_ = bench.helmholtz("fixed", HELMHOLTZ_STEPS)
    balanced, _, crux = bench.helmholtz("grad_norm", HELMHOLTZ_STEPS)
    assert balanced * HELMHOLTZ_RATIO < fixed, (fixed, balanced)
    assert crux.history.metrics["weight:bc"][1][-1] > 10.0  # the boundary was up-weighted


@pytest.mark.slow
def test_allen_cahn_reference_and_causal_weights():
    """The ETDRK4 reference converges in dt and x; a causal run records non-increasing slice
    weights (the errors with and without causal weights are in benchmarks/README.md: at the
    CPU budget neither run resolves the solution)."""
    bench = _benchmark()
    times = [0.0, 0.5, 1.0]
    _, coarse = bench.allen_cahn_reference(256, times, dt=1e-3)
    _, fine_t = bench.allen_cahn_reference(256, times, dt=2.5e-4)
    _, fine_x = bench.allen_cahn_reference(512, times, dt=1e-3)
    x = -1 + 2 * np.arange(256) / 256
    np.testing.assert_allclose(coarse[0], x**2 * np.cos(np.pi * x), atol=1e-12)
    assert np.max(np.abs(coarse - fine_t)) < 1e-8
    assert np.max(np.abs(coarse - fine_x[:, ::2])) < 1e-3
    _, _, crux = bench.allen_cahn(True, ALLEN_CAHN_STEPS)
    last = np.array([crux.history.metrics[f"causal:pde:{i}"][1][-1] for i in range(25)])
    assert last[0] == 1.0 and np.all(np.diff(last) <= 0)
