"""``crux.solve(until=jno.bayesian.converged(...), max_epochs=...)`` stops at the first chunk
where R-hat and bulk ESS meet the targets, and at the budget otherwise."""

import arviz as az
import blackjax
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
