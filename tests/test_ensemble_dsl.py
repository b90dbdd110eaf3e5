"""DSL deep ensembles: ``model.ensemble(size=E, optimizer=..., prior_weight=w, prior=...)``.

Each member minimises ``Σ_k w_k L_k - w · log prior`` (docs/objective.md with λ = 1). On a
linear-Gaussian model that objective is a quadratic with a closed-form minimiser, so every
member must land on it whatever its start: the MAP for ``w = 1``, least squares for ``w = 0``,
a ridge with a halved penalty for ``w = 0.5``, and for an ``.mse`` likelihood the ridge
``(ΦᵀΦ + N w/(2s²) I) θ = Φᵀ y``.
"""

from __future__ import annotations

import logging

import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import jno

SIGMA, PRIOR_SIGMA, N_OBS = 0.2, 2.0, 25
XS = np.linspace(0.0, 1.0, N_OBS)[:, None]
SCALES = np.array([3.0, 0.3, 0.03])
PHI = np.concatenate([np.sin(k * np.pi * XS) for k in (1, 2, 3)], axis=1) * SCALES
Y = PHI @ (np.array([1.5, -0.7, 0.4]) / SCALES)[:, None] + SIGMA * np.random.default_rng(0).normal(
    size=(N_OBS, 1)
)
E = 4


@pytest.fixture(autouse=True)
def _quiet_jno():
    logger = logging.getLogger("jno")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def linear_model(likelihood="gaussian"):
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    theta = jno.np.parameter((3,), name="theta", init=0.0)
    phi = jno.np.concat(
        [float(SCALES[k - 1]) * jno.np.sin(k * jno.np.pi * x) for k in (1, 2, 3)], axis=-1
    )
    pred = (phi @ theta)[..., None]
    residual = pred - y
    constraint = residual.gaussian(std=SIGMA) if likelihood == "gaussian" else residual.mse
    return theta, pred, constraint


def fit_members(prior_weight, likelihood="gaussian", steps=3000):
    theta, pred, constraint = linear_model(likelihood)
    schedule = optax.cosine_decay_schedule(0.5, steps, alpha=1e-3)
    theta.ensemble(
        size=E,
        optimizer=optax.adam(schedule),
        prior_weight=prior_weight,
        prior=jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA),
    )
    crux = jno.core([constraint])
    crux.solve(1, print_rate=1)
    after_one = np.array(theta.posterior_samples)
    crux.solve(steps - 1, print_rate=1000)
    return theta, pred, crux, after_one


def posterior_sd():
    precision = PHI.T @ PHI / SIGMA**2 + np.eye(3) / PRIOR_SIGMA**2
    return np.sqrt(np.diag(np.linalg.inv(precision)))


@pytest.mark.parametrize(
    ("prior_weight", "likelihood"),
    [(1.0, "gaussian"), (0.0, "gaussian"), (0.5, "gaussian"), (1.0, "mse")],
    ids=["map", "least-squares", "tempered", "mse-ridge"],
)
def test_linear_gaussian_members_reach_the_closed_form_optimum(prior_weight, likelihood):
    if likelihood == "gaussian":
        # minimise ½|Φθ - y|²/σ² + w |θ|²/(2s²)
        lhs = PHI.T @ PHI / SIGMA**2 + prior_weight * np.eye(3) / PRIOR_SIGMA**2
        rhs = PHI.T @ Y[:, 0] / SIGMA**2
    else:
        # minimise mean(r²) + w |θ|²/(2s²)
        lhs = PHI.T @ PHI + N_OBS * prior_weight / (2 * PRIOR_SIGMA**2) * np.eye(3)
        rhs = PHI.T @ Y[:, 0]
    optimum = np.linalg.solve(lhs, rhs)
    if prior_weight == 0.0:
        np.testing.assert_allclose(optimum, np.linalg.lstsq(PHI, Y[:, 0], rcond=None)[0], rtol=1e-8)
    theta, pred, crux, after_one = fit_members(prior_weight, likelihood)
    assert after_one.shape == (1, E, 3)
    assert len({tuple(row) for row in after_one[0]}) == E  # members start apart
    members = theta.posterior_samples
    assert members.shape == (1, E, 3)
    sd = posterior_sd()
    assert np.all(np.abs(members[0] - optimum) < 1e-3 * sd), (members[0] - optimum) / sd
    np.testing.assert_array_equal(np.asarray(theta.module), members[0, 0])  # live = member 0
    # eval pushes every member through the expression
    out = crux.eval([pred])
    assert out.shape == (1, E, N_OBS, 1)
    np.testing.assert_allclose(out[0, :, :, 0], members[0] @ PHI.T, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_pinn_ensemble_members_differ_and_each_solves_the_pde():
    """-u'' = π² sin(πx), u(0) = u(1) = 0: four members from different starts, each within
    5e-3 (RMS) of sin(πx), with different weights."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=16, num_layers=2, key=jax.random.PRNGKey(0)), name="u"
    )
    net.ensemble(size=E, optimizer=optax.adam(5e-3), prior_weight=0.0)
    u = net(x)
    pde = jno.diff(u, x, order=2) + np.pi**2 * jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse, 10 * net(xb).mse])
    crux.solve(2000, print_rate=500)
    pred = crux.eval([u])
    assert pred.shape == (1, E, 51, 1)
    exact = np.sin(np.pi * dom.points("interior"))
    rmse = np.sqrt(np.mean((pred[0] - exact) ** 2, axis=(1, 2)))
    assert np.all(rmse < 5e-3), rmse  # measured: 3e-5 ... 6e-4
    weights = np.asarray(net.posterior_samples.layers[0].weight)  # (1, E, 16, 1)
    assert weights.shape == (1, E, 16, 1)
    assert len({w.tobytes() for w in weights[0]}) == E
    assert np.ptp(pred[0], axis=0).max() > 1e-5  # the members' functions differ too
    # a Network's eval returns the stacked members
    stacked = crux.eval(net)
    assert np.asarray(stacked.layers[0].weight).shape == (1, E, 16, 1)


def test_ensemble_configuration_errors():
    a, _, c1 = linear_model()
    b = jno.np.parameter((1,), name="b", init=0.0)
    a.ensemble(size=2)
    b.ensemble(size=3)
    with pytest.raises(ValueError, match="share one size"):
        jno.core([c1, ((b - 1.0) ** 2).sum])
    with pytest.raises(ValueError, match="positive integer"):
        jno.np.parameter((1,)).ensemble(size=0)


@pytest.mark.slow
def test_a_stock_equinox_mlp_can_be_wrapped_and_ensembled():
    dom = jno.domain(constructor=jno.domain.points(XS))
    x, _ = dom.variable("interior")
    y = dom.variable("y", Y)
    module = eqx.nn.MLP(1, 1, 8, 2, activation=jax.nn.tanh, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(module, name="eqx_mlp").ensemble(size=2, optimizer=optax.adam(1e-2))
    crux = jno.core([(net(x) - y).gaussian(std=SIGMA)])
    crux.solve(5)
    assert crux.eval([net(x)]).shape == (1, 2, N_OBS, 1)
