"""NumPyro log-joints: pattern C and the from_numpyro likelihood/prior split."""

import subprocess
import sys
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
from scipy import stats

from jno.inference import ensemble_init, ensemble_step, from_numpyro

numpyro = pytest.importorskip("numpyro")
dist = pytest.importorskip("numpyro.distributions")
from numpyro import handlers  # noqa: E402
from numpyro.infer.util import log_density  # noqa: E402

SIGMA, HIDDEN, E = 0.2, 6, 3


def regression(x, y=None):
    w = numpyro.sample("w", dist.Normal(0.0, 2.0))
    b = numpyro.sample("b", dist.Normal(1.0, 0.5))
    numpyro.sample("y", dist.Normal(w * x + b, SIGMA), obs=y)


def mlp_model(x, y=None):
    W1 = numpyro.sample("W1", dist.Normal(jnp.zeros((1, HIDDEN)), 1.0).to_event(2))
    b1 = numpyro.sample("b1", dist.Normal(jnp.zeros(HIDDEN), 1.0).to_event(1))
    W2 = numpyro.sample("W2", dist.Normal(jnp.zeros((HIDDEN, 1)), 1.0).to_event(2))
    h = jnp.tanh(x[:, None] @ W1 + b1)
    numpyro.sample("y", dist.Normal((h @ W2).squeeze(-1), SIGMA), obs=y)


def init_mlp(key):
    k1, k2, k3 = jr.split(key, 3)
    return {
        "W1": 0.5 * jr.normal(k1, (1, HIDDEN)),
        "b1": 0.5 * jr.normal(k2, (HIDDEN,)),
        "W2": 0.5 * jr.normal(k3, (HIDDEN, 1)),
    }


@pytest.fixture(scope="module")
def data():
    kx, ky = jr.split(jr.PRNGKey(8))
    x = jr.uniform(kx, (15,), minval=-1.0, maxval=1.0)
    return x, 0.7 * x - 0.2 + SIGMA * jr.normal(ky, (15,))


def test_split_matches_hand_computed_densities(data):
    x, y = data
    params = {"w": jnp.array(0.4), "b": jnp.array(-0.3)}
    loglik, logprior = from_numpyro(regression)(params, x, y)
    xn, yn = np.asarray(x, float), np.asarray(y, float)
    np.testing.assert_allclose(
        loglik, stats.norm.logpdf(yn, 0.4 * xn - 0.3, SIGMA).sum(), rtol=1e-5
    )
    np.testing.assert_allclose(
        logprior, stats.norm.logpdf(0.4, 0, 2) + stats.norm.logpdf(-0.3, 1, 0.5), rtol=1e-5
    )
    total, _ = log_density(regression, (x, y), {}, params)
    np.testing.assert_allclose(loglik + logprior, total, rtol=1e-6)


def test_site_scale_counts_as_in_log_density(data):
    x, y = data
    scaled = handlers.scale(regression, scale=3.0)
    params = {"w": jnp.array(0.4), "b": jnp.array(-0.3)}
    loglik, logprior = from_numpyro(scaled)(params, x, y)
    total, _ = log_density(scaled, (x, y), {}, params)
    np.testing.assert_allclose(loglik + logprior, total, rtol=1e-6)
    plain_loglik, _ = from_numpyro(regression)(params, x, y)
    np.testing.assert_allclose(loglik, 3.0 * plain_loglik, rtol=1e-6)


def test_missing_latent_site_raises(data):
    x, y = data
    with pytest.raises(ValueError, match=r"\['b'\]"):
        from_numpyro(regression)({"w": jnp.array(0.4)}, x, y)


def run_steps(log_joint, prior_weight, x, y, num_steps=5):
    optimizer = optax.adam(1e-2)
    state = ensemble_init(init_mlp, optimizer, ensemble_size=E, seed=jr.PRNGKey(0))
    step = eqx.filter_jit(
        lambda s: ensemble_step(
            s, x, y, log_joint=log_joint, optimizer=optimizer, prior_weight=prior_weight
        )
    )
    history = []
    for _ in range(num_steps):
        state, losses = step(state)
        history.append(losses)
    return state.params, jnp.stack(history)


def test_pattern_c_log_density_equals_tempered_split_at_weight_one(data):
    x, y = data

    def log_joint_total(params, xb, yb):
        total, _ = log_density(mlp_model, (xb, yb), {}, params)
        return total, jnp.zeros(())

    params_c, losses_c = run_steps(log_joint_total, 0.0, x, y)
    params_s, losses_s = run_steps(from_numpyro(mlp_model), 1.0, x, y)
    np.testing.assert_allclose(losses_c, losses_s, rtol=1e-5)
    for name in params_c:
        np.testing.assert_allclose(params_c[name], params_s[name], rtol=1e-5, atol=1e-6)
    assert losses_c.shape == (5, E)
    assert jnp.all(losses_c[-1] < losses_c[0])


def test_tempered_split_weights_only_the_prior(data):
    x, y = data
    split = from_numpyro(mlp_model)
    state = ensemble_init(init_mlp, optax.sgd(0.0), ensemble_size=1, seed=jr.PRNGKey(5))
    step = eqx.filter_jit(
        lambda s: ensemble_step(
            s, x, y, log_joint=split, optimizer=optax.sgd(0.0), prior_weight=0.25
        )
    )
    _, losses = step(state)
    loglik, logprior = jax.jit(split)({k: v[0] for k, v in state.params.items()}, x, y)
    assert abs(float(logprior)) > 1.0
    np.testing.assert_allclose(losses[0], -loglik - 0.25 * logprior, rtol=1e-6)


def test_import_works_without_numpyro():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["numpyro"] = None
        import jno.inference
        try:
            jno.inference.from_numpyro(lambda x, y: None)
        except ImportError as err:
            print("ImportError:", err)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "ImportError: from_numpyro needs NumPyro" in out


def test_split_is_jittable(data):
    x, y = data
    split = jax.jit(from_numpyro(regression))
    loglik, logprior = split({"w": jnp.array(0.4), "b": jnp.array(-0.3)}, x, y)
    assert jnp.isfinite(loglik) and jnp.isfinite(logprior)
