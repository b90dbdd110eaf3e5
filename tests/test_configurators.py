"""Configurators follow one rule: the last call wins.

``.optimizer``, ``.freeze``, ``.bayesian``, ``.vi``, ``.ensemble``, ``.initialize`` and
``.lora`` each replace what an earlier call on the same model (and the same mask) set; the
guide's one exception is kept: ``.vi`` then ``.bayesian`` on the same leaves is an error.
"""

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.bayesian.initializers import BayesianInitializer

XS = np.linspace(0, 1, 11)
S2 = float(np.mean(np.sin(np.pi * XS) ** 2))  # mean sin²(πx) on the line's 11 nodes


def stay(logdensity_fn, step_size):
    """A kernel that never moves: every draw is the chain's start."""
    return blackjax.SamplingAlgorithm(
        lambda position: {"position": position},
        lambda rng_key, state: (state, {"stayed": jnp.asarray(True)}),
    )


class CountingInit(BayesianInitializer):
    """A log-density initializer that records the starts it is given and moves them to 7."""

    def __init__(self):
        self.starts = []

    def __call__(self, rng_key, logdensity_fn, position, num_chains):
        self.starts.append(position)
        return jax.tree.map(lambda p: jnp.full_like(p, 7.0), position), {}


def problem():
    """``loss(a) = mean((a - 1)² sin²(πx))``: one SGD step from 0 moves ``a`` to
    ``lr · 2 · mean(sin²)``."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.0)
    return a, ((a - 1.0) * jno.np.sin(jno.np.pi * x)).mse


def test_a_value_after_a_logdensity_initializer_wins():
    a, c = problem()
    init = CountingInit()
    a.initialize(init)
    a.initialize(jnp.array([2.4]))
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3)
    jno.core([c]).solve()
    assert init.starts == []  # the initializer never ran
    np.testing.assert_allclose(a.posterior_samples, 2.4)


def test_a_logdensity_initializer_after_a_value_runs_from_it():
    a, c = problem()
    init = CountingInit()
    a.initialize(jnp.array([2.4]))
    a.initialize(init)
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3)
    jno.core([c]).solve()
    np.testing.assert_allclose(jax.tree.leaves(init.starts[0]), [[2.4]])
    np.testing.assert_allclose(a.posterior_samples, 7.0)


def test_the_second_optimizer_wins():
    a, c = problem()
    a.optimizer(optax.sgd(0.0)).optimizer(optax.sgd(0.1))
    jno.core([c]).solve(1)
    np.testing.assert_allclose(np.asarray(a.module), [0.1 * 2 * S2], rtol=1e-5)


def test_optimizer_after_bayesian_trains_and_bayesian_after_optimizer_samples():
    a, c = problem()
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3).optimizer(optax.sgd(0.1))
    jno.core([c]).solve(1)
    assert a.posterior_samples is None
    np.testing.assert_allclose(np.asarray(a.module), [0.2 * S2], rtol=1e-5)
    b, c = problem()
    b.optimizer(optax.sgd(0.1)).bayesian(stay, step_size=0.0, warmup=0, keep=3)
    jno.core([c]).solve()
    np.testing.assert_allclose(b.posterior_samples, 0.0)


def test_freeze_after_a_configurator_holds_and_a_configurator_after_freeze_wins():
    a, c = problem()
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3).freeze()
    b = jno.np.parameter((1,), name="b", init=0.0)  # something left to train
    jno.core([c, ((b - 1.0) ** 2).sum]).solve(2)
    assert a.posterior_samples is None
    np.testing.assert_array_equal(np.asarray(a.module), [0.0])
    a, c = problem()
    a.freeze().optimizer(optax.sgd(0.1))
    jno.core([c]).solve(1)
    np.testing.assert_allclose(np.asarray(a.module), [0.2 * S2], rtol=1e-5)


def test_the_second_bayesian_replaces_the_first():
    a, c = problem()
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3)
    a.bayesian(stay, step_size=0.0, warmup=0, keep=5)
    assert len(a.groups) == 1
    jno.core([c]).solve()
    assert a.posterior_samples.shape == (5, 1)


def test_the_same_mask_twice_replaces_its_group():
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    head = eqx.tree_at(lambda m: m.layers[-1], jax.tree.map(lambda _: False, net.module),
                       replace=jax.tree.map(lambda _: True, net.module.layers[-1]))
    net.mask(head).bayesian(stay, step_size=0.0, warmup=0, keep=3)
    net.mask(head).bayesian(stay, step_size=0.0, warmup=0, keep=4)
    assert [g.settings.keep for g in net.groups] == [4]


def test_ensemble_and_bayesian_replace_each_other():
    a, c = problem()
    a.bayesian(stay, step_size=0.0, warmup=0, keep=3).ensemble(size=2, optimizer=optax.sgd(0.1))
    jno.core([c]).solve(1)
    assert a.groups == [] and a.posterior_samples.shape == (1, 2, 1)  # (1, E, *param)
    b, c = problem()
    b.ensemble(size=2).bayesian(stay, step_size=0.0, warmup=0, keep=3)
    jno.core([c]).solve()
    assert b.ensemble_settings is None and b.posterior_samples.shape == (3, 1)


def test_bayesian_after_vi_is_still_an_error():
    a, _ = problem()
    a.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2))
    with pytest.raises(ValueError, match="after .vi"):
        a.bayesian(blackjax.nuts)


def test_the_second_lora_replaces_the_adapters():
    from jno.nn import LoRALinear

    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    base = net.module
    net.lora(rank=2).lora(rank=3, alpha=6.0)
    loras = [n for n in jax.tree.leaves(net.module, is_leaf=lambda v: isinstance(v, LoRALinear))
             if isinstance(n, LoRALinear)]
    assert [lo.rank for lo in loras] == [3, 3, 3]
    assert all(lo.A.shape[0] == 3 and lo.alpha == 6.0 for lo in loras)
    xs = jnp.linspace(0, 1, 5)[:, None]
    np.testing.assert_allclose(jax.vmap(net.module)(xs), jax.vmap(base)(xs), rtol=1e-6)
    with pytest.raises(ValueError, match="call .lora"):
        net.bayesian(stay, step_size=0.0).lora(rank=2)
