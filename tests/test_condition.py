"""``crux.condition``: new data in the compiled program gives the exact conjugate posterior
of that data, with no new trace and no new XLA compilation after the first solve."""

import blackjax
import jax
import jax.monitoring
import numpy as np
import pytest

import jno

from stats import assert_gaussian_within

SIGMA = 0.1
PRIOR_SIGMA = 10.0
_COMPILES: list[str] = []
jax.monitoring.register_event_duration_secs_listener(
    lambda name, *_, **__: (
        _COMPILES.append(name) if name == "/jax/core/compile/backend_compile_duration" else None
    )
)


def _problem(chains=4, warmup=300, keep=1000):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    rng = np.random.default_rng(7)
    y0 = phi @ np.array([3.14, -2.71]) + SIGMA * rng.normal(size=xs.size)
    y = dom.variable("y", y0[:, None])
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            warmup=warmup,
            keep=keep,
            num_chains=chains,
            init_jitter=0.3,
            prior=jno.bayesian.priors.gaussian(PRIOR_SIGMA),
        )
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - y
    crux = jno.core([r.gaussian(std=SIGMA)], seed=3)
    return crux, a, b, x, y, phi, rng


def exact(phi, data):
    """The conjugate posterior of (a, b): N(Σ Φᵀy/σ², Σ), Σ = (ΦᵀΦ/σ² + I/σ₀²)⁻¹."""
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + np.eye(2) / PRIOR_SIGMA**2)
    return cov @ phi.T @ data / SIGMA**2, np.sqrt(np.diag(cov))


def _check(a, b, phi, data):
    mean, sd = exact(phi, data)
    for i, p in enumerate((a, b)):
        assert_gaussian_within(
            np.asarray(p.posterior_samples)[..., 0], mean[i], sd[i], what="ab"[i]
        )


@pytest.mark.slow
def test_condition_gives_the_exact_posterior_without_recompiling():
    crux, a, b, _, y, phi, rng = _problem()
    crux.solve()
    traces = dict(crux.solver.traces)
    assert traces["init"] == 1 and traces["adapt"] == 1
    y1 = phi @ np.array([-0.8, 1.9]) + SIGMA * rng.normal(size=phi.shape[0])
    before = len(_COMPILES)
    crux.condition({y: y1})  # (N,) is accepted for data stored as (N, 1)
    assert a.posterior_samples is None and crux.solver.step_index == 0
    crux.solve()
    # no function was traced again and XLA compiled nothing (init, adaptation, chunks, losses)
    assert dict(crux.solver.traces) == traces
    assert len(_COMPILES) == before, f"{len(_COMPILES) - before} new XLA compilation(s)"
    assert np.asarray(a.posterior_samples).shape == (4, 1000, 1)
    _check(a, b, phi, y1)
    # crux.eval reads the new data too
    np.testing.assert_allclose(crux.eval(y)[:, 0], y1.astype(np.float32), rtol=1e-6)
    assert crux.history.steps[0] >= 300  # the history restarted with this solve

    # a warm start keeps the chains and their adapted step sizes; the steps continue
    tuned = np.asarray(crux.solver.state.blocks[0].tuned["step_size"])
    # a warm start suits data like the last (here: new noise): no warm-up is discarded
    y2 = phi @ np.array([-0.8, 1.9]) + SIGMA * rng.normal(size=phi.shape[0])
    before = len(_COMPILES)
    crux.condition({y: y2[:, None]}, warm_start=True)
    np.testing.assert_array_equal(np.asarray(crux.solver.state.blocks[0].tuned["step_size"]), tuned)
    start = crux.solver.step_index
    assert start == 1300
    crux.solve()  # the default of a continued solve: keep * thin more steps, all recorded
    assert crux.solver.step_index == start + 1000
    assert crux.solver.traces["chunk100/1/False/False"] == 1
    assert len(_COMPILES) == before + 1 and crux.solver.traces["reinit"] == 1  # the re-init
    _check(a, b, phi, y2)


def test_condition_checks_its_arguments():
    crux, a, _, x, y, phi, _ = _problem(keep=10, warmup=10)
    n = phi.shape[0]
    with pytest.raises(ValueError, match=r"data 'y' has shape \(101, 1\).*\(50,\)"):
        crux.condition({y: np.zeros(50)})
    with pytest.raises(ValueError, match="data 'y' has dtype float32.*complex"):
        crux.condition({y: np.zeros(n, complex)})
    with pytest.raises(ValueError, match="NaN or infinite"):
        crux.condition({y: np.full(n, np.nan)})
    with pytest.raises(TypeError, match="cannot replace Parameter"):
        crux.condition({a: np.zeros(1)})
    with pytest.raises(TypeError, match="non-empty dict"):
        crux.condition([y, np.zeros(n)])
    with pytest.raises(ValueError, match="dataset must be a non-negative int"):
        crux.condition({y: np.zeros(n)}, dataset=-1)
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.5))
    other = dom.variable("other", np.zeros((3, 1)))
    with pytest.raises(ValueError, match="not read by the constraints"):
        crux.condition({other: np.zeros(3)})
    # new coordinates of the same number of points are accepted
    crux.condition({x: np.linspace(0, 1, n)[:, None] ** 2})
    np.testing.assert_allclose(crux.eval(x)[:, 0], np.linspace(0, 1, n) ** 2, rtol=1e-6)


def test_noise_leaf_on_two_point_sets_is_refused():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    eps = jno.noise.gaussian(std=0.1)
    a = jno.np.parameter((1,), name="a")
    crux = jno.core([(a * x - eps).mse, (a * xb - eps).mse])
    with pytest.raises(ValueError, match="used on 2 point sets"):
        crux.condition({eps: np.zeros(x.pointset.size)})
