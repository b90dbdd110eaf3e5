"""The guide's log lines and the solve-start caveats, read through ``caplog`` (logger "jno").

Only stable substrings are asserted: the sampler's name, the fastpath line, the divergence
summary with its counts, the mixed-mode warning and the pattern-B line. The fastpath line is
also the public record of which solves take the fastpath: pure-MCMC solves do, solves with an
optax model do not.
"""

import logging
import warnings

import blackjax
import equinox as eqx
import jax
import numpy as np
import optax
import pytest

import jno


def _data(mesh=0.05):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=mesh))
    x, _ = dom.variable("interior")
    return dom, x, 2.0 * jno.np.sin(jno.np.pi * x) + jno.noise.gaussian(std=0.1)


def _messages(caplog, level=None):
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("jno") and (level is None or r.levelno == level)
    ]


@pytest.fixture
def jno_logs(caplog):
    caplog.set_level(logging.INFO, logger="jno")
    return caplog


def test_guide_log_lines_of_a_pure_nuts_solve(jno_logs):
    _, x, target = _data()
    a = jno.np.parameter((1,), name="a")
    a.bayesian(blackjax.nuts, warmup=50, keep=40, num_chains=2)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - target).gaussian(std=0.1)])
    # 1. at jno.core: the handle-creation line, with the sampler and its settings
    created = [m for m in _messages(jno_logs, logging.INFO) if "Bayesian sampling via" in m]
    assert len(created) == 1, created
    assert "Bayesian sampling via 'nuts'" in created[0]
    for part in ("warmup=50", "keep=40", "chains=2", "is_divergent", "acceptance_rate"):
        assert part in created[0], (part, created[0])
    jno_logs.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        crux.solve(print_rate=20)
    info = _messages(jno_logs, logging.INFO)
    # 2. the fastpath line: 40 samples, thin=1, chunked at the print rate
    fast = [m for m in info if "MCMC fastpath" in m]
    assert len(fast) == 1, info
    assert "40 samples" in fast[0] and "print_rate=20" in fast[0], fast[0]
    # 3. the end-of-solve summary: divergences out of K·keep = 80 transitions
    summary = [m for m in info if "divergent (" in m]
    assert len(summary) == 1, info
    assert "/80 divergent" in summary[0] and "mean_accept=" in summary[0], summary[0]
    # the divergence count of the line is the diagnostics', and a warnings.warn follows
    # exactly when it exceeds the guide's 1 % of K·keep
    d = a.posterior_diagnostics
    div = np.asarray(d["is_divergent"], bool)
    if "nonfinite" in d:
        div = div | np.asarray(d["nonfinite"], bool)
    n_div = int(np.sum(div))
    assert f"{n_div}/80 divergent" in summary[0], summary[0]
    warned = [w for w in caught if "divergent or non-finite" in str(w.message)]
    assert len(warned) == (1 if n_div > 0.8 else 0), (n_div, [str(w.message) for w in caught])


def test_vi_model_logs_its_line(jno_logs):
    _, x, target = _data()
    p = jno.np.parameter((1,), name="p")
    p.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2), num_samples=4, posterior_draws=10)
    jno.core([(p - target).gaussian(std=0.1)])
    lines = [m for m in _messages(jno_logs, logging.INFO) if "mean-field VI via" in m]
    assert len(lines) == 1 and "'meanfield_vi'" in lines[0] and "posterior_draws=10" in lines[0]


def test_mixed_mode_warns_and_skips_the_fastpath(jno_logs):
    _, x, target = _data()
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    a.bayesian(blackjax.nuts, warmup=20, keep=10)
    b.optimizer(optax.adam(1e-2))
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) + b - target).gaussian(std=0.1)])
    warned = [m for m in _messages(jno_logs, logging.WARNING) if "Mixed mode" in m]
    assert len(warned) == 1, _messages(jno_logs)
    assert "adapt=False" in warned[0]
    crux.solve()
    assert not [m for m in _messages(jno_logs) if "MCMC fastpath" in m]


def test_no_mixed_mode_warning_without_adaptation(jno_logs):
    _, x, target = _data()
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    a.bayesian(blackjax.nuts, warmup=20, keep=10, adapt=False, step_size=1e-2)
    b.optimizer(optax.adam(1e-2))
    jno.core([(a * jno.np.sin(jno.np.pi * x) + b - target).gaussian(std=0.1)])
    assert not [m for m in _messages(jno_logs) if "Mixed mode" in m]


def _head_mask(module):
    false = jax.tree.map(lambda _: False, module)
    true = jax.tree.map(lambda _: True, module.output_layer)
    return eqx.tree_at(lambda m: m.output_layer, false, replace=true)


@pytest.mark.parametrize("chains", [1, 2])
def test_pattern_b_line_only_with_several_chains(jno_logs, chains):
    _, x, target = _data()
    net = jno.nn.wrap(jno.nn.mlp(1, 1, hidden_dims=4, num_layers=1, key=jax.random.PRNGKey(0)))
    net.optimizer(optax.adam(1e-2))
    net.mask(_head_mask(net.module)).bayesian(
        blackjax.sgld, step_size=1e-5, warmup=10, keep=10, num_chains=chains
    )
    jno.core([(net(x) - target).gaussian(std=0.1)])
    lines = [m for m in _messages(jno_logs, logging.WARNING) if "Pattern B" in m]  # the guide: a WARNING
    assert len(lines) == (1 if chains > 1 else 0), _messages(jno_logs)
    if lines:
        assert "K>1" in lines[0] and "average" in lines[0]


NUTS = {"adapt": False, "step_size": 1e-2}  # 10 warm-up steps are too few to adapt


def _configure(case, a, b):
    if case == "sgld":
        a.bayesian(blackjax.sgld, step_size=1e-5, warmup=10, keep=10)
        b.bayesian(blackjax.sgld, step_size=1e-5, warmup=10, keep=10)
    elif case == "two_nuts_same_schedule":
        a.bayesian(blackjax.nuts, warmup=10, keep=10, **NUTS)
        b.bayesian(blackjax.nuts, warmup=10, keep=10, **NUTS)
    elif case == "two_nuts_different_keep":
        a.bayesian(blackjax.nuts, warmup=10, keep=10, **NUTS)
        b.bayesian(blackjax.nuts, warmup=10, keep=12, **NUTS)
    else:  # "vi"
        a.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2), num_samples=2, posterior_draws=5)
        b.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2), num_samples=2, posterior_draws=5)


@pytest.mark.parametrize(
    ("case", "fast"),
    [("sgld", True), ("two_nuts_same_schedule", True), ("two_nuts_different_keep", False),
     ("vi", False)],
)
def test_which_solves_take_the_fastpath(jno_logs, case, fast):
    """The fastpath runs only MCMC blocks sharing one (warmup, keep, thin) schedule
    (``Solver.fastpath``): SG-MCMC counts as MCMC; VI, or two schedules, take the general
    loop. The solve's draws are there either way."""
    _, x, target = _data()
    a = jno.np.parameter((1,), name="a")
    b = jno.np.parameter((1,), name="b")
    _configure(case, a, b)
    crux = jno.core([(a * jno.np.sin(jno.np.pi * x) + b - target).gaussian(std=0.1)])
    crux.solve(None if case != "vi" else 20)
    lines = [m for m in _messages(jno_logs, logging.INFO) if "MCMC fastpath" in m]
    assert len(lines) == (1 if fast else 0), _messages(jno_logs)
    assert crux.solver.fastpath(None) is fast
    keep_b = {"vi": 5, "two_nuts_different_keep": 12}.get(case, 10)
    assert np.shape(b.posterior_samples)[-2] == keep_b
