"""Masked Bayesian groups: ``model.mask(M).bayesian(...)`` / ``.vi(...)`` (patterns A, B, D, E).

The statistical checks use a linear-Gaussian model written as a small equinox module with
three scalar leaves, ``u(x) = a·sin(πx) + b·sin(2πx) + c·(x - 1/2)``, a calibrated Gaussian
likelihood (σ = 0.1) and an ``N(0, 10²)`` prior, so every conditional and joint posterior is
known in closed form. On the 51-point grid ``a`` is uncorrelated with the others and ``b`` and
``c`` have posterior correlation 0.76, so Gibbs over the groups ``{a, b}`` and ``{c}`` is a real
test of the joint.
"""

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno

from stats import assert_corr_within, assert_gaussian_within

SIGMA = 0.1
PRIOR_SIGMA = 10.0
TRUE = (1.0, 0.5, -0.8)
INIT = (0.0, 0.0, 0.3)  # c starts far from its posterior: conditioning on it is visible


class Features(eqx.Module):
    a: jax.Array
    b: jax.Array
    c: jax.Array

    def __call__(self, x):
        return self.a * jnp.sin(jnp.pi * x) + self.b * jnp.sin(2 * jnp.pi * x) + self.c * (x - 0.5)


def features(xs):
    return np.stack([np.sin(np.pi * xs), np.sin(2 * np.pi * xs), xs - 0.5], axis=1)


def make_net(name="lin"):
    return jno.nn.wrap(Features(*(jnp.array([v], jnp.float32) for v in INIT)), name=name)


def problem(net, seed=1):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    target = (
        TRUE[0] * jno.np.sin(jno.np.pi * x)
        + TRUE[1] * jno.np.sin(2 * jno.np.pi * x)
        + TRUE[2] * (x - 0.5)
        + jno.noise.gaussian(std=SIGMA)
    )
    crux = jno.core([(net(x) - target).gaussian(std=SIGMA)], seed=seed)
    xs = dom.points("interior")[:, 0].astype(np.float64)
    data = np.asarray(crux.eval([target]), np.float64)[:, 0]
    return crux, x, xs, data


def joint_posterior(xs, data, fixed=None):
    """Mean and covariance of the free coefficients; ``fixed = {index: value}`` conditions."""
    phi = features(xs)
    fixed = fixed or {}
    free = [i for i in range(3) if i not in fixed]
    resid = data - sum(phi[:, i] * v for i, v in fixed.items())
    pf = phi[:, free]
    prec = pf.T @ pf / SIGMA**2 + np.eye(len(free)) / PRIOR_SIGMA**2
    cov = np.linalg.inv(prec)
    return cov @ pf.T @ resid / SIGMA**2, cov


def mask(**on):
    return Features(*(bool(on.get(k, False)) for k in "abc"))


def leaf(samples, name):
    return np.asarray(getattr(samples, name))[..., 0]  # (K, N)


def check_gaussian(draws, mean, std, what=""):
    """Mean at 4 MCSE, sd at 5 MCSE_sd (tests/stats.py)."""
    assert_gaussian_within(draws, mean, std, what=what)


# --------------------------------------------------------------------------- pattern A


class RecordingPrior:
    """``N(0, 10²)`` on whatever it receives; records the pytree structure and leaf shapes."""

    def __init__(self):
        self.structures, self.shapes = [], []

    def __call__(self, p):
        self.structures.append(jax.tree.structure(p))
        self.shapes.append([leaf.shape for leaf in jax.tree.leaves(p)])
        return sum(-0.5 * jnp.sum(v**2) / PRIOR_SIGMA**2 for v in jax.tree.leaves(p))


@pytest.fixture(scope="module")
def pattern_a():
    net = make_net()
    init = net.module
    prior = RecordingPrior()
    net.mask(mask(a=True, b=True)).bayesian(
        blackjax.nuts, prior=prior, warmup=300, keep=1000, num_chains=2, init_jitter=0.1
    )
    crux, x, xs, data = problem(net)
    crux.solve()
    return net, init, prior, crux, xs, data, x


def test_pattern_a_unmasked_leaf_constant_masked_leaves_vary(pattern_a):
    net, init, _, crux, xs, _, x = pattern_a
    s = net.posterior_samples
    for name in "abc":
        assert getattr(s, name).shape == (2, 1000, 1)
    c = leaf(s, "c")
    assert np.all(c == np.float32(INIT[2]))  # exactly the init, every chain, every draw
    assert float(net.module.c[0]) == np.float32(INIT[2])
    for name in "ab":
        v = leaf(s, name)
        assert np.all(np.ptp(v, axis=1) > 0)
        assert len(np.unique(v)) > 500
    # crux.eval pushes every draw through the module: u = Φ·(a, b, c)
    u = crux.eval([net(x)])
    assert u.shape == (2, 1000, 51, 1)
    coef = np.stack([leaf(s, n) for n in "abc"], axis=-1)  # (2, 1000, 3)
    np.testing.assert_allclose(u[..., 0], coef @ features(xs).T, atol=1e-5)


def test_pattern_a_prior_sees_only_masked_subset(pattern_a):
    net, init, prior, *_ = pattern_a
    expected = jax.tree.structure(eqx.filter(init, mask(a=True, b=True)))  # c -> None
    assert prior.structures, "the prior was never called"
    assert all(s == expected for s in prior.structures), set(map(str, prior.structures))
    assert all(shapes == [(1,), (1,)] for shapes in prior.shapes)


def test_pattern_a_adaptation_sees_only_masked_subset(pattern_a):
    net, _, _, crux, xs, data, _ = pattern_a
    tuned = crux.solver.state.blocks[0].tuned
    imm = np.asarray(tuned["inverse_mass_matrix"])
    assert imm.shape == (2, 2)  # K chains x 2 masked scalars (of 3)
    # window adaptation estimates the conditional posterior variances of a and b given c
    _, cov = joint_posterior(xs, data, fixed={2: INIT[2]})
    ratio = imm / np.diag(cov)[None]
    assert np.all((ratio > 0.5) & (ratio < 2.0)), ratio


def test_pattern_a_matches_exact_conditional(pattern_a):
    net, _, _, _, xs, data, _ = pattern_a
    mean, cov = joint_posterior(xs, data, fixed={2: INIT[2]})
    for i, name in enumerate("ab"):
        check_gaussian(leaf(net.posterior_samples, name), mean[i], np.sqrt(cov[i, i]), name)
        assert float(jno.bayesian.rhat(leaf(net.posterior_samples, name))) < 1.01


def test_pattern_a_vi_masked():
    """``.mask(M).vi(...)``: VI on the masked leaves only recovers the exact conditional."""
    net = make_net()
    prior = RecordingPrior()
    net.mask(mask(a=True, b=True)).vi(
        blackjax.meanfield_vi,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-2, 2000, alpha=0.01)),
        num_samples=16,
        posterior_draws=20000,
        prior=prior,
    )
    crux, _, xs, data = problem(net)
    crux.solve(2000, print_rate=500)
    s = net.posterior_samples
    assert np.all(leaf(s, "c") == np.float32(INIT[2]))
    assert all(shapes == [(1,), (1,)] for shapes in prior.shapes)
    mean, cov = joint_posterior(xs, data, fixed={2: INIT[2]})
    for i, name in enumerate("ab"):
        # a and b are uncorrelated: mean-field is exact; 20000 i.i.d. draws of q
        check_gaussian(leaf(s, name), mean[i], np.sqrt(cov[i, i]), what=name)


class RecordingInitializer:
    """A log-density initializer that records what it is given and starts the chain at
    ``start`` (a dict ``{"a": value, "b": value}``)."""

    requires_logdensity = True

    def __init__(self, start):
        self.start = start
        self.position = None
        self.logdensity = None

    def __call__(self, rng_key, logdensity_fn, position, num_chains):
        self.position = position
        self.logdensity = logdensity_fn
        new = jax.tree.map(
            lambda m: eqx.tree_at(
                lambda f: (f.a, f.b),
                m,
                tuple(jnp.full_like(m.a, self.start[k]) for k in "ab"),
            ),
            position,
            is_leaf=lambda v: isinstance(v, Features),
        )
        return new, {}


def test_pattern_a_initializer_sees_only_masked_subset():
    net = make_net()
    _, _, xs, data = problem(make_net("probe"))  # the data: same seed, same noise draw
    mean, cov = joint_posterior(xs, data, fixed={2: INIT[2]})
    init = RecordingInitializer({"a": mean[0], "b": mean[1]})
    net.initialize(init)
    net.mask(mask(a=True, b=True)).bayesian(
        blackjax.mala, step_size=1e-5, warmup=0, keep=20, prior=jno.bayesian.priors.gaussian(10.0)
    )
    crux, _, _, _ = problem(net)
    crux.solve(20)
    # the initializer's position is the masked subset: a and b, c absent
    (module,) = init.position.values()
    assert jax.tree.structure(module) == jax.tree.structure(
        eqx.filter(make_net().module, mask(a=True, b=True))
    )
    assert [v.shape for v in jax.tree.leaves(init.position)] == [(1,), (1,)]
    # its log-density is the conditional posterior of (a, b) given c = INIT[2], up to a constant
    phi = features(xs)

    def exact_logp(a, b):
        r = data - a * phi[:, 0] - b * phi[:, 1] - INIT[2] * phi[:, 2]
        return -0.5 * np.sum(r**2) / SIGMA**2 - 0.5 * (a**2 + b**2) / PRIOR_SIGMA**2

    def at(a, b):
        return jax.tree.map(
            lambda m: eqx.tree_at(lambda f: (f.a, f.b), m, (jnp.array([a]), jnp.array([b]))),
            init.position,
            is_leaf=lambda v: isinstance(v, Features),
        )

    points = [(0.9, 0.4), (1.1, 0.7), (0.5, -0.2)]
    got = [float(init.logdensity(at(*p))) for p in points]
    want = [exact_logp(*p) for p in points]
    np.testing.assert_allclose(np.diff(got), np.diff(want), rtol=1e-4)
    # the chain starts where the initializer put it; c never moves
    s = net.posterior_samples
    assert s.a.shape == (20, 1)  # num_chains unset: (N, *param)
    for i, name in enumerate("ab"):
        assert np.all(np.abs(np.asarray(getattr(s, name)) - mean[i]) < 5 * np.sqrt(cov[i, i]))
    assert np.all(np.asarray(s.c) == np.float32(INIT[2]))


# --------------------------------------------------------------------------- pattern D


def _pattern_d(**kw):
    net = make_net()
    prior = jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA)
    net.mask(mask(a=True, b=True)).bayesian(blackjax.nuts, prior=prior, **kw)
    net.mask(mask(c=True)).bayesian(blackjax.nuts, prior=prior, **kw)
    crux, _, xs, data = problem(net)
    blocks = crux.solver.plan.blocks
    assert [b.family for b in blocks] == ["full", "full"]  # two Gibbs blocks, one per group
    crux.solve()
    return net, crux, xs, data


def _check_exact_joint(net, xs, data, chains, keep):
    mean, cov = joint_posterior(xs, data)
    s = net.posterior_samples
    for i, name in enumerate("abc"):
        draws = leaf(s, name)
        assert draws.shape == (chains, keep)
        check_gaussian(draws, mean[i], np.sqrt(cov[i, i]), name)
        assert float(jno.bayesian.rhat(draws)) < 1.01
    # the groups are coupled (corr(b, c) = 0.76): the joint, not two conditionals
    assert_corr_within(leaf(s, "b"), leaf(s, "c"), cov[1, 2] / np.sqrt(cov[1, 1] * cov[2, 2]))


@pytest.mark.slow  # ~25 s: in CI's slow selection
def test_pattern_d_adapted_gibbs_matches_exact_joint():
    """NUTS with window adaptation in both groups: each group adapts on its own leaves, then
    Gibbs over the groups samples the exact joint from the first kept draw."""
    net, crux, xs, data = _pattern_d(warmup=300, keep=1000, num_chains=4, init_jitter=0.1)
    sizes = [
        np.asarray(blk.tuned["inverse_mass_matrix"]).shape for blk in crux.solver.state.blocks
    ]
    assert sizes == [(4, 2), (4, 1)]  # K chains x (2 scalars in {a, b}, 1 in {c})
    _check_exact_joint(net, xs, data, chains=4, keep=1000)


@pytest.mark.slow
def test_pattern_d_fixed_step_gibbs_matches_exact_joint():
    """Fixed-step NUTS in both groups: every warm-up step is a Gibbs sweep."""
    net, _, xs, data = _pattern_d(
        warmup=300, keep=1000, num_chains=4, init_jitter=0.1, adapt=False, step_size=0.02
    )
    _check_exact_joint(net, xs, data, chains=4, keep=1000)


@pytest.mark.slow
def test_gibbs_blocks_are_stationary_after_warmup():
    """Two NUTS blocks (plain parameters, different kernel settings) on coupled coefficients:
    after ``warmup`` steps the first kept draws must already be posterior draws."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    f2, f3 = jno.np.sin(2 * jno.np.pi * x), x - 0.5
    target = TRUE[1] * f2 + TRUE[2] * f3 + jno.noise.gaussian(std=SIGMA)
    b = jno.np.parameter((1,), name="b", init=INIT[1])
    c = jno.np.parameter((1,), name="c", init=INIT[2])
    prior = jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA)
    b.bayesian(blackjax.nuts, warmup=200, keep=20, num_chains=1, prior=prior)
    c.bayesian(blackjax.nuts, warmup=200, keep=20, num_chains=1, prior=prior, max_num_doublings=9)
    crux = jno.core([(b * f2 + c * f3 - target).gaussian(std=SIGMA)], seed=1)
    assert len(crux.solver.plan.blocks) == 2
    crux.solve()
    xs = dom.points("interior")[:, 0].astype(np.float64)
    data = np.asarray(crux.eval([target]), np.float64)[:, 0]
    mean, cov = joint_posterior(xs, data, fixed={0: 0.0})  # no sin(πx) term: a = 0
    first = np.asarray(c.posterior_samples)[0, :5, 0]
    # stationary draws: the mean of 5 draws is within 1 posterior std with high probability
    # (when the blocks were adapted one by one and no Gibbs sweep followed, the chain started
    # near the conditional of c given b's adapted start, 6 stds away)
    assert abs(first.mean() - mean[1]) < 3 * np.sqrt(cov[1, 1]), (first, mean[1])


# --------------------------------------------------------------------------- pattern B


def _head_mask(module):
    false = jax.tree.map(lambda _: False, module)
    true = jax.tree.map(lambda _: True, module.output_layer)
    return eqx.tree_at(lambda m: m.output_layer, false, replace=true)


def test_pattern_b_body_trained_head_sampled():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.05)
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0)))
    init = net.module
    net.optimizer(optax.adam(1e-2))
    net.mask(_head_mask(net.module)).bayesian(
        blackjax.sgld, step_size=1e-5, warmup=300, keep=100, thin=2, num_chains=2
    )
    crux = jno.core([(net(x) - target).gaussian(std=0.05)])
    history = crux.solve()
    assert len(crux.solver.plan.optax_models) == 1
    s = net.posterior_samples
    assert s.output_layer.weight.shape == (2, 100, 1, 8)
    assert s.layers[0].weight.shape == (2, 100, 8, 1)
    # head: a chain per K that moves; body: one value (the trained body) along the chain
    assert np.all(np.ptp(np.asarray(s.output_layer.weight), axis=1) > 0)
    for body_leaf in jax.tree.leaves(eqx.filter(s.layers, eqx.is_inexact_array)):
        assert np.ptp(np.asarray(body_leaf), axis=(0, 1)).max() == 0
    # the body was trained by optax: it moved from its init and the fit improved
    assert not np.allclose(np.asarray(net.module.layers[0].weight), init.layers[0].weight)
    assert history.total_loss[-1] < history.total_loss[0]
    out = crux.eval([net(x)])
    assert out.shape == (2, 100, 21, 1)


def marginal_ml_c(xs, data):
    """argmax_c p(y | c) with (a, b) integrated out under their N(0, 10²) prior: the fixed
    point of stochastic EM (optax on c with the loss averaged over head draws)."""
    phi = features(xs)
    head = phi[:, :2]
    cov_y = SIGMA**2 * np.eye(len(xs)) + PRIOR_SIGMA**2 * head @ head.T
    w = np.linalg.solve(cov_y, phi[:, 2])
    return float(w @ data / (w @ phi[:, 2]))


def test_pattern_b_k4_body_is_marginal_ml_and_heads_the_exact_conditional():
    """Pattern B with K = 4 on the linear model: head {a, b} sampled by MALA, body c trained by
    optax on the loss averaged over the 4 head chains (stochastic EM). Truths: c converges to
    the marginal maximum likelihood c* (closed form above); the heads are the exact conditional
    of (a, b) given the final c (mean at 4 MCSE, sd at 5 MCSE_sd). Allowance on c: 10 % of its
    posterior sd, for the optimiser (cosine-decayed Adam ending at lr 1e-4, ~50 final steps)."""
    net = make_net()
    steps = 1000 + 2000
    net.optimizer(optax.adam(optax.cosine_decay_schedule(1e-2, steps, alpha=0.01)))
    net.mask(mask(a=True, b=True)).bayesian(
        blackjax.mala, step_size=2e-4, adapt=False, warmup=1000, keep=2000, num_chains=4,
        init_jitter=0.01, prior=jno.bayesian.priors.gaussian(sigma=PRIOR_SIGMA),
    )
    crux, _, xs, data = problem(net)
    assert len(crux.solver.plan.optax_models) == 1
    crux.solve()
    c_star = marginal_ml_c(xs, data)
    _, cov_joint = joint_posterior(xs, data)
    c_final = float(net.module.c[0])
    assert abs(c_final - c_star) < 0.1 * np.sqrt(cov_joint[2, 2]), (c_final, c_star)
    s = net.posterior_samples
    assert np.all(leaf(s, "c") == np.float32(c_final))  # every head draw with the final body
    mean, cov = joint_posterior(xs, data, fixed={2: c_final})
    for i, name in enumerate("ab"):
        draws = leaf(s, name)
        assert draws.shape == (4, 2000)
        check_gaussian(draws, mean[i], np.sqrt(cov[i, i]), name)


# --------------------------------------------------------------------------- pattern E


@pytest.mark.slow
def test_pattern_e_vi_and_nuts_groups_match_the_exact_posterior():
    """VI on {a} and NUTS on {b, c}, one model. a is uncorrelated with (b, c) on this grid
    (P_ab = P_ac = 0), so the VI block's target does not depend on the chain and the chain's
    does not depend on q: q(a) must be a's exact marginal and the chain the exact joint of
    (b, c), correlation 0.76 included. 2000 i.i.d. VI draws and 2000 NUTS draws: means at 4
    MCSE, sds at 5 MCSE_sd, the correlation at 5 MCSE. (With VI on a coupled group, q's final
    mean follows the chain's recent values: a further random error these draws cannot see.)"""
    net = make_net()
    prior = jno.bayesian.priors.gaussian(PRIOR_SIGMA)
    steps = 500 + 2000
    net.mask(mask(a=True)).vi(
        blackjax.meanfield_vi,
        optimizer=optax.adam(optax.cosine_decay_schedule(2e-2, steps, alpha=0.01)),
        num_samples=16, posterior_draws=2000, prior=prior,
    )
    net.mask(mask(b=True, c=True)).bayesian(blackjax.nuts, warmup=500, keep=2000, prior=prior)
    crux, _, xs, data = problem(net)
    crux.solve()
    mean, cov = joint_posterior(xs, data)
    assert abs(cov[0, 1]) < 1e-6 * cov[0, 0] and abs(cov[0, 2]) < 1e-6 * cov[0, 0]
    s = net.posterior_samples
    for i, name in enumerate("abc"):
        draws = leaf(s, name)
        assert draws.shape == (1, 2000)
        check_gaussian(draws, mean[i], np.sqrt(cov[i, i]), name)
    assert_corr_within(leaf(s, "b"), leaf(s, "c"), cov[1, 2] / np.sqrt(cov[1, 1] * cov[2, 2]))


def test_pattern_e_vi_and_mcmc_groups_splice():
    net = make_net()
    net.mask(mask(a=True, b=True)).vi(
        blackjax.meanfield_vi, optimizer=optax.adam(1e-2), num_samples=8, posterior_draws=200
    )
    net.mask(mask(c=True)).bayesian(blackjax.mala, step_size=1e-4, warmup=200, keep=200)
    crux, x, _, _ = problem(net)
    crux.solve()  # the MCMC group's warmup + keep*thin
    assert len(crux.history) == 400
    s = net.posterior_samples
    for name in "abc":
        assert getattr(s, name).shape == (1, 200, 1)  # VI forces the (1, N, ...) layout
        assert np.ptp(leaf(s, name)) > 0  # every group's leaves vary
    assert crux.eval([net(x)]).shape == (1, 200, 51, 1)
    assert set(crux.history.elbo) == {"'lin'"}


def test_pattern_e_draws_must_equal_keep():
    net = make_net()
    net.mask(mask(a=True, b=True)).vi(
        blackjax.meanfield_vi, optimizer=optax.adam(1e-2), num_samples=8, posterior_draws=150
    )
    net.mask(mask(c=True)).bayesian(blackjax.mala, step_size=1e-4, warmup=200, keep=200)
    with pytest.raises(
        ValueError, match="posterior_draws=150 must equal the MCMC group's keep=200"
    ):
        problem(net)


# --------------------------------------------------------------------------- errors


def test_overlapping_masks_raise():
    net = make_net()
    net.mask(mask(a=True, b=True)).bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="overlap"):
        net.mask(mask(b=True, c=True)).bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="overlap"):
        net.mask(mask(a=True)).vi(
            blackjax.meanfield_vi, optimizer=optax.adam(1e-2), posterior_draws=10
        )


def test_mask_structure_mismatch_raises():
    net = make_net()
    with pytest.raises(ValueError, match="structure does not match"):
        net.mask({"a": True, "b": False, "c": False})
    mlp = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    with pytest.raises(ValueError, match="structure does not match"):
        mlp.mask(jax.tree.map(lambda _: True, mlp.module.output_layer))  # a sub-tree only


def test_bad_mask_values_raise():
    net = make_net()
    with pytest.raises(TypeError, match="booleans"):
        net.mask(Features(1.0, 0.0, 0.0))
    with pytest.raises(ValueError, match="selects no leaf"):
        net.mask(mask())
    mlp = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=2, key=jax.random.PRNGKey(0)))
    partial = jax.tree.map(lambda v: np.arange(np.size(v)).reshape(np.shape(v)) == 0, mlp.module)
    with pytest.raises(ValueError, match="element-wise"):
        mlp.mask(partial)
    with pytest.raises(ValueError, match="optimizer"):
        net.mask(mask(a=True)).optimizer(optax.adam(1e-3))


def test_global_bayesian_mixed_with_masks_raises():
    net = make_net()
    net.bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="masks for every group or none"):
        net.mask(mask(a=True)).bayesian(blackjax.nuts, warmup=10, keep=10)
    other = make_net("other")
    other.mask(mask(a=True)).bayesian(blackjax.nuts, warmup=10, keep=10)
    with pytest.raises(ValueError, match="masks for every group or none"):
        other.bayesian(blackjax.nuts, warmup=10, keep=10)
