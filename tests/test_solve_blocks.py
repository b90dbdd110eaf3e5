"""The solve layer against hand-written programs: optax and NUTS draw for draw, MCLMC (the
family added as one file) against a closed form, invalid starts, and configurators called
after ``jno.core``."""

import blackjax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.solve import streams as st

from stats import assert_gaussian_within, assert_mean_within

SIGMA = 0.1


def _linear_problem(mesh=0.05):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    target = (
        3.14 * jno.np.sin(jno.np.pi * x)
        - 2.71 * jno.np.cos(jno.np.pi * x)
        + jno.noise.gaussian(std=SIGMA)
    )
    return dom, x, target


def _exact(dom, data, prior_sigma=10.0):
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + np.eye(2) / prior_sigma**2)
    return cov @ phi.T @ np.asarray(data, np.float64) / SIGMA**2, np.sqrt(np.diag(cov))


def test_optax_solve_equals_hand_written_adam():
    """An optax-only PINN: jno's chunks against a hand-written adam loop on the same loss."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(3)))
    pde = jno.np.laplacian(net(x), [x]) + jno.np.pi**2 * jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse, 10 * net(xb).mse])
    program = crux.program
    params0 = program.initial_params()
    (key,) = params0
    tx = optax.adam(1e-3)

    def hand(p, n):
        def body(carry, _):
            p, o = carry
            losses, g = jax.value_and_grad(lambda q: jnp.sum(program.losses({key: q})))(p), None
            value, g = losses
            updates, o = tx.update(g, o, p)
            return (optax.apply_updates(p, updates), o), value

        return jax.lax.scan(body, (p, tx.init(p)), None, length=n)

    (want, _), want_total = jax.jit(hand, static_argnums=1)(params0[key], 120)
    history = crux.solve(120, print_rate=50)
    got = jax.tree.leaves(net.params())
    for g, w in zip(got, jax.tree.leaves(want)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(history.total_loss, np.asarray(want_total), rtol=2e-5, atol=1e-6)


@pytest.mark.slow
def test_single_block_nuts_equals_hand_written_blackjax():
    """Two parameters sampled jointly by NUTS (one block, one chain): window adaptation with
    the block's adapt key, then one blackjax step per solve step with that step's key."""
    dom, x, target = _linear_problem()
    a = jno.np.parameter((1,), name="a", init=0.5)
    b = jno.np.parameter((1,), name="b", init=-0.5)
    for p in (a, b):
        p.bayesian(blackjax.nuts, warmup=200, keep=60)
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=SIGMA)], seed=5)
    program, streams = crux.program, crux.streams
    (block,) = crux.solver.plan.blocks
    keys = [m.key for m in block.members]
    mks = [m.model_key for m in block.members]
    prior = jno.bayesian.priors.gaussian(sigma=10.0)

    def logdensity_on(inputs):
        def logdensity(pos):
            params = {mk: pos[k] for mk, k in zip(mks, keys)}
            return -jnp.sum(program.losses(params, inputs)) + sum(prior(pos[k]) for k in keys)

        return logdensity

    # The data enter both programs as arguments (jno's solve state holds them), so XLA
    # compiles the same arithmetic: NUTS trajectories amplify any round-off difference.
    @jax.jit
    def adapt(key, start, inputs):
        wa = blackjax.window_adaptation(
            blackjax.nuts,
            logdensity_on(inputs),
            initial_step_size=1.0,
            initial_inverse_mass_matrix=jnp.ones(2),
        )
        return wa.run(key, start, num_steps=200)

    start = {keys[0]: jnp.array([0.5]), keys[1]: jnp.array([-0.5])}
    (state, tuned), _ = adapt(st.adapt_keys(streams, 0, 1)[0], start, program.inputs)

    @jax.jit
    def sample(state, step_size, imm, inputs):
        kernel = blackjax.nuts(logdensity_on(inputs), step_size=step_size, inverse_mass_matrix=imm)

        def body(s, i):
            s, _ = kernel.step(st.step_keys(streams, i, 0, 1)[0], s)
            return s, s.position

        return jax.lax.scan(body, state, jnp.arange(200, 260))[1]

    want = sample(state, tuned["step_size"], tuned["inverse_mass_matrix"], program.inputs)
    crux.solve()
    got_tuned = crux.solver.state.blocks[0].tuned
    np.testing.assert_allclose(
        float(got_tuned["step_size"][0]), float(tuned["step_size"]), rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(a.posterior_samples), np.asarray(want[keys[0]]), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(b.posterior_samples), np.asarray(want[keys[1]]), rtol=1e-4, atol=1e-5
    )


@pytest.mark.slow
def test_mclmc_matches_the_closed_form_posterior():
    """blackjax.mclmc with its tuner, 4 chains, on the linear-Gaussian problem. MCLMC is
    unadjusted: at the tuner's energy-error variance 5e-4 per dimension its bias on a
    Gaussian is far below the MCSE of 8000 draws (Robnik et al. 2023, Fig. 3)."""
    dom, x, target = _linear_problem(mesh=0.02)
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    for p in (a, b):
        p.bayesian(blackjax.mclmc, warmup=1000, keep=2000, num_chains=4, init_jitter=0.5)
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=SIGMA)], seed=2)
    crux.solve()
    data = np.asarray(crux.eval([target]))[:, 0]
    mean, sd = _exact(dom, data)
    assert crux.solver.plan.blocks[0].family == "mclmc"
    assert set(a.posterior_diagnostics) >= {"energy_change", "nonfinite"}
    tuned = crux.solver.state.blocks[0].tuned
    assert np.all(np.asarray(tuned["L"]) > 0) and np.all(np.asarray(tuned["step_size"]) > 0)
    for i, p in enumerate((a, b)):
        assert_gaussian_within(np.asarray(p.posterior_samples)[..., 0], mean[i], sd[i])
    before = crux.solver.grad_evals
    crux.solve(100)  # sampling only: one integrator step per draw, per chain
    assert crux.solver.grad_evals - before == 4 * 100


def test_a_collapsed_tuner_is_a_warning():
    from types import SimpleNamespace

    from jno.solve.loop import _check_tuned

    blocks = [SimpleNamespace(label="'a'")]
    state = SimpleNamespace(blocks=[SimpleNamespace(tuned={"step_size": np.array([0.1, 0.0])})])
    with pytest.warns(UserWarning, match=r"step_size \[0.0\] in chain\(s\) \[1\]"):
        _check_tuned(SimpleNamespace(blocks=blocks, layout=SimpleNamespace(gather=np.asarray)), state)


def test_mclmc_without_tuning_needs_L_and_step_size():
    a = jno.np.parameter((1,), name="a")
    with pytest.raises(ValueError, match="needs L and step_size"):
        a.bayesian(blackjax.mclmc, adapt=False)


def test_unknown_kernel_argument_is_rejected_at_configuration():
    a = jno.np.parameter((1,), name="a")
    with pytest.raises(TypeError, match="does not accept `num_leapfrog`"):
        a.bayesian(blackjax.nuts, num_leapfrog=5)
    with pytest.raises(TypeError, match="does not accept `momentum`"):
        a.bayesian(blackjax.sgld, step_size=1e-3, momentum=0.9)


def test_start_where_the_log_density_is_nan_for_every_retry_is_an_error(caplog):
    dom, x, target = _linear_problem()
    a = jno.np.parameter((1,), name="a", init=-20.0)
    a.bayesian(blackjax.nuts, warmup=50, keep=50, num_chains=2)
    r = jno.np.sqrt(a) * jno.np.sin(jno.np.pi * x) - target  # NaN for a < 0: every retry
    crux = jno.core([r.gaussian(std=SIGMA)])
    with pytest.raises(ValueError, match=r"Model 'a'.*not finite.*constraint"):
        crux.solve()
    assert any("new start 10/10" in m for m in caplog.messages)


def test_invalid_start_recovered_for_a_chain_started_in_the_undefined_region():
    """log(a) at a = -0.2: NaN; a retry within ±2 lands at a > 0 and the chain samples the
    posterior of a·sin(πx) with a > 0 (the data's a = 3.14, far from the boundary)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 3.14 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=SIGMA)
    a = jno.np.parameter((1,), name="a", init=-0.2)
    a.bayesian(blackjax.nuts, warmup=300, keep=1000, num_chains=2)
    r = jno.np.exp(jno.np.log(a)) * jno.np.sin(jno.np.pi * x) - target
    crux = jno.core([r.gaussian(std=SIGMA)], seed=4)
    crux.solve()
    xs = dom.points("interior")[:, 0].astype(np.float64)
    data = np.asarray(crux.eval([target]), np.float64)[:, 0]
    phi = np.sin(np.pi * xs)
    prec = phi @ phi / SIGMA**2 + 1 / 100.0
    assert_gaussian_within(
        np.asarray(a.posterior_samples)[..., 0], phi @ data / SIGMA**2 / prec, 1 / np.sqrt(prec)
    )


def test_optimizer_set_after_a_solve_is_used_by_the_next():
    """``.optimizer(optax.sgd(0.0))`` after an Adam solve: the next solve holds the model."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    k = jno.np.parameter((1,), name="k", init=0.0)
    crux = jno.core([(k * x - 2.0 * x).mse])
    crux.solve(50)
    moved = np.asarray(k.module).copy()
    assert abs(float(moved[0])) > 1e-3
    k.optimizer(optax.sgd(0.0))
    crux.solve(50)
    np.testing.assert_array_equal(np.asarray(k.module), moved)
    k.optimizer(optax.sgd(0.5))
    crux.solve(200)
    np.testing.assert_allclose(np.asarray(k.module), [2.0], atol=1e-4)
    assert len(crux.history) == 300


def test_freeze_after_core_and_after_a_solve_is_honoured():
    """``.freeze()`` between ``jno.core`` and the first solve holds the model from the start;
    after a solve it holds it from then on. With k held, the other model's least-squares
    fit of c·x to 2x - k·x is c = 2 - k (the first constraint pulls a trained k to 1)."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    k = jno.np.parameter((1,), name="k", init=0.5)
    c = jno.np.parameter((1,), name="c", init=0.0).optimizer(optax.sgd(0.5))
    crux = jno.core([(k * x - x).mse, (k * x + c * x - 2.0 * x).mse])
    k.freeze()
    crux.solve(300)
    np.testing.assert_array_equal(np.asarray(k.module), [0.5])
    np.testing.assert_allclose(np.asarray(c.module), [1.5], atol=1e-3)
    k.optimizer(optax.adam(1e-2))
    crux.solve(50)
    moved = np.asarray(k.module).copy()
    assert abs(float(moved[0]) - 0.5) > 1e-3
    k.freeze()
    crux.solve(300)
    np.testing.assert_array_equal(np.asarray(k.module), moved)
    np.testing.assert_allclose(np.asarray(c.module), 2.0 - moved, atol=1e-3)


def test_lbfgs_after_adam_solves_a_least_squares_problem_exactly():
    """Adam then ``optax.lbfgs()`` (its zoom line search gets value, grad and value_fn): the
    least-squares fit of a cubic to sin(πx) reaches the normal-equation solution."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    c = jno.np.parameter((4,), name="c", init=0.0)
    fit = c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3
    crux = jno.core([(fit - jno.np.sin(jno.np.pi * x)).mse])
    crux.solve(100)
    c.optimizer(optax.lbfgs())
    crux.solve(60)
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([xs**0, xs, xs**2, xs**3], axis=1)
    want = np.linalg.lstsq(phi, np.sin(np.pi * xs), rcond=None)[0]
    np.testing.assert_allclose(np.asarray(c.module), want, atol=2e-3)


def _cubic_fit(resample_every=None):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    c = jno.np.parameter((4,), name="c", init=0.0)
    fit = c[0] + c[1] * x + c[2] * x**2 + c[3] * x**3
    crux = jno.core([(fit - jno.np.sin(jno.np.pi * x)).mse])
    c.optimizer(optax.lbfgs())
    resample = None if resample_every is None else jno.sampling.rad(x, every=resample_every)
    return dom, c, crux, resample


def _lbfgs_by_hand(p, xs, steps):
    """optax's documented L-BFGS loop on the cubic fit at points ``xs`` from a fresh state:
    ``(final p, the loss before each step)``."""
    phi = jnp.stack([xs**0, xs, xs**2, xs**3], axis=1)

    def loss(q):
        return jnp.mean((phi @ q - jnp.sin(jnp.pi * xs)) ** 2)

    opt = optax.lbfgs()
    state, values = opt.init(p), []
    value_and_grad = optax.value_and_grad_from_state(loss)
    for _ in range(steps):
        value, grad = value_and_grad(p, state=state)
        values.append(float(value))
        upd, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        p = optax.apply_updates(p, upd)
    return p, values


@pytest.mark.slow
def test_lbfgs_steps_equal_optax_own_loop():
    """``.optimizer(optax.lbfgs())``: the iterates equal optax's documented L-BFGS loop
    (``optax.value_and_grad_from_state``) written by hand, and the history's loss is the loss
    before each step."""
    dom, c, crux, _ = _cubic_fit()
    crux.solve(6)
    p, values = _lbfgs_by_hand(jnp.zeros(4), jnp.asarray(dom.points("interior")[:, 0]), 6)
    np.testing.assert_allclose(np.asarray(c.module), np.asarray(p), rtol=1e-4, atol=1e-6)
    (recorded,) = crux.history.losses.values()
    np.testing.assert_allclose(np.asarray(recorded), values, rtol=1e-4)


@pytest.mark.slow
def test_lbfgs_reuses_the_line_search_gradient(monkeypatch):
    """A static objective: each L-BFGS step takes its gradient from the last line search, so a
    step differentiates one time fewer than a step that recomputes it (gradients counted by a
    custom-VJP tap on the losses), to the same iterates."""
    from jno.lower import program as program_mod
    from jno.solve.blocks import optax_group

    backward = [0]

    @jax.custom_vjp
    def tap(x):
        return x

    def tap_bwd(_, g):
        jax.debug.callback(lambda: backward.__setitem__(0, backward[0] + 1))
        return (g,)

    tap.defvjp(lambda x: (x, None), tap_bwd)
    losses = program_mod.Program.losses
    monkeypatch.setattr(program_mod.Program, "losses", lambda *a, **k: tap(losses(*a, **k)))

    def gradients(fresh: bool):
        with monkeypatch.context() as m:
            if fresh:
                m.setattr(optax_group, "kept_line_search", lambda opt_state: None)
            _, c, crux, _ = _cubic_fit()
            crux.solve(2, print_rate=1)
            backward[0] = 0
            crux.solve(3, print_rate=1)  # chunks of one step: no masked steps past the stop
            jax.effects_barrier()
            return backward[0], np.asarray(c.module)

    reused, p_reused = gradients(fresh=False)
    fresh, p_fresh = gradients(fresh=True)
    assert fresh - reused == 3, (fresh, reused)
    np.testing.assert_allclose(p_reused, p_fresh, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_lbfgs_restarts_when_the_points_move(monkeypatch):
    """RAD moves the points under L-BFGS: each move starts L-BFGS afresh on the new points
    (its curvature pairs and kept value describe the old objective). jno equals optax's loop
    restarted at every move on the same points; a run that kept the old state ends elsewhere
    (its first step after a move makes no progress)."""
    from jno.solve.blocks.optax_group import OptaxBlock
    from jno.solve.resample import ps_key

    def run():
        _, c, crux, rad = _cubic_fit(resample_every=3)
        points = []
        for _ in range(3):
            ps = crux.solver.state.inputs if crux.solver.state is not None else None
            points.append(None if ps is None else np.asarray(ps[ps_key(rad.pointset)]["coords"]))
            crux.solve(3, resample=rad)
        return np.asarray(c.module), points, rad

    jno_final, points, rad = run()
    points[0] = rad.pointset.coords
    p = jnp.zeros(4)
    for xs in points:  # restarted at every move
        p, _ = _lbfgs_by_hand(p, jnp.asarray(xs[:, 0]), 3)
    np.testing.assert_allclose(jno_final, np.asarray(p), rtol=1e-4, atol=1e-5)
    with monkeypatch.context() as m:
        m.setattr(OptaxBlock, "restart_line_search", lambda self, kernel: kernel)
        kept, _, _ = run()
    assert np.max(np.abs(kept - jno_final)) > 1e-3, (kept, jno_final)


def test_bayesian_configuration_after_a_solve_is_an_error():
    dom, x, target = _linear_problem()
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=20, keep=20)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    crux.solve()
    a.initialize(jno.bayesian.pathfinder())
    with pytest.raises(ValueError, match="build a new crux"):
        crux.solve()


@pytest.mark.slow
def test_configuration_before_the_first_solve_is_honoured():
    """``.bayesian`` called between ``jno.core`` and the first ``solve``: the solve samples."""
    dom, x, target = _linear_problem()
    a = jno.np.parameter((1,), name="a")
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    a.bayesian(blackjax.nuts, warmup=100, keep=150, num_chains=2)
    crux.solve()
    draws = np.asarray(a.posterior_samples)
    assert draws.shape == (2, 150, 1)
    # the draws are the posterior of a·sin(πx) (N(0, 10²) prior): mean at 4 MCSE, and the
    # tolerance below half a posterior sd
    xs = dom.points("interior")[:, 0].astype(np.float64)
    data = np.asarray(crux.eval([target]), np.float64)[:, 0]
    phi = np.sin(np.pi * xs)
    prec = phi @ phi / SIGMA**2 + 1 / 100.0
    assert_mean_within(draws[..., 0], phi @ data / SIGMA**2 / prec, sd=1 / np.sqrt(prec))


def test_sg_and_vi_models_report_no_diagnostics():
    dom, x, target = _linear_problem()
    a = jno.np.parameter((1,), name="a", init=3.0)
    a.bayesian(blackjax.sgld, step_size=1e-6, warmup=10, keep=20)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    crux.solve()
    assert a.posterior_diagnostics is None and np.shape(a.posterior_samples) == (20, 1)
    b = jno.np.parameter((1,), name="b", init=3.0)
    b.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2), posterior_draws=30)
    crux = jno.core([(b * jno.np.sin(jno.np.pi * x) - target).gaussian(std=SIGMA)])
    crux.solve(20)
    assert b.posterior_diagnostics is None and np.shape(b.posterior_samples) == (1, 30, 1)
