"""Operator learners: DeepONet and the Fourier neural operator.

* DeepONet learns the antiderivative operator ``G(u)(y) = ∫_0^y u(s) ds`` (Lu et al. 2021)
  on random Fourier series, whose antiderivative is known in closed form.
* The 1-D FNO learns the solution operator ``a ↦ u`` of ``-(a u')' = 1`` on ``(0, 1)`` with
  ``u(0) = u(1) = 0``; the data come from a finite-difference solver written here.
* Spectral convolutions are checked against their closed form on single Fourier modes.
* Both networks go through ``jno.nn.wrap`` and the DSL (``.optimizer``, ``.ensemble``,
  ``.mask(...).bayesian``).

The fast tests run by default; ``-m slow`` adds longer trainings with tighter bounds.
"""

from __future__ import annotations

import logging

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy.integrate import cumulative_trapezoid
from scipy.linalg import solve_banded

import jno
from jno.nn import DeepONet, SpectralConv1d, SpectralConv2d

from stats import assert_gaussian_within


@pytest.fixture(autouse=True)
def _quiet_jno():
    logger = logging.getLogger("jno")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def train(module, loss, steps, lr, key, batch, n_train):
    """``steps`` Adam steps (cosine-decayed ``lr``) on random mini-batches, in one lax.scan."""
    params, static = eqx.partition(module, eqx.is_inexact_array)
    tx = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=1e-2))

    @jax.jit
    def run(params, key):
        def body(carry, k):
            p, opt = carry
            idx = jax.random.choice(k, n_train, (batch,), replace=False)
            value, grads = jax.value_and_grad(lambda q: loss(eqx.combine(q, static), idx))(p)
            updates, opt = tx.update(grads, opt, p)
            return (optax.apply_updates(p, updates), opt), value

        (p, _), values = jax.lax.scan(body, (params, tx.init(params)), jax.random.split(key, steps))
        return p, values

    params, values = run(params, key)
    return eqx.combine(params, static), np.asarray(values)


# ============================================================================ DeepONet
M_SENSORS, N_MODES = 100, 4
SENSORS = np.linspace(0.0, 1.0, M_SENSORS)


def fourier_functions(rng, n):
    """Coefficients of ``u(x) = a0 + Σ_k a_k cos(2πkx) + b_k sin(2πkx)``, ``a_k, b_k ~ N(0, k⁻⁴)``."""
    k = np.arange(1, N_MODES + 1)
    return (
        rng.normal(size=(n, 1)),
        rng.normal(size=(n, N_MODES)) / k**2,
        rng.normal(size=(n, N_MODES)) / k**2,
    )


def u_values(coeffs, x):
    a0, a, b = coeffs
    w = 2 * np.pi * np.arange(1, N_MODES + 1)
    return a0 + (a[:, None] * np.cos(w * x[:, None]) + b[:, None] * np.sin(w * x[:, None])).sum(-1)


def antiderivative(coeffs, y):
    """``∫_0^y u`` in closed form: ``a0 y + Σ a_k sin(wy)/w + b_k (1 - cos(wy))/w``."""
    a0, a, b = coeffs
    w = 2 * np.pi * np.arange(1, N_MODES + 1)
    wy = w * y[:, None]
    return a0 * y + (a[:, None] * np.sin(wy) / w + b[:, None] * (1 - np.cos(wy)) / w).sum(-1)


def antiderivative_data(n_train=1000, n_test=200, n_query=50):
    rng = np.random.default_rng(0)
    train_c, test_c = fourier_functions(rng, n_train), fourier_functions(rng, n_test)
    y_train, y_test = np.linspace(0, 1, n_query), np.linspace(0, 1, 101)
    return (
        (u_values(train_c, SENSORS), y_train, antiderivative(train_c, y_train)),
        (u_values(test_c, SENSORS), y_test, antiderivative(test_c, y_test)),
    )


def test_antiderivative_truth_matches_trapezoid():
    coeffs = fourier_functions(np.random.default_rng(1), 3)
    fine = np.linspace(0, 1, 20001)
    numeric = cumulative_trapezoid(u_values(coeffs, fine), fine, axis=1, initial=0.0)
    np.testing.assert_allclose(antiderivative(coeffs, fine), numeric, atol=1e-7)


def test_deeponet_forward_by_hand():
    net = DeepONet(
        5,
        coord_dim=2,
        basis_dim=3,
        num_outputs=2,
        branch_widths=(7,),
        trunk_widths=(6,),
        key=jax.random.PRNGKey(0),
    )
    net = eqx.tree_at(lambda m: m.bias, net, jnp.array([0.5, -0.25]))
    u, y = np.linspace(-1, 1, 5), np.array([0.3, 0.8])

    def dense(layer, h):
        return np.asarray(layer.weight) @ h + np.asarray(layer.bias)

    b = dense(net.branch.output_layer, np.tanh(dense(net.branch.layers[0], u))).reshape(2, 3)
    t = np.tanh(dense(net.trunk.output_layer, np.tanh(dense(net.trunk.layers[0], y))))
    expected = (b * t.reshape(2, 3)).sum(-1) + np.array([0.5, -0.25])
    out = net(jnp.asarray(u), jnp.asarray(y))
    assert out.shape == (2,)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    us = jax.random.normal(jax.random.PRNGKey(1), (4, 5))
    ys = jax.random.uniform(jax.random.PRNGKey(2), (6, 2))
    grid = net.on_grid(us, ys)
    assert grid.shape == (4, 6, 2)
    nested = jax.vmap(jax.vmap(net, (None, 0)), (0, None))(us, ys)
    np.testing.assert_allclose(grid, nested, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="sensor values"):
        net(jnp.ones(4), jnp.asarray(y))


def _antiderivative_error(steps):
    (u_tr, y_tr, g_tr), (u_te, y_te, g_te) = antiderivative_data()
    net = DeepONet(
        M_SENSORS,
        1,
        basis_dim=100,
        branch_widths=(100, 100),
        trunk_widths=(100, 100),
        activation=jax.nn.relu,
        key=jax.random.PRNGKey(0),
    )
    u_tr, y_tr, g_tr = jnp.asarray(u_tr), jnp.asarray(y_tr[:, None]), jnp.asarray(g_tr)

    def loss(model, idx):
        return jnp.mean((model.on_grid(u_tr[idx], y_tr)[..., 0] - g_tr[idx]) ** 2)

    net, losses = train(net, loss, steps, 3e-3, jax.random.PRNGKey(1), 100, u_tr.shape[0])
    assert np.all(np.isfinite(losses))
    pred = np.asarray(net.on_grid(jnp.asarray(u_te), jnp.asarray(y_te[:, None])))[..., 0]
    per_function = np.linalg.norm(pred - g_te, axis=1) / np.linalg.norm(g_te, axis=1)
    overall = np.linalg.norm(pred - g_te) / np.linalg.norm(g_te)
    return float(per_function.mean()), float(overall)


@pytest.mark.slow
def test_deeponet_learns_the_antiderivative_fast():
    mean_rel, overall = _antiderivative_error(2000)
    message = f"held-out relative L2: mean per function {mean_rel:.3g}, overall {overall:.3g}"
    assert mean_rel < 5e-2 and overall < 5e-2, message


@pytest.mark.slow
def test_deeponet_learns_the_antiderivative():
    mean_rel, overall = _antiderivative_error(25000)
    message = f"held-out relative L2: mean per function {mean_rel:.3g}, overall {overall:.3g}"
    assert overall < 1e-2 and mean_rel < 1.5e-2, message


def _pairs(n_functions=20, n_query=25):
    """Flattened (function, query point) pairs for the DSL: y (N, 1), u (N, m), G (N, 1)."""
    coeffs = fourier_functions(np.random.default_rng(3), n_functions)
    ys = np.linspace(0, 1, n_query)
    u = np.repeat(u_values(coeffs, SENSORS), n_query, axis=0)
    y = np.tile(ys, n_functions)[:, None]
    return y, u, antiderivative(coeffs, ys).reshape(-1, 1)


def test_deeponet_in_the_dsl_trains_and_evaluates_like_the_module():
    y_pts, u_data, g_data = _pairs()
    dom = jno.domain(constructor=jno.domain.points(y_pts))
    y, _ = dom.variable("interior")
    u, g = dom.variable("u", u_data), dom.variable("G", g_data)
    net = jno.nn.wrap(DeepONet(M_SENSORS, key=jax.random.PRNGKey(4)), name="G_net")
    net.optimizer(optax.adam(3e-3))
    crux = jno.core([(net(u, y) - g).mse])
    losses = crux.solve(300, print_rate=300).total_loss
    assert losses[-1] < 0.2 * losses[0], f"loss {losses[0]:.3g} -> {losses[-1]:.3g}"
    via_dsl = np.asarray(crux.eval(net(u, y)))
    direct = np.asarray(jax.vmap(net.module)(jnp.asarray(u_data), jnp.asarray(y_pts)))
    np.testing.assert_allclose(via_dsl, direct, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_deeponet_bayesian_offset_matches_the_gaussian_posterior():
    """Sample only ``b0`` (the rest held): the posterior is Gaussian and known exactly."""
    y_pts, u_data, g_data = _pairs(10, 10)
    module = DeepONet(M_SENSORS, key=jax.random.PRNGKey(5))
    dom = jno.domain(constructor=jno.domain.points(y_pts))
    y, _ = dom.variable("interior")
    u, g = dom.variable("u", u_data), dom.variable("G", g_data)
    net = jno.nn.wrap(module, name="G_net")
    mask = eqx.tree_at(lambda m: m.bias, jax.tree_util.tree_map(lambda _: False, module), True)
    std, prior_sigma = 0.5, 10.0
    net.mask(mask).bayesian(blackjax.nuts, warmup=300, keep=1000, num_chains=2)
    crux = jno.core([(net(u, y) - g).gaussian(std=std)])
    crux.solve(1300, print_rate=1300)
    draws = np.asarray(net.posterior_samples.bias)[..., 0]  # (2, 1000)
    rest = np.asarray(jax.vmap(module)(jnp.asarray(u_data), jnp.asarray(y_pts)))[:, 0]
    n = len(y_pts)
    precision = n / std**2 + 1 / prior_sigma**2
    mean, sd = (g_data[:, 0] - rest).sum() / std**2 / precision, precision**-0.5
    # mean at 4 MCSE, sd at 5 MCSE_sd with arviz's ESS (tests/stats.py)
    assert_gaussian_within(draws, mean, sd, what="b0")


# ============================================================================ FNO
N_GRID = 64
GRID = np.linspace(0.0, 1.0, N_GRID)


def solve_elliptic(a, f):
    """Finite differences for ``-(a u')' = f``, ``u(0) = u(1) = 0`` on the uniform GRID.

    Flux form with ``a`` at the mid-points, ``a_{j+1/2} = (a_j + a_{j+1}) / 2``; a banded
    (tridiagonal) solve for the interior values.
    """
    h = GRID[1] - GRID[0]
    mid = 0.5 * (a[1:] + a[:-1])
    bands = np.zeros((3, N_GRID - 2))
    bands[0, 1:] = -mid[1:-1] / h**2
    bands[1] = (mid[:-1] + mid[1:]) / h**2
    bands[2, :-1] = -mid[1:-1] / h**2
    u = np.zeros(N_GRID)
    u[1:-1] = solve_banded((1, 1), bands, f[1:-1])
    return u


def random_coefficients(rng, n, modes=4):
    """``a(x) = exp(g(x) / 2)`` with ``g = Σ_k (c_k cos(πkx) + s_k sin(πkx)) / k``, c, s ~ N(0, 1)."""
    k = np.arange(1, modes + 1)
    c, s = rng.normal(size=(n, modes)) / k, rng.normal(size=(n, modes)) / k
    kx = np.pi * k * GRID[:, None]
    return np.exp(0.5 * (c[:, None] * np.cos(kx) + s[:, None] * np.sin(kx)).sum(-1))


def elliptic_data(n_train, n_test=200):
    a = random_coefficients(np.random.default_rng(0), n_train + n_test)
    u = np.stack([solve_elliptic(row, np.ones(N_GRID)) for row in a])
    return (a[:n_train, :, None], u[:n_train, :, None]), (
        a[n_train:, :, None],
        u[n_train:, :, None],
    )


def test_finite_difference_solver_is_exact_on_a_quadratic():
    # a = 1, f = 1: u = x(1 - x)/2, which the three-point stencil reproduces exactly.
    u = solve_elliptic(np.ones(N_GRID), np.ones(N_GRID))
    np.testing.assert_allclose(u, GRID * (1 - GRID) / 2, atol=1e-12)


def test_spectral_conv1d_on_single_modes():
    conv = SpectralConv1d(1, 1, modes=4, key=jax.random.PRNGKey(0))
    re, im = np.array([0.7, -0.3, 1.1, 0.4]), np.array([0.2, 0.5, -0.8, 0.9])
    conv = eqx.tree_at(
        lambda c: (c.weight_real, c.weight_imag),
        conv,
        (jnp.asarray(re.reshape(4, 1, 1)), jnp.asarray(im.reshape(4, 1, 1))),
    )
    n = 32
    theta = 2 * np.pi * 3 * np.arange(n) / n
    out = np.asarray(conv(jnp.asarray(np.cos(theta)[:, None])))[:, 0]
    np.testing.assert_allclose(out, re[3] * np.cos(theta) - im[3] * np.sin(theta), atol=1e-5)
    # A constant keeps only Re R_0 (the DC term of a real signal is real); mode 5 is cut off.
    np.testing.assert_allclose(conv(jnp.full((n, 1), 2.0)), np.full((n, 1), 2.0 * re[0]), atol=1e-5)
    high = np.cos(2 * np.pi * 5 * np.arange(n) / n)[:, None]
    np.testing.assert_allclose(conv(jnp.asarray(high)), 0.0, atol=1e-5)
    with pytest.raises(ValueError, match="modes need"):
        conv(jnp.ones((4, 1)))


def test_spectral_conv2d_zero_mode_is_the_mean_and_single_modes():
    n1, n2 = 16, 12
    conv = SpectralConv2d(3, 2, 1, 1, key=jax.random.PRNGKey(1))
    conv = eqx.tree_at(
        lambda c: (c.weight_neg_real, c.weight_neg_imag),
        conv,
        (jnp.zeros_like(conv.weight_neg_real), jnp.zeros_like(conv.weight_neg_imag)),
    )
    x = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (n1, n2, 3)))
    expected = x.mean(axis=(0, 1)) @ np.asarray(conv.weight_pos_real[0, 0])
    np.testing.assert_allclose(
        conv(jnp.asarray(x)), np.broadcast_to(expected, (n1, n2, 2)), atol=1e-5
    )

    conv = SpectralConv2d(1, 1, 3, 4, key=jax.random.PRNGKey(3))
    j1, j2 = np.meshgrid(np.arange(n1), np.arange(n2), indexing="ij")
    for k1, (block, row) in [(2, ("pos", 2)), (-2, ("neg", 1))]:  # k1 = -2 sits at n1 - 2
        theta = 2 * np.pi * (k1 * j1 / n1 + 3 * j2 / n2)
        w = (
            getattr(conv, f"weight_{block}_real")[row, 3, 0, 0]
            + 1j * getattr(conv, f"weight_{block}_imag")[row, 3, 0, 0]
        )
        out = np.asarray(conv(jnp.asarray(np.cos(theta)[..., None])))[..., 0]
        np.testing.assert_allclose(out, w.real * np.cos(theta) - w.imag * np.sin(theta), atol=1e-5)


@pytest.mark.slow
def test_fno_shapes_and_leaves():
    net1 = jno.nn.fno1d(2, 3, modes=8, width=16, num_layers=3, key=jax.random.PRNGKey(0))
    assert eqx.filter_eval_shape(net1, jnp.ones((40, 2))).shape == (40, 3)
    assert eqx.filter_jit(jax.vmap(net1))(jnp.ones((5, 40, 2))).shape == (5, 40, 3)
    net2 = jno.nn.fno2d(1, 2, modes=(4, 3), width=8, num_layers=2, key=jax.random.PRNGKey(1))
    assert eqx.filter_jit(net2)(jnp.ones((16, 10, 1))).shape == (16, 10, 2)
    assert net2.spectral[0].weight_pos_real.shape == (4, 3, 8, 8)
    for net in (net1, net2):
        leaves = jax.tree_util.tree_leaves(net)
        assert all(eqx.is_inexact_array(leaf) and not jnp.iscomplexobj(leaf) for leaf in leaves)
    with pytest.raises(ValueError, match="expects one function"):
        net1(jnp.ones((40,)))
    no_grid = jno.nn.fno1d(1, 1, modes=4, width=8, grid=False, key=jax.random.PRNGKey(2))
    assert no_grid.lifting.weight.shape == (8, 1)


def _elliptic_error(n_train, steps):
    (a_tr, u_tr), (a_te, u_te) = elliptic_data(n_train)
    net = jno.nn.fno1d(1, 1, modes=16, width=32, num_layers=4, key=jax.random.PRNGKey(0))
    a_tr, u_tr = jnp.asarray(a_tr), jnp.asarray(u_tr)

    def loss(model, idx):  # mean squared relative L2 error over the batch
        pred = jax.vmap(model)(a_tr[idx])
        sq = jnp.sum((pred - u_tr[idx]) ** 2, axis=(1, 2)) / jnp.sum(u_tr[idx] ** 2, axis=(1, 2))
        return jnp.mean(sq)

    net, losses = train(net, loss, steps, 3e-3, jax.random.PRNGKey(1), 20, n_train)
    assert np.all(np.isfinite(losses))
    pred = np.asarray(jax.vmap(net)(jnp.asarray(a_te)))
    rel = np.linalg.norm((pred - u_te)[..., 0], axis=1) / np.linalg.norm(u_te[..., 0], axis=1)
    return float(rel.mean()), float(np.median(rel))


@pytest.mark.slow
def test_fno_learns_the_elliptic_solution_operator_fast():
    mean_rel, median_rel = _elliptic_error(500, 1000)
    assert mean_rel < 5e-2, f"held-out relative L2: mean {mean_rel:.3g}, median {median_rel:.3g}"


@pytest.mark.slow
def test_fno_learns_the_elliptic_solution_operator():
    mean_rel, median_rel = _elliptic_error(1000, 5000)
    assert mean_rel < 1e-2, f"held-out relative L2: mean {mean_rel:.3g}, median {median_rel:.3g}"


@pytest.mark.slow  # about 40 s of compilation; the ensemble path is covered by faster tests
def test_fno_ensemble_in_the_dsl():
    (a, u), _ = elliptic_data(32, n_test=0)
    dom = jno.domain(constructor=jno.domain.points(np.arange(32.0)[:, None]))
    a_in, u_out = dom.variable("a", a), dom.variable("u", u)
    module = jno.nn.fno1d(1, 1, modes=8, width=16, num_layers=2, key=jax.random.PRNGKey(3))
    net = jno.nn.wrap(module, name="fno")
    net.ensemble(size=2, optimizer=optax.adam(3e-3), prior_weight=0.0)
    crux = jno.core([(net(a_in) - 10.0 * u_out).mse])
    losses = crux.solve(100, print_rate=100).total_loss
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.2 * losses[0], f"loss {losses[0]:.3g} -> {losses[-1]:.3g}"
    assert np.asarray(crux.eval(net(a_in))).shape == (1, 2, 32, N_GRID, 1)
