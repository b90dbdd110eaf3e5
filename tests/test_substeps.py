"""``crux.solve(..., substeps=...)``: who moves, on which constraints, and what is recorded.

Independent truths: block-coordinate optima that differ from the joint optimum, a Gaussian
posterior restricted to one substep's likelihood, and a deterministic "counter" kernel whose
every position is known in advance (PITFALLS 7: the recorded chain must be the kernel state
that was advanced, step for step).
"""

from __future__ import annotations

import logging

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno

from stats import assert_gaussian_within, mcse_mean


@pytest.fixture(autouse=True)
def _quiet_jno():
    logger = logging.getLogger("jno")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


def counter(logdensity_fn, step_size):
    """A deterministic kernel: each transition adds ``step_size`` to every coordinate."""
    del logdensity_fn

    def init(position):
        return {"position": position}

    def step(key, state):
        moved = jax.tree.map(lambda p: p + step_size, state["position"])
        return {"position": moved}, {"moved": jnp.ones(())}

    return blackjax.base.SamplingAlgorithm(init, step)


def test_each_substep_moves_its_models_on_its_constraints_only():
    """Block-coordinate descent: substep 0 minimises (a-1)² over a, substep 1 minimises
    (a+b-3)² + b² over b, giving a = 1, b = 1; the joint optimum is a = 5/3, b = 2/3. A model
    listed in no substep does not move."""
    a = jno.np.parameter((1,), name="a", init=0.0).optimizer(optax.adam(5e-2))
    b = jno.np.parameter((1,), name="b", init=0.0).optimizer(optax.adam(5e-2))
    c = jno.np.parameter((1,), name="c", init=0.25).optimizer(optax.adam(5e-2))
    c1 = ((a - 1.0) ** 2).sum.name("c1")
    c2 = ((a + b - 3.0) ** 2 + b**2).sum.name("c2")
    c3 = ((c - 7.0) ** 2).sum.name("c3")
    crux = jno.core([c1, c2, c3])
    crux.solve(1500, substeps=[(["c1"], [a]), ([1], [b])], print_rate=500)
    np.testing.assert_allclose(a.module, [1.0], atol=1e-3)
    np.testing.assert_allclose(b.module, [1.0], atol=1e-3)
    np.testing.assert_array_equal(c.module, [0.25])
    # the same constraints solved jointly reach the other optimum
    a.initialize(np.zeros(1, np.float32))
    b.initialize(np.zeros(1, np.float32))
    joint = jno.core([c1, c2])
    joint.solve(1500, print_rate=500)
    np.testing.assert_allclose(a.module, [5 / 3], atol=1e-3)
    np.testing.assert_allclose(b.module, [2 / 3], atol=1e-3)


def test_sampled_substep_sees_only_its_likelihood():
    """k's substep sees (k - 1) ~ N(0, 0.1²) only; the other constraint, (k - 5) ~ N(0, 1),
    belongs to another substep. Exact posterior with the N(0, 10²) prior: mean 100/100.01,
    sd 1/sqrt(100.01); with both likelihoods it would be 105/101.01 = 1.0395."""
    k = jno.np.parameter((1,), name="k", init=0.0)
    k.bayesian(blackjax.nuts, step_size=0.1, adapt=False, warmup=100, keep=1000, num_chains=2)
    other = jno.np.parameter((1,), name="other", init=0.0).optimizer(optax.adam(1e-2))
    phys = (k - 1.0).gaussian(std=0.1).name("phys")
    data = (k - 5.0).gaussian(std=1.0).name("data")
    anchor = ((other - 3.0) ** 2).sum.name("anchor")
    crux = jno.core([phys, data, anchor])
    crux.solve(1100, substeps=[([anchor, data], [other]), ([phys], [k])], print_rate=550)
    chain = np.asarray(k.posterior_samples)[..., 0]
    mean, sd = 100 / 100.01, 1 / np.sqrt(100.01)
    assert_gaussian_within(chain, mean, sd, what="k")
    # the wrong posterior (data constraint also in k's block) is 8 MCSE away or more
    mcse, _ = mcse_mean(chain)
    assert abs(chain.mean() - 105 / 101.01) > 8 * mcse


@pytest.mark.parametrize("thin", [1, 3])
def test_recorded_chain_is_the_advanced_kernel_state(thin):
    """PITFALLS 7 with a kernel whose trajectory is known: after step i (0-based) every chain
    sits at start + (i + 1)·δ, so the kept draws are fixed numbers. An optax surrogate trains
    in substep 0 meanwhile."""
    warmup, keep, delta, chains = 5, 4, 0.5, 2
    k = jno.np.parameter((1,), name="k", init=0.0)
    # both chains start at 0 (initializers are refused with substeps, and no jitter is set)
    k.bayesian(counter, step_size=delta, warmup=warmup, keep=keep, thin=thin, num_chains=chains)
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-2))
    fit = (net(x) - jno.np.sin(x)).mse.name("fit")
    phys = (k * net(x)).mse.name("phys")
    crux = jno.core([fit, phys])
    total = warmup + keep * thin
    crux.solve(total, substeps=[([fit], [net]), ([phys], [k])], print_rate=4)
    steps = np.arange(total)
    recorded = steps[(steps >= warmup) & ((steps - warmup + 1) % thin == 0)][-keep:]
    expected = delta * (recorded + 1.0)
    np.testing.assert_allclose(
        k.posterior_samples[:, :, 0], np.broadcast_to(expected, (chains, keep))
    )
    assert np.ptp(k.posterior_samples) > 0  # the chain moves
    # the live value and the kernel state are the last recorded draw
    np.testing.assert_array_equal(np.asarray(k.module), k.posterior_samples[0, -1])
    (state_pos,) = jax.tree.leaves(crux.solver.state.blocks[0].kernel)
    np.testing.assert_array_equal(np.asarray(state_pos), k.posterior_samples[:, -1])


@pytest.mark.slow
def test_nuts_chain_in_a_substep_is_the_sampled_chain():
    """PITFALLS 7 with NUTS: draws vary, consecutive draws differ where NUTS moved, and the
    last draw of every chain is the kernel's final position (keep aligned with the steps)."""
    k = jno.np.parameter((1,), name="k", init=0.0)
    k.bayesian(
        blackjax.nuts,
        step_size=0.05,
        adapt=False,
        warmup=20,
        keep=60,
        num_chains=3,
        init_jitter=0.5,
    )
    other = jno.np.parameter((1,), name="other", init=0.0).optimizer(optax.adam(1e-2))
    phys = (k - 2.0).gaussian(std=0.1).name("phys")
    anchor = ((other - 1.0) ** 2).sum.name("anchor")
    crux = jno.core([phys, anchor])
    crux.solve(80, substeps=[([anchor], [other]), ([phys], [k])], print_rate=30)
    chain = k.posterior_samples[..., 0]  # (3, 60)
    assert chain.shape == (3, 60)
    assert len(np.unique(chain)) > 150  # the chains move (NUTS always does on a Gaussian)
    assert not np.allclose(chain[0], chain[1])
    np.testing.assert_array_equal(np.asarray(k.module), k.posterior_samples[0, -1])
    (state_pos,) = jax.tree.leaves(crux.solver.state.blocks[0].kernel.position)
    np.testing.assert_array_equal(np.asarray(state_pos), k.posterior_samples[:, -1])
    assert 0.5 < float(other.module[0]) < 1.5  # the optax model trained in substep 0
    assert crux.solver.grad_evals > 3 * 80


# ----------------------------------------------------------------------------- errors


def _two_params():
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    ca = (a - 1.0).gaussian(std=1.0).name("ca")
    cb = ((b - 1.0) ** 2).sum.name("cb")
    return a, b, ca, cb


def test_adapt_true_with_substeps_is_an_error():
    a, b, ca, cb = _two_params()
    a.bayesian(blackjax.nuts, warmup=10, keep=10)
    crux = jno.core([ca, cb])
    with pytest.raises(ValueError, match="adapt=False"):
        crux.solve(20, substeps=[([cb], [b]), ([ca], [a])])


def test_bad_substep_specifications_are_errors():
    a, b, ca, cb = _two_params()
    crux = jno.core([ca, cb])
    with pytest.raises(ValueError, match="appears in substeps"):
        crux.solve(5, substeps=[([ca], [a]), ([cb], [a, b])])
    with pytest.raises(ValueError, match="not one of the crux's constraints"):
        crux.solve(5, substeps=[(["nope"], [a])])
    with pytest.raises(TypeError, match="jno models"):
        crux.solve(5, substeps=[([ca], ["a"])])


def test_jointly_sampled_models_must_share_a_substep():
    a, b, ca, cb = _two_params()
    for p in (a, b):
        p.bayesian(blackjax.nuts, step_size=0.1, adapt=False, warmup=0, keep=5)
    crux = jno.core([ca, cb])
    with pytest.raises(ValueError, match="sampled jointly"):
        crux.solve(5, substeps=[([ca], [a]), ([cb], [b])])
