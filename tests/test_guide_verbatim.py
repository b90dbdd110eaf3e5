"""The Bayesian-sampling guide's code blocks, verbatim, with the guide's foundax networks.

Each test runs one block of the guide as a user copies it (the lines marked ``# guide``) and
checks numbers against an independent truth: posterior moments against the closed-form
linear-Gaussian posterior or a quadrature (at MCSE tolerances, tests/stats.py), network
pushforwards against the foundax network applied to the draws by hand, diagnostics against
arviz on the same draws, shapes against the guide's table.
"""

from __future__ import annotations

import logging
import re

import arviz as az
import blackjax
import equinox as eqx
import foundax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno

from stats import assert_gaussian_within, assert_mean_within

π = jno.np.pi
PRIOR_SIGMA = 10.0  # the default prior, priors.gaussian(sigma=10)


# ---------------------------------------------------------------------- the quick example
def quick_example():
    """The guide's quick-example set-up, verbatim (the models are configured by the caller)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))  # guide
    x, _ = dom.variable("interior")  # guide
    A_true, B_true = 3.14, -2.71  # guide
    target = A_true * jno.np.sin(π * x) + B_true * jno.np.cos(π * x) \
        + jno.noise.gaussian(std=0.1)  # guide
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)  # guide
    a = jno.np.parameter((1,), key=k1, name="a")  # guide
    b = jno.np.parameter((1,), key=k2, name="b")  # guide
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) - target  # guide
    return dom, x, target, a, b, residual


def exact_ab(dom, data, noise_var, prior_sigma=PRIOR_SIGMA):
    """Closed-form posterior mean and sd of (A, B) for ``y = A sin πx + B cos πx + ε``,
    ``ε ~ N(0, noise_var)``, independent ``N(0, prior_sigma²)`` priors."""
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    cov = np.linalg.inv(phi.T @ phi / noise_var + np.eye(2) / prior_sigma**2)
    return cov @ phi.T @ np.asarray(data, np.float64) / noise_var, np.sqrt(np.diag(cov))


def check_ab(crux, dom, target, a, b, noise_var):
    """Both marginals against the closed form: mean at 4 MCSE, sd at 5 MCSE_sd."""
    data = crux.eval([target])[:, 0]
    mean, sd = exact_ab(dom, data, noise_var)
    for i, p in enumerate((a, b)):
        draws = np.asarray(p.posterior_samples)[..., 0]
        assert_gaussian_within(draws, mean[i], sd[i], what=p.model_name)


def test_quick_example():
    dom, x, target, a, b, residual = quick_example()
    for p in [a, b]:  # guide
        p.bayesian(blackjax.nuts, step_size=1e-2, warmup=500, keep=1000)  # guide
    crux = jno.core([residual.mse])  # guide
    crux.solve(1500)  # guide
    a_chain = a.posterior_samples  # guide: (1000, 1)
    A_mean = jnp.mean(a_chain, axis=0)  # guide
    A_lo, A_hi = jnp.quantile(a_chain, jnp.array([0.05, 0.95]), axis=0)  # guide
    text = f"A = {A_mean[0]:.3f}  [{A_lo[0]:.3f}, {A_hi[0]:.3f}]"  # guide (printed)
    assert a_chain.shape == (1000, 1)
    assert re.fullmatch(r"A = -?\d+\.\d{3}  \[-?\d+\.\d{3}, -?\d+\.\d{3}\]", text)
    assert float(A_lo[0]) < float(A_mean[0]) < float(A_hi[0])
    # `.mse` with λ = 1 is a Gaussian likelihood of noise variance N/2 (docs/objective.md)
    check_ab(crux, dom, target, a, b, noise_var=dom.points("interior").shape[0] / 2.0)
    # the guide's table: eval of a Bayesian parameter is its chain, of an expression (N, P, 1)
    np.testing.assert_array_equal(crux.eval([a]), a_chain)
    assert crux.eval([residual]).shape == (1000, 101, 1)


def test_adaptation_from_step_size_one():
    dom, x, target, a, b, residual = quick_example()
    for p in (a, b):
        p.bayesian(blackjax.nuts, step_size=1.0, warmup=500, keep=1000)  # guide, adapt=True
    crux = jno.core([residual.mse])
    crux.solve()  # warmup + keep
    check_ab(crux, dom, target, a, b, noise_var=dom.points("interior").shape[0] / 2.0)
    (tuned,) = [s.tuned for s in crux.solver.state.blocks if "step_size" in s.tuned]
    # window adaptation moved the step size from the user's 1.0 and tuned a diagonal IMM
    assert abs(float(np.ravel(tuned["step_size"])[0]) - 1.0) > 1e-3
    assert np.shape(tuned["inverse_mass_matrix"])[-1] == 2


def test_scalar_inverse_mass_matrix_is_broadcast():
    """``inverse_mass_matrix=2.0`` means ``2·I`` of the position's size: fixed-step HMC with
    it equals fixed-step HMC with the explicit ``[2.0, 2.0]``, draw for draw."""
    draws = []
    for imm in (2.0, jnp.array([2.0, 2.0])):
        dom, x, target, a, b, residual = quick_example()
        for p in (a, b):
            p.bayesian(blackjax.hmc, step_size=1e-2, num_integration_steps=5,
                       inverse_mass_matrix=imm, adapt=False, warmup=0, keep=50)
        jno.core([residual.gaussian(std=0.1)]).solve()
        draws.append(np.asarray(a.posterior_samples))
    assert np.ptp(draws[0]) > 0
    np.testing.assert_array_equal(draws[0], draws[1])


def test_bad_inverse_mass_matrix_shape_is_a_clear_error():
    dom, x, target, a, b, residual = quick_example()
    imm = jnp.ones(3)  # one object: a and b are one joint block of 2 numbers
    for p in (a, b):
        p.bayesian(blackjax.nuts, step_size=1e-2, inverse_mass_matrix=imm, warmup=10, keep=10)
    with pytest.raises(ValueError, match=r"inverse_mass_matrix has shape \(3,\).*2 numbers"):
        jno.core([residual.mse]).solve()


# ---------------------------------------------------------------------- custom factory
def my_rwm(logdensity_fn, step_size):  # guide, verbatim
    def init_fn(position):
        return {"position": position, "logdensity": logdensity_fn(position)}

    def step_fn(rng_key, state):
        k1, k2 = jax.random.split(rng_key)
        prop = jax.tree.map(
            lambda p: p + step_size * jax.random.normal(k1, p.shape),
            state["position"],
        )
        new_logd = logdensity_fn(prop)
        accept = jnp.log(jax.random.uniform(k2)) < new_logd - state["logdensity"]
        new_state = {
            "position":  jax.tree.map(lambda x, y: jnp.where(accept, y, x),
                                      state["position"], prop),
            "logdensity": jnp.where(accept, new_logd, state["logdensity"]),
        }
        return new_state, {"accepted": accept}

    return blackjax.SamplingAlgorithm(init_fn, step_fn)


@pytest.mark.slow
def test_custom_random_walk_factory_on_a_foundax_network():
    """``net.bayesian(my_rwm, ...)``: every recorded draw is the state the kernel advanced,
    so a draw differs from the one before exactly when the kernel reported an acceptance."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(foundax.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0)))
    net.bayesian(my_rwm, step_size=1e-2, warmup=500, keep=1000)  # guide
    crux = jno.core([(net(x) - jno.np.sin(π * x)).gaussian(std=0.1)])
    crux.solve()
    draws = net.posterior_samples
    assert isinstance(draws, type(net.module))
    assert draws.output_layer.weight.shape == (1000, 1, 8)
    accepted = np.asarray(net.posterior_diagnostics["accepted"]).reshape(-1)
    assert accepted.shape == (1000,)
    flat = np.concatenate(
        [np.asarray(v).reshape(1000, -1) for v in jax.tree.leaves(eqx.filter(draws, eqx.is_array))],
        axis=1,
    )
    moved = np.any(flat[1:] != flat[:-1], axis=1)
    np.testing.assert_array_equal(moved, accepted[1:])
    assert 0.05 < accepted.mean() < 0.95


def test_custom_random_walk_factory_gives_the_conjugate_posterior():
    """The guide's ``my_rwm`` on a scalar with a conjugate Gaussian posterior."""
    obs = np.array([[1.2], [0.7], [1.9], [1.4], [0.9]], dtype=np.float32)
    sd = jno.domain(constructor=jno.domain.points(np.arange(5.0)[:, None]))
    y = sd.variable("y", obs)
    c = jno.np.parameter((1,), name="c", init=0.0)
    c.bayesian(my_rwm, step_size=0.5, warmup=500, keep=8000, num_chains=4,
               prior=jno.bayesian.priors.gaussian(sigma=1.0))
    crux = jno.core([(c - y).gaussian(std=0.5)])
    crux.solve()
    # conjugate: prior N(0, 1), 5 observations with variance 0.25
    prec = 1.0 + 5 / 0.25
    mean, std = obs.sum() / 0.25 / prec, np.sqrt(1 / prec)
    assert_gaussian_within(np.asarray(c.posterior_samples)[..., 0], mean, std)
    assert "accepted" in c.posterior_diagnostics


# ---------------------------------------------------------------------- mixed mode
def test_mixed_encoder_optimised_head_sampled():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.1))
    x, y, _ = dom.variable("interior")
    encoder = jno.nn.wrap(foundax.mlp(2, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))  # guide
    head = jno.nn.wrap(foundax.mlp(1, hidden_dims=32, num_layers=1, key=jax.random.PRNGKey(1)))  # guide
    encoder.optimizer(optax.adam(1e-3))  # guide
    head.bayesian(blackjax.sgld, step_size=1e-5)  # guide
    start = encoder.module
    u = head(encoder(jno.np.concat([x, y], axis=-1)))
    crux = jno.core([(u - jno.np.sin(π * x) * jno.np.sin(π * y)).mse])
    history = crux.solve()  # warmup 500 + keep 1000
    assert encoder.posterior_samples is None  # guide: only the head has a chain
    assert head.posterior_samples.output_layer.weight.shape == (1000, 1, 32)
    assert not np.array_equal(encoder.module.output_layer.weight, start.output_layer.weight)
    assert history.total_loss[-1] < 0.5 * history.total_loss[0]
    n = dom.points("interior").shape[0]
    assert crux.eval([encoder(jno.np.concat([x, y], axis=-1))]).shape == (n, 1)  # point
    assert crux.eval([u]).shape == (1000, n, 1)  # chain


# ---------------------------------------------------------------------- B-PINN bands
@pytest.mark.slow
def test_bayesian_pinn_predictive_bands():
    π = jno.np.pi  # guide
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))  # guide
    x, _ = dom.variable("interior")  # guide
    xb, _ = dom.variable("boundary")  # guide
    net = jno.nn.wrap(foundax.mlp(1, hidden_dims=32, num_layers=3,
                                  key=jax.random.PRNGKey(0)))  # guide
    net.bayesian(blackjax.sgld, step_size=1e-5, warmup=2000, keep=1000)  # guide
    u = net(x)  # guide
    u_xx = jno.diff(u, x, order=2)  # guide
    pde = u_xx + (π ** 2) * jno.np.sin(π * x)  # guide
    bc = net(xb) - 0.0  # guide
    crux = jno.core([pde.mse, bc.mse])  # guide
    crux.solve(3000)  # guide
    u_chain = crux.eval([u], samples="chain")  # guide
    u_mean = jnp.mean(u_chain, axis=0)  # guide
    u_lo, u_hi = jnp.quantile(u_chain, jnp.array([0.05, 0.95]), axis=0)  # guide
    assert u_chain.shape == (1000, 101, 1) and u_mean.shape == (101, 1)
    assert np.all(u_lo <= u_mean) and np.all(u_mean <= u_hi) and np.all(u_hi - u_lo > 0)
    # the pushforward is the foundax network applied to each draw, derivatives included
    xs = jnp.asarray(dom.points("interior"))
    s = net.posterior_samples
    uxx_chain = crux.eval([u_xx])
    for n in (0, 417, 999):
        draw = jax.tree.map(lambda v: v[n] if eqx.is_array(v) else v, s)
        np.testing.assert_allclose(u_chain[n], draw(xs), rtol=1e-5, atol=1e-6)
        by_hand = jax.vmap(jax.hessian(lambda p: draw(p)[0]))(xs)[:, 0, 0]
        np.testing.assert_allclose(uxx_chain[n, :, 0], by_hand, rtol=1e-3, atol=1e-4)
    # nonlinear pushforward: the mean output is not the output at the mean weights
    mean_net = jax.tree.map(lambda v: jnp.mean(v, 0) if eqx.is_array(v) else v, s)
    assert not np.allclose(u_mean, mean_net(xs), rtol=0, atol=1e-7)


# ---------------------------------------------------------------------- priors
def l_half_prior(p, scale=1.0):  # guide, verbatim
    return -sum(
        jnp.sum(jnp.sqrt(jnp.abs(leaf)))
        for leaf in jax.tree_util.tree_leaves(p)
        if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
    ) / scale


PRIORS = {
    "gaussian": (jno.bayesian.priors.gaussian(sigma=10.0), lambda t: -t**2 / 200.0),
    "laplace": (jno.bayesian.priors.laplace(scale=0.5), lambda t: -np.abs(t) / 0.5),
    "student_t": (jno.bayesian.priors.student_t(df=4.0, scale=1.0),
                  lambda t: -2.5 * np.log1p(t**2 / 4.0)),
    "l_half": (l_half_prior, lambda t: -np.sqrt(np.abs(t))),
}


@pytest.mark.parametrize("name", list(PRIORS))
@pytest.mark.slow
def test_each_prior_gives_the_quadrature_posterior(name):
    """``a.bayesian(blackjax.nuts, step_size=1e-2, prior=...)`` on ``y = a sin πx + ε`` with
    five observations: the posterior mean equals a quadrature of likelihood × prior."""
    prior, logprior = PRIORS[name]
    xs = np.linspace(0.1, 0.9, 5)[:, None]
    obs = (0.6 * np.sin(np.pi * xs) + np.array([[0.3], [-0.2], [0.1], [0.4], [-0.3]]))
    dom = jno.domain(constructor=jno.domain.points(xs))
    x, _ = dom.variable("interior")
    y = dom.variable("y", obs.astype(np.float32))
    a = jno.np.parameter((1,), key=jax.random.PRNGKey(1), name="a")
    a.bayesian(blackjax.nuts, step_size=1e-2, prior=prior, num_chains=4)  # guide (+ chains)
    crux = jno.core([(a * jno.np.sin(π * x) - y).gaussian(std=0.5)])
    crux.solve()
    grid = np.linspace(-6.0, 6.0, 24001)
    phi = np.sin(np.pi * xs[:, 0])
    loglik = -0.5 * ((grid[:, None] * phi - obs[:, 0]) ** 2).sum(1) / 0.25
    logp = loglik + logprior(grid)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = float((w * grid).sum())
    sd = float(np.sqrt((w * (grid - mean) ** 2).sum()))
    assert_mean_within(np.asarray(a.posterior_samples)[..., 0], mean, sd=sd, what=name)


def test_layerwise_prior_on_the_foundax_head_is_the_fan_in_gaussian():
    from scipy.stats import norm

    net = jno.nn.wrap(foundax.mlp(1, hidden_dims=32, num_layers=3, key=jax.random.PRNGKey(0)))
    M = head_mask(net)
    head = net.mask(M)
    head.bayesian(blackjax.sgld, step_size=1e-3, prior=jno.bayesian.priors.layerwise_gaussian())  # guide
    subset = eqx.filter(net.module, M)
    got = float(jno.bayesian.priors.layerwise_gaussian()(subset))
    w, b = net.module.output_layer.weight, net.module.output_layer.bias
    want = norm.logpdf(np.asarray(w), scale=1 / np.sqrt(32)).sum() + norm.logpdf(np.asarray(b)).sum()
    np.testing.assert_allclose(got, want, rtol=1e-5)


# ---------------------------------------------------------------------- initializers
@pytest.mark.parametrize(
    "init",
    ["pathfinder", pytest.param("laplace", marks=pytest.mark.slow),
     pytest.param("svgd", marks=pytest.mark.slow)],
)
@pytest.mark.slow
def test_logdensity_initializers_then_nuts_give_the_exact_posterior(init):
    dom, x, target, a, b, residual = quick_example()
    make = {
        "pathfinder": lambda: jno.bayesian.pathfinder(maxiter=30, num_samples=200),  # guide
        "laplace": lambda: jno.bayesian.laplace(),
        "svgd": lambda: jno.bayesian.svgd(),
    }[init]
    for p in (a, b):
        p.initialize(make())  # guide
        p.bayesian(blackjax.nuts, step_size=1e-2, warmup=100, adapt=True, num_chains=4)  # guide (+ chains)
    crux = jno.core([residual.gaussian(std=0.1)])
    crux.solve()
    assert crux.solver.grad_evals > 0
    check_ab(crux, dom, target, a, b, noise_var=0.01)


# ---------------------------------------------------------------------- multi-chain, diagnostics
@pytest.mark.slow
def test_multichain_diagnostics_and_the_guide_logs(caplog):
    caplog.set_level(logging.INFO, logger="jno")
    dom, x, target, a, b, residual = quick_example()
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            step_size=1e-2,
            num_chains=4,
            init_jitter=0.1,   # guide
            warmup=300,
            keep=400,
        )
    crux = jno.core([residual.gaussian(std=0.1)])
    crux.solve(print_rate=80)
    chain = a.posterior_samples  # guide: (K, N, 1)
    assert chain.shape == (4, 400, 1)
    r = jno.bayesian.rhat(chain)  # guide: (1,)
    e = jno.bayesian.ess(chain)  # guide: (1,)
    assert r.shape == e.shape == (1,)
    text = f"A: R-hat = {float(r[0]):.4f}, ESS = {float(e[0]):.1f}"  # guide (printed)
    assert text.startswith("A: R-hat = ")
    draws = np.asarray(chain, np.float64)[..., 0]
    np.testing.assert_allclose(float(r[0]), float(az.rhat(draws)), rtol=1e-4)
    np.testing.assert_allclose(float(e[0]), float(az.ess(draws, method="bulk")), rtol=1e-3)
    split = jno.bayesian.rhat(chain, strategy="split")
    halves = draws.reshape(8, 200)  # each chain's first and second half
    np.testing.assert_allclose(float(split[0]), float(az.rhat(halves)), rtol=1e-4)
    np.testing.assert_allclose(jno.bayesian.rhat(chain, strategy="multichain"), r)
    with pytest.raises(ValueError):
        jno.bayesian.rhat(chain[:1], strategy="multichain")
    check_ab(crux, dom, target, a, b, noise_var=0.01)
    # per-step diagnostics (the guide's block)
    diag = a.posterior_diagnostics  # guide
    n_divergent = int(diag["is_divergent"].sum())  # guide
    acc = float(diag["acceptance_rate"].mean())  # guide
    assert {k: np.shape(v) for k, v in diag.items() if k in ("is_divergent", "acceptance_rate",
            "energy")} == {"is_divergent": (4, 400), "acceptance_rate": (4, 400),
                           "energy": (4, 400)}
    assert 0.5 < acc < 1.0
    # the guide's logs: configuration, fastpath, solve-end summary (numbers from the draws)
    logs = caplog.text
    assert "diagnostics=is_divergent, acceptance_rate, energy" in logs
    # window adaptation ran the 300 warm-up steps first, so the scan has none left (the
    # guide's own line reads "+ 0 warmup" for the same reason)
    assert "MCMC fastpath: scan over 400 samples × thin=1 + 0 warmup, chunked at print_rate=80." in logs
    summary = re.search(r"Model .*'a'.*: (\d+)/(\d+) divergent \(([\d.]+)%\), mean_accept=([\d.]+)",
                        logs)
    assert summary, logs
    assert int(summary.group(1)) == n_divergent and int(summary.group(2)) == 1600
    assert float(summary.group(4)) == pytest.approx(acc, abs=0.006)


# ---------------------------------------------------------------------- VI
def test_mean_field_vi_with_likelihood_scale():
    dom, x, target, a, b, residual = quick_example()
    N_obs = dom.points("interior").shape[0]
    for p in (a, b):
        p.vi(
            blackjax.meanfield_vi,
            optimizer=optax.adam(1e-2),
            num_samples=8,           # guide
            posterior_draws=500,     # guide
            likelihood_scale=N_obs,   # guide
        )
    crux = jno.core([residual.mse])
    history = crux.solve(2000)  # guide: 2000 ELBO steps
    chain = a.posterior_samples  # guide: (1, 500, 1)
    assert chain.shape == (1, 500, 1)
    assert history.total_loss[-1] < history.total_loss[0]
    # -N·mean(r²) is a Gaussian of noise variance 1/2; sin and cos are nearly orthogonal on
    # the grid, so the mean-field optimum has the exact means
    data = crux.eval([target])[:, 0]
    mean, sd = exact_ab(dom, data, 0.5)
    for i, p in enumerate((a, b)):
        assert_mean_within(np.asarray(p.posterior_samples)[0, :, 0], mean[i], sd=sd[i],
                           what=p.model_name)


# ---------------------------------------------------------------------- masks
def head_mask(net):
    all_false     = jax.tree_util.tree_map(lambda _: False, net.module)  # guide
    head_all_true = jax.tree_util.tree_map(lambda _: True, net.module.output_layer)  # guide
    head_mask     = eqx.tree_at(lambda m: m.output_layer, all_false,
                                replace=head_all_true)  # guide
    return head_mask


def last_layer_problem(seed=0, hidden=8):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = jno.np.sin(π * x) + jno.noise.gaussian(std=0.1)
    net = jno.nn.wrap(foundax.mlp(1, hidden_dims=hidden, num_layers=2,
                                  key=jax.random.PRNGKey(seed)), name="u")
    return dom, x, target, net


def test_head_mask_sgld_samples_only_the_head():
    dom, x, target, net = last_layer_problem(hidden=32)
    start = net.module
    net.mask(head_mask(net)).bayesian(blackjax.sgld, step_size=1e-3,
                                      warmup=1500, keep=400, thin=2)  # guide
    crux = jno.core([(net(x) - target).mse])  # the guide's tempered likelihood for SGLD
    crux.solve()
    s = net.posterior_samples
    assert s.output_layer.weight.shape == (400, 1, 32)
    assert np.ptp(np.asarray(s.output_layer.weight), axis=0).min() > 0
    for layer, first in zip(s.hidden_layers, start.hidden_layers):
        np.testing.assert_array_equal(layer.weight, np.broadcast_to(first.weight, layer.weight.shape))
    assert crux.eval([net(x)], samples="auto").shape == (400, 21, 1)


@pytest.mark.slow
def test_head_mask_nuts_matches_the_closed_form_last_layer_posterior():
    """With the body held, the head ``y = w·h(x) + c`` is linear-Gaussian: the predictive mean
    and sd at every point equal the closed form built from the foundax body's features."""
    dom, x, target, net = last_layer_problem()
    net.mask(head_mask(net)).bayesian(blackjax.nuts, warmup=500, keep=1000, num_chains=2)
    crux = jno.core([(net(x) - target).gaussian(std=0.1)])
    crux.solve()
    xs = jnp.asarray(dom.points("interior"))
    body = net.module

    def features(p):
        h = p
        for layer in body.hidden_layers:
            h = body.activation(layer(h))
        return h

    H = np.asarray(jax.vmap(features)(xs), np.float64)
    design = np.concatenate([H, np.ones((H.shape[0], 1))], axis=1)
    y = np.asarray(crux.eval([target]), np.float64)[:, 0]
    cov = np.linalg.inv(design.T @ design / 0.01 + np.eye(design.shape[1]) / PRIOR_SIGMA**2)
    mean = cov @ design.T @ y / 0.01
    pred_mean = design @ mean
    pred_sd = np.sqrt(np.einsum("ij,jk,ik->i", design, cov, design))
    u = crux.eval([net(x)])[..., 0]  # (2, 1000, 21)
    for i in (0, 10, 20):
        assert_gaussian_within(u[:, :, i], pred_mean[i], pred_sd[i], what=f"u(x_{i})")


def test_pattern_b_body_trained_head_sampled():
    dom, x, target, net = last_layer_problem()
    start = net.module
    net.optimizer(optax.adam(1e-2))
    net.mask(head_mask(net)).bayesian(blackjax.sgld, step_size=1e-4, warmup=300, keep=200)
    crux = jno.core([(net(x) - target).mse])
    history = crux.solve()
    s = net.posterior_samples
    assert np.ptp(np.asarray(s.output_layer.weight), axis=0).min() > 0
    first = np.asarray(s.hidden_layers[0].weight)
    assert not np.allclose(first[-1], start.hidden_layers[0].weight)  # the body was trained
    np.testing.assert_array_equal(first[-1], net.module.hidden_layers[0].weight)
    assert history.total_loss[-1] < 0.5 * history.total_loss[0]


def test_pattern_d_two_masked_groups_each_move_their_leaves():
    dom, x, target, net = last_layer_problem()
    body = jax.tree_util.tree_map(lambda v: not v, head_mask(net))
    body = eqx.tree_at(lambda m: m.hidden_layers[0], body,
                       replace=jax.tree_util.tree_map(lambda _: False, net.module.hidden_layers[0]))
    start = net.module
    net.mask(head_mask(net)).bayesian(blackjax.mala, step_size=1e-4, warmup=100, keep=100)
    net.mask(body).bayesian(blackjax.mala, step_size=1e-5, warmup=100, keep=100)
    crux = jno.core([(net(x) - target).gaussian(std=0.1)])
    crux.solve()
    s = net.posterior_samples
    assert np.ptp(np.asarray(s.output_layer.weight), axis=0).max() > 0
    assert np.ptp(np.asarray(s.hidden_layers[1].weight), axis=0).max() > 0
    np.testing.assert_array_equal(
        s.hidden_layers[0].weight, np.broadcast_to(start.hidden_layers[0].weight, (100, 8, 1))
    )


def test_pattern_e_vi_head_and_mcmc_body_splice():
    dom, x, target, net = last_layer_problem()
    body = jax.tree_util.tree_map(lambda v: not v, head_mask(net))
    net.mask(head_mask(net)).vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2),
                                posterior_draws=150)
    net.mask(body).bayesian(blackjax.mala, step_size=1e-5, warmup=50, keep=150)
    crux = jno.core([(net(x) - target).gaussian(std=0.1)])
    crux.solve()
    s = net.posterior_samples
    head_w = np.asarray(s.output_layer.weight).reshape(-1, 8)
    assert head_w.shape == (150, 8)
    # VI draws are i.i.d.: their lag-1 autocorrelation is ~N(0, 1/N); MALA's is near 1
    z = head_w[:, 0] - head_w[:, 0].mean()
    assert abs(np.sum(z[1:] * z[:-1]) / np.sum(z * z)) < 5 / np.sqrt(150)
    body_w = np.asarray(s.hidden_layers[1].weight).reshape(150, -1)[:, 0]
    zb = body_w - body_w.mean()
    assert np.sum(zb[1:] * zb[:-1]) / np.sum(zb * zb) > 0.5


# ---------------------------------------------------------------------- LoRA
@pytest.mark.slow
def test_lora_on_a_foundax_network():
    from jno.nn import LoRALinear, merge_lora

    dom, x, target, net = last_layer_problem()
    base = net.module
    net.lora(rank=4, alpha=8.0).bayesian(blackjax.nuts, warmup=100, keep=100)  # guide (+ sizes)
    adapted = net.module
    loras = [n for n in jax.tree.leaves(adapted, is_leaf=lambda v: isinstance(v, LoRALinear))
             if isinstance(n, LoRALinear)]
    assert len(loras) == 3
    crux = jno.core([(net(x) - target).gaussian(std=0.1)])
    crux.solve()
    s = net.posterior_samples
    np.testing.assert_array_equal(  # base weights held
        s.output_layer.weight, np.broadcast_to(base.output_layer.weight, (100, 1, 8)))
    assert np.ptp(np.asarray(s.output_layer.B), axis=0).max() > 0
    xs = jnp.asarray(dom.points("interior"))
    out = crux.eval([net(x)])
    for n in (0, 99):
        draw = jax.tree.map(lambda v: v[n] if eqx.is_array(v) else v, s)
        # the pushforward is the adapted foundax network of each draw, applied by hand: the
        # same float32 operations, fused and ordered differently by XLA (vmapped per point vs
        # batched): a few ulps of each of ~100 operations, 1.5e-5 relative seen once in CI
        np.testing.assert_allclose(out[n], draw(xs), rtol=1e-4, atol=1e-5)
        merged = merge_lora(draw)
        assert type(merged.output_layer) is type(base.output_layer)  # foundax's Linear again
        # merging adds s·BA into W: float32 sums in another order (4e-5 measured under SSE4_2)
        np.testing.assert_allclose(merged(xs), draw(xs), rtol=1e-3, atol=2e-4)


# ---------------------------------------------------------------------- substeps
@pytest.mark.slow
def test_two_stage_substeps_train_the_surrogate_on_its_own_constraints():
    """``substeps=[([data, bc], [surrogate]), ([pde], [k])]``: the surrogate moves on data and
    boundary only, so its weights equal an optax.adam loop on those two losses by hand; k is
    sampled on the PDE residual (``-u'' = k π² sin πx`` with ``u = sin πx``, truth k = 1)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    surrogate = jno.nn.wrap(foundax.mlp(1, hidden_dims=8, num_layers=2,
                                        key=jax.random.PRNGKey(0)), name="u")
    k = jno.np.parameter((1,), name="k", init=0.5)
    surrogate.optimizer(optax.adam(1e-2))
    k.bayesian(blackjax.nuts, step_size=1e-2, adapt=False, warmup=0, keep=60)
    u = surrogate(x)
    data = (u - jno.np.sin(π * x)).mse
    bc = surrogate(xb).mse
    pde = (jno.diff(u, x, order=2) + k * π**2 * jno.np.sin(π * x)).gaussian(std=0.5)
    crux = jno.core([data, bc, pde])
    start = surrogate.module
    crux.solve(60, substeps=[([data, bc], [surrogate]), ([pde], [k])])  # guide's format
    xs = jnp.asarray(dom.points("interior"))
    xbs = jnp.asarray(dom.points("boundary"))
    params, static = eqx.partition(start, eqx.is_inexact_array)

    def loss(p):
        m = eqx.combine(p, static)
        return jnp.mean((m(xs) - jnp.sin(jnp.pi * xs)) ** 2) + jnp.mean(m(xbs) ** 2)

    tx = optax.adam(1e-2)
    opt = tx.init(params)
    for _ in range(60):  # Adam amplifies f32 round-off: 5e-7 after 50 steps, 2e-3 after 300
        updates, opt = tx.update(jax.grad(loss)(params), opt, params)
        params = optax.apply_updates(params, updates)
    for got, want in zip(jax.tree.leaves(eqx.filter(surrogate.module, eqx.is_inexact_array)),
                         jax.tree.leaves(params)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    kk = np.asarray(k.posterior_samples)[:, 0]
    assert kk.shape == (60,) and np.ptp(kk) > 0
