"""``net.lora(rank, alpha).bayesian(...)``: the sampler moves the LoRA adapters only."""

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jno
from jno.nn import LoRALinear, lora_mask, merge_lora


def _is_lora(node):
    return isinstance(node, LoRALinear)


class RecordingPrior:
    def __init__(self):
        self.trees = []

    def __call__(self, p):
        self.trees.append(p)
        return sum(-0.5 * jnp.sum(v**2) for v in jax.tree.leaves(p))


@pytest.fixture(scope="module")
def lora_run():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.05)
    base = jno.nn.mlp(1, 1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0))
    net = jno.nn.wrap(base, name="u")
    prior = RecordingPrior()
    net.lora(rank=2, alpha=1.0).bayesian(
        blackjax.sgld, step_size=1e-4, warmup=200, keep=100, thin=2, num_chains=2, prior=prior
    )
    adapted = net.module  # the LoRA module at the start of the solve
    crux = jno.core([(net(x) - target).gaussian(std=0.05)], seed=0)
    crux.solve()
    return net, base, adapted, prior, crux, x


def test_lora_replaces_every_linear(lora_run):
    net, base, adapted, *_ = lora_run
    loras = [n for n in jax.tree.leaves(adapted, is_leaf=_is_lora) if _is_lora(n)]
    assert len(loras) == 3  # two hidden layers and the output layer
    assert all(lo.rank == 2 and lo.alpha == 1.0 for lo in loras)
    # B = 0 at start: the adapted network computes the base network
    xs = jnp.linspace(0, 1, 7)[:, None]
    np.testing.assert_allclose(jax.vmap(adapted)(xs), jax.vmap(base)(xs), rtol=1e-6, atol=1e-6)


def test_only_adapters_vary_base_constant(lora_run):
    net, base, adapted, *_ = lora_run
    s = net.posterior_samples
    mask = lora_mask(adapted)
    flat_s, _ = jax.tree_util.tree_flatten_with_path(s)
    flat_m = jax.tree.leaves(mask)
    flat_init = jax.tree.leaves(adapted)
    n_adapter = n_base = 0
    for (path, draws), is_adapter, start in zip(flat_s, flat_m, flat_init):
        draws = np.asarray(draws)
        name = jax.tree_util.keystr(path)
        assert draws.shape[:2] == (2, 100), name
        if is_adapter:
            n_adapter += 1
            # every adapter leaf moves along each chain
            assert np.all(np.ptp(draws, axis=1).reshape(2, -1).max(axis=1) > 0), name
        else:
            n_base += 1
            # base weights and biases: exactly their start value, every chain and draw
            np.testing.assert_array_equal(draws, np.broadcast_to(start, draws.shape), err_msg=name)
    assert (n_adapter, n_base) == (6, 6)
    # the base weights are the wrapped network's own
    np.testing.assert_array_equal(
        np.asarray(s.output_layer.weight[0, 0]), np.asarray(base.output_layer.weight)
    )


def test_prior_sees_only_adapters(lora_run):
    _, _, adapted, prior, *_ = lora_run
    expected = jax.tree.structure(eqx.filter(adapted, lora_mask(adapted)))
    assert prior.trees
    for tree in prior.trees:
        assert jax.tree.structure(tree) == expected
        loras = [n for n in jax.tree.leaves(tree, is_leaf=_is_lora) if _is_lora(n)]
        assert all(lo.weight is None and lo.bias is None for lo in loras)


def test_eval_uses_sampled_adapters(lora_run):
    """``crux.eval`` of ``net(x)`` equals the merged network of each draw, built by hand."""
    net, _, _, _, crux, x = lora_run
    out = crux.eval([net(x)])
    assert out.shape == (2, 100, 21, 1)
    xs = jnp.linspace(0, 1, 21)[:, None]
    s = net.posterior_samples
    for k, n in [(0, 0), (1, 57), (0, 99)]:
        draw = jax.tree.map(lambda a: a[k, n] if eqx.is_array(a) else a, s)
        manual = jax.vmap(merge_lora(draw))(xs)
        np.testing.assert_allclose(out[k, n], manual, rtol=1e-5, atol=1e-5)
    # the draws differ (at x = 0 every draw is 0: zero biases, tanh(0) = 0, no bias adapter)
    assert np.std(out[:, :, 1:], axis=(0, 1)).min() > 0
    np.testing.assert_array_equal(out[:, :, 0], 0.0)


def test_lora_then_optimizer_trains_adapters_only():
    import optax

    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    net.lora(rank=2).optimizer(optax.adam(1e-2))
    start = net.module
    history = jno.core([(net(x) - jno.np.sin(x)).mse]).solve(100)
    assert history.total_loss[-1] < history.total_loss[0]
    np.testing.assert_array_equal(net.module.layers[0].weight, start.layers[0].weight)
    assert np.abs(np.asarray(net.module.layers[0].B)).max() > 0


def test_lora_sgld_chains_equal_hand_written_blackjax():
    """The sampled adapters are those of blackjax.sgld run by hand on
    log p(adapters) = -loss(merge(adapters, base)) + log prior(adapters), with each step's
    key from the solve's step stream: the base weights never enter the position."""
    from jno.lower.evaluate import model_key
    from jno.solve import streams as st
    from jno.solve.blocks.base import drop_masked, take_masked

    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    target = jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.05)
    base = jno.nn.mlp(1, 1, hidden_dims=6, num_layers=2, key=jax.random.PRNGKey(3))
    net = jno.nn.wrap(base, name="u_hand")

    def prior(p):
        return sum(-0.5 * jnp.sum(v**2) for v in jax.tree.leaves(p))

    net.lora(rank=2, alpha=1.0).bayesian(
        blackjax.sgld, step_size=1e-4, warmup=0, keep=30, num_chains=2, prior=prior,
        init_jitter=0.0,
    )
    start = net.module
    crux = jno.core([(net(x) - target).gaussian(std=0.05)], seed=3)
    params = eqx.filter(start, eqx.is_inexact_array)
    mask = lora_mask(start)
    held = drop_masked(params, mask)
    # the adapters start at the LoRA initialisation: A random, B = 0
    adapters = take_masked(params, mask)

    def logdensity(pos):
        loss = crux.program.losses({model_key(net): eqx.combine(pos, held)})
        return -jnp.sum(loss) + prior(pos)

    sgld = blackjax.sgld(lambda p, _: jax.grad(logdensity)(p))

    @jax.jit
    def run(pos0, chain):
        def body(pos, i):
            key = st.step_keys(crux.streams, i, 0, 2)[chain]
            new = sgld.step(key, pos, 0, 1e-4, 1.0)
            return new, new

        return jax.lax.scan(body, pos0, jnp.arange(30))[1]

    want = [run(adapters, k) for k in range(2)]
    crux.solve(30)
    got = take_masked(eqx.filter(net.posterior_samples, eqx.is_inexact_array), mask)
    for k in range(2):
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want[k])):
            np.testing.assert_allclose(np.asarray(g)[k], np.asarray(w), rtol=1e-4, atol=1e-6)
    moved = max(float(np.ptp(np.asarray(g))) for g in jax.tree.leaves(got))
    assert moved > 1e-3  # the chains moved: the comparison is not of two constants
