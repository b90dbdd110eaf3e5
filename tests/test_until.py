"""``crux.solve(until=jno.bayesian.converged(...), max_epochs=...)`` stops at the first chunk
where R-hat and bulk ESS meet the targets, and at the budget otherwise."""

import arviz as az
import blackjax
import jax
import numpy as np
import pytest

import jno


def _problem(keep=4000):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 3.0 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=100, keep=keep, num_chains=4, init_jitter=0.5)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=0.1)], seed=2)
    return crux, a


@pytest.mark.slow
def test_until_stops_at_the_first_chunk_meeting_the_targets(caplog):
    crux, a = _problem()
    rule = jno.bayesian.converged(rhat=1.01, ess=300)
    with caplog.at_level("INFO", logger="jno"):
        crux.solve(until=rule, max_epochs=5000, print_rate=25)
    steps, rhats = crux.history.metrics["rhat:'a'"]
    _, esss = crux.history.metrics["ess:'a'"]
    met = (rhats <= 1.01) & (esss >= 300)
    # it stopped at the first chunk where both hold, well before the budget
    assert met[-1] and not met[:-1].any()
    assert crux.solver.step_index == steps[-1] + 1 < 5100
    # the recorded diagnostics are those of the returned chain (jno computes them in float32:
    # 1e-4 relative), and arviz agrees
    chain = np.asarray(a.posterior_samples)
    assert chain.shape[1] == crux.solver.step_index - 100
    assert float(np.max(jno.bayesian.rhat(chain))) == pytest.approx(rhats[-1], rel=1e-4)
    assert float(np.min(jno.bayesian.ess(chain))) == pytest.approx(esss[-1], rel=1e-4)
    idata = az.from_dict(posterior={"a": chain[..., 0]})
    assert float(az.rhat(idata, method="rank")["a"]) == pytest.approx(rhats[-1], abs=2e-3)
    assert float(az.ess(idata, method="bulk")["a"]) == pytest.approx(esss[-1], rel=0.02)
    assert "until: stopped at step" in caplog.text and "ESS" in caplog.text


@pytest.mark.slow
def test_until_respects_max_epochs(caplog):
    crux, a = _problem(keep=1000)
    with caplog.at_level("INFO", logger="jno"):
        crux.solve(until=jno.bayesian.converged(ess=1e9), max_epochs=300, print_rate=50)
    assert crux.solver.step_index == 300 and a.posterior_samples.shape == (4, 200, 1)
    assert "max_epochs=300 reached" in caplog.text
    assert "ESS" in caplog.text and "< 1e+09" in caplog.text


def test_until_arguments_are_checked():
    crux, _ = _problem(keep=10)
    with pytest.raises(ValueError, match="max_epochs"):
        crux.solve(until=jno.bayesian.converged())
    with pytest.raises(TypeError, match="stopping rule"):
        crux.solve(until=0.01, max_epochs=10)
    with pytest.raises(ValueError, match="rhat must be a number >= 1"):
        jno.bayesian.converged(rhat=0.9)


@pytest.mark.slow
def test_the_rules_numpy_estimators_equal_jnos_diagnostics():
    """The rule's NumPy R-hat and ESS are the estimators of jno.bayesian.rhat / ess (which
    are checked against arviz in test_diagnostics.py): equal to float32 round-off on
    autocorrelated chains with a shifted chain, ties and one chain."""
    from jno.bayesian.convergence import bulk_ess, rank_rhat

    rng = np.random.default_rng(0)
    for k, n in [(4, 101), (1, 50)]:
        x = rng.normal(size=(k, n, 3))
        for t in range(1, n):
            x[:, t] = 0.8 * x[:, t - 1] + 0.6 * x[:, t]
        x[0] += 0.3
        x[:, :, 2] = np.round(x[:, :, 2], 1)  # ties share their average rank
        x32 = x.astype(np.float32)
        np.testing.assert_allclose(rank_rhat(x32), jno.bayesian.rhat(x32), rtol=1e-4)
        np.testing.assert_allclose(bulk_ess(x32), jno.bayesian.ess(x32), rtol=1e-4)


def _with_a_network(keep=150):
    """``a`` (a parameter) and a tiny network, both sampled by one NUTS kernel."""
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
    x, _ = dom.variable("interior")
    target = 3.0 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="a")
    net = jno.nn.wrap(jno.nn.mlp(1, hidden_dims=2, num_layers=1, key=jax.random.PRNGKey(0)),
                      name="net")
    for m in (a, net):
        m.bayesian(blackjax.nuts, warmup=100, keep=keep, num_chains=2, init_jitter=0.1)
    residual = a * jno.np.sin(jno.np.pi * x) + 0.01 * net(x) - target
    crux = jno.core([residual.gaussian(std=0.1)], seed=4)
    return crux, a, net, x


def test_by_default_the_sampled_parameters_are_judged_not_the_weights(caplog):
    crux, a, net, _ = _with_a_network()
    with caplog.at_level("INFO", logger="jno"):
        crux.solve(until=jno.bayesian.converged(ess=1e9), max_epochs=200, print_rate=50)
    assert "until: judging 'a' (the sampled parameters; network weights are not judged)" in (
        caplog.text
    )
    judged = {k for k in crux.history.metrics if k.startswith("rhat:")}
    assert judged == {"rhat:'a'"}
    # the recorded value is the R-hat of a's kept draws (arviz: independent estimator)
    steps, rhats = crux.history.metrics["rhat:'a'"]
    chain = np.asarray(a.posterior_samples)[..., 0]
    assert steps[-1] == 199 and chain.shape == (2, 100)
    assert float(az.rhat(az.from_dict(posterior={"a": chain}), method="rank")["a"]) == (
        pytest.approx(rhats[-1], abs=2e-3)
    )


def test_on_expressions_are_pushed_through_the_kept_draws(caplog):
    crux, a, net, x = _with_a_network()
    u = net(x)
    rule = jno.bayesian.converged(ess=1e9, on={"2a": 2.0 * a, "u": u, "net": net})
    with caplog.at_level("INFO", logger="jno"):
        crux.solve(until=rule, max_epochs=200, print_rate=50)
    assert "until: judging 2a, u, net (the quantities given by on=)" in caplog.text
    metrics = crux.history.metrics
    assert {k for k in metrics if k.startswith("rhat:")} == {"rhat:2a", "rhat:u", "rhat:net"}
    # the pushed-forward values are crux.eval's, draw by draw (float32 round-off)
    from jno.solve.quantities import Quantities

    q = Quantities(crux.program, crux.solver.plan, rule.on).draws(crux.solver)
    np.testing.assert_allclose(q["u"], crux.eval([u], samples="chain"), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q["2a"], 2.0 * np.asarray(a.posterior_samples), rtol=1e-6)
    # R-hat is rank-based: the judged 2a has a's R-hat, and the expression u over 21 points is
    # judged at its worst point, as arviz computes it
    idata = az.from_dict(posterior={"u": np.asarray(q["u"])[..., 0],
                                    "a": np.asarray(a.posterior_samples)[..., 0]})
    assert metrics["rhat:2a"][1][-1] == pytest.approx(float(az.rhat(idata)["a"]), abs=2e-3)
    worst = float(np.max(az.rhat(idata, method="rank")["u"].values))
    assert metrics["rhat:u"][1][-1] == pytest.approx(worst, abs=2e-3)


def test_on_items_are_checked_at_solve_start():
    crux, a, net, x = _with_a_network(keep=10)
    b = jno.np.parameter((1,), name="b")  # not in the solve
    with pytest.raises(TypeError, match="on must be a list"):
        jno.bayesian.converged(on=5)
    with pytest.raises(ValueError, match="on is empty"):
        jno.bayesian.converged(on=[])
    with pytest.raises(ValueError, match="not sampled in this solve"):
        crux.solve(until=jno.bayesian.converged(on=[b]), max_epochs=10)
    with pytest.raises(ValueError, match="depends on no sampled model"):
        crux.solve(until=jno.bayesian.converged(on=[jno.np.sin(x)]), max_epochs=10)
    with pytest.raises(TypeError, match="expected a jno model or expression"):
        crux.solve(until=jno.bayesian.converged(on=["a"]), max_epochs=10)
    assert crux.solver.step_index == 0
