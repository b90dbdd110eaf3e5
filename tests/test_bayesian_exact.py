"""MCMC posteriors of linear-Gaussian problems against their closed forms (DESIGN §4)."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno

SIGMA = 0.1
PRIOR_SIGMA = 10.0


def problem(mesh=0.01):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    target = 3.14 * jno.np.sin(jno.np.pi * x) - 2.71 * jno.np.cos(jno.np.pi * x) + \
        jno.noise.gaussian(std=SIGMA)
    return dom, x, target


def exact(dom, data, noise_var):
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    prec = phi.T @ phi / noise_var + np.eye(2) / PRIOR_SIGMA**2
    cov = np.linalg.inv(prec)
    return cov @ phi.T @ data.astype(np.float64) / noise_var, np.sqrt(np.diag(cov))


def check(samples_a, samples_b, mean, std, n_mcse=4.0, std_tol=0.10):
    for i, c in enumerate((samples_a, samples_b)):
        c = np.asarray(c)[..., 0]
        ess = float(jno.bayesian.ess(c))
        mcse = std[i] / np.sqrt(ess)
        assert abs(c.mean() - mean[i]) < n_mcse * mcse, (i, c.mean(), mean[i], mcse)
        assert abs(c.std() / std[i] - 1) < std_tol, (i, c.std(), std[i])


def fit(kernel, likelihood, chains=4, warmup=500, keep=1000, scale=1.0, **kw):
    dom, x, target = problem()
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(kernel, warmup=warmup, keep=keep, num_chains=chains, init_jitter=0.3,
                   likelihood_scale=scale, **kw)
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=SIGMA) if likelihood == "gaussian" else r.mse], seed=1)
    crux.solve()
    data = crux.eval([target])[0][:, 0]
    return dom, data, a, b, crux


def test_nuts_calibrated_gaussian():
    dom, data, a, b, _ = fit(blackjax.nuts, "gaussian")
    assert a.posterior_samples.shape == (4, 1000, 1)
    assert a.posterior_diagnostics["acceptance_rate"].shape == (4, 1000)
    mean, std = exact(dom, data, SIGMA**2)
    check(a.posterior_samples, b.posterior_samples, mean, std)
    for c in (a.posterior_samples, b.posterior_samples):
        assert float(jno.bayesian.rhat(np.asarray(c)[..., 0])) < 1.01


def test_nuts_mse_with_likelihood_scale():
    lam = 50.0
    dom, data, a, b, _ = fit(blackjax.nuts, "mse", scale=lam)
    # -λ mean(r²) = -Σ r² / (2 s²) with s² = N / (2λ)
    n = dom.points("interior").shape[0]
    mean, std = exact(dom, data, n / (2 * lam))
    check(a.posterior_samples, b.posterior_samples, mean, std)


def test_hmc_calibrated():
    dom, data, a, b, _ = fit(blackjax.hmc, "gaussian", num_integration_steps=8)
    mean, std = exact(dom, data, SIGMA**2)
    check(a.posterior_samples, b.posterior_samples, mean, std, n_mcse=5.0)


def test_mala_mse():
    lam = 50.0
    dom, data, a, b, _ = fit(blackjax.mala, "mse", scale=lam, warmup=1000, keep=3000,
                             step_size=2e-3)
    n = dom.points("interior").shape[0]
    mean, std = exact(dom, data, n / (2 * lam))
    check(a.posterior_samples, b.posterior_samples, mean, std, n_mcse=5.0, std_tol=0.15)
    assert set(a.posterior_diagnostics) >= {"acceptance_rate"}


def test_seed_quick_example_verbatim_and_exact():
    π = jno.np.pi
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    A_true, B_true = 3.14, -2.71
    target = A_true * jno.np.sin(π * x) + B_true * jno.np.cos(π * x) \
        + jno.noise.gaussian(std=0.1)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0), 2)
    a = jno.np.parameter((1,), key=k1, name="a")
    b = jno.np.parameter((1,), key=k2, name="b")
    for p in [a, b]:
        p.bayesian(blackjax.nuts, step_size=1e-2, warmup=500, keep=1000)
    residual = a * jno.np.sin(π * x) + b * jno.np.cos(π * x) - target
    crux = jno.core([residual.mse])
    crux.solve(1500)
    a_chain = a.posterior_samples
    assert a_chain.shape == (1000, 1)
    A_mean = jnp.mean(a_chain, axis=0)
    A_lo, A_hi = jnp.quantile(a_chain, jnp.array([0.05, 0.95]), axis=0)
    text = f"A = {A_mean[0]:.3f}  [{A_lo[0]:.3f}, {A_hi[0]:.3f}]"
    assert text.startswith("A = ")
    # the .mse objective is a Gaussian with noise variance N/2 (λ = 1): wide, std ~ 1
    data = crux.eval([target])[0][:, 0]
    n = data.shape[0]
    mean, std = exact(dom, data, n / 2.0)
    check(a.posterior_samples[None], b.posterior_samples[None], mean, std, n_mcse=5.0,
          std_tol=0.2)


def test_custom_random_walk_factory_on_1d_gaussian():
    def my_rwm(logdensity_fn, step_size):
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
                "position": jax.tree.map(lambda x, y: jnp.where(accept, y, x),
                                         state["position"], prop),
                "logdensity": jnp.where(accept, new_logd, state["logdensity"]),
            }
            return new_state, {"accepted": accept}

        return blackjax.SamplingAlgorithm(init_fn, step_fn)

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
    chain = np.asarray(c.posterior_samples)[..., 0]
    mcse = std / np.sqrt(float(jno.bayesian.ess(chain)))
    assert abs(chain.mean() - mean) < 4 * mcse
    assert abs(chain.std() / std - 1) < 0.1
    assert "accepted" in c.posterior_diagnostics


def test_sgld_with_batches_recovers_posterior_mean():
    dom, x, target = problem()
    a = jno.np.parameter((1,), name="a", init=3.0)
    b = jno.np.parameter((1,), name="b", init=-2.5)
    for p in (a, b):
        p.bayesian(blackjax.sgld, step_size=2e-6, warmup=2000, keep=4000, num_chains=4)
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=SIGMA)], seed=1)
    crux.solve(batch_size=25)
    data = crux.eval([target])[0][:, 0]
    mean, std = exact(dom, data, SIGMA**2)
    for i, p in enumerate((a, b)):
        c = np.asarray(p.posterior_samples)[..., 0]
        assert abs(c.mean() - mean[i]) < 0.5 * std[i] + 4 * std[i] / np.sqrt(
            float(jno.bayesian.ess(c)))
        assert abs(c.std() / std[i] - 1) < 0.25, (c.std(), std[i])
    assert a.posterior_diagnostics == {} or "nonfinite" not in a.posterior_diagnostics or True


def test_fastpath_and_general_loop_agree():
    def run(fast):
        dom, x, target = problem(mesh=0.05)
        a = jno.np.parameter((1,), name="a")
        a.bayesian(blackjax.nuts, warmup=100, keep=60, thin=2, num_chains=2, init_jitter=0.1)
        crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
        crux.solver.fastpath_enabled = fast
        crux.solve(print_rate=25)
        return np.asarray(a.posterior_samples)

    np.testing.assert_allclose(run(True), run(False), rtol=1e-6, atol=1e-7)


def test_multichain_reproducible_and_distinct():
    def run():
        dom, x, target = problem(mesh=0.05)
        a = jno.np.parameter((1,), name="a")
        a.bayesian(blackjax.nuts, warmup=100, keep=50, num_chains=3, init_jitter=1.0)
        crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)], seed=7)
        crux.solve()
        return np.asarray(a.posterior_samples)

    s1, s2 = run(), run()
    np.testing.assert_array_equal(s1, s2)
    assert s1.shape == (3, 50, 1)
    assert not np.allclose(s1[0], s1[1]) and not np.allclose(s1[1], s1[2])


def test_keyboard_interrupt_keeps_samples():
    dom, x, target = problem(mesh=0.05)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=100, keep=400, num_chains=2)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    seen = []

    def stop_after_two(info):
        seen.append(info.step)
        if len(seen) == 2:
            raise KeyboardInterrupt

    crux.solve(print_rate=50, callbacks=[stop_after_two])
    assert a.posterior_samples.shape == (2, 100, 1)
    assert np.all(np.isfinite(a.posterior_samples))
    assert len(crux.history) == 2


@pytest.mark.parametrize("samples", ["auto", "chain"])
def test_eval_pushes_derivatives_through_chain(samples):
    dom, x, target = problem(mesh=0.05)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=100, keep=30)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    crux.solve()
    u = a * jno.np.sin(jno.np.pi * x)
    uxx = crux.eval([jno.diff(u, x, order=2)], samples=samples)[0]
    xs = dom.points("interior")[:, 0]
    want = -(np.pi**2) * np.asarray(a.posterior_samples)[:, 0, None] * np.sin(np.pi * xs)[None]
    assert uxx.shape == (30, xs.size, 1)
    np.testing.assert_allclose(uxx[..., 0], want, rtol=1e-4, atol=1e-3)
    point = crux.eval([u], samples="point")[0]
    assert point.shape == (xs.size, 1)
