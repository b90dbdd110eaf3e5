"""``crux.solve_batch``: D inferences in one compiled program equal D separate
``condition(..., dataset=d)`` + ``solve()`` runs draw for draw, and each is the exact
conjugate posterior of its dataset."""

import blackjax
import numpy as np
import optax
import pytest

import jno

from stats import assert_mean_within

SIGMA = 0.1
PRIOR_SIGMA = 2.0


def _problem(num_datasets=4, chains=2):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    xs = dom.points("interior")[:, 0].astype(np.float64)
    phi = np.stack([np.sin(np.pi * xs), np.cos(np.pi * xs)], axis=1)
    rng = np.random.default_rng(11)
    theta = PRIOR_SIGMA * rng.normal(size=(num_datasets, 2))
    ys = theta @ phi.T + SIGMA * rng.normal(size=(num_datasets, xs.size))
    y = dom.variable("y", ys[0][:, None])
    a = jno.np.parameter((1,), name="a", init=0.0)
    b = jno.np.parameter((1,), name="b", init=0.0)
    for p in (a, b):
        p.bayesian(
            blackjax.nuts,
            warmup=100,
            keep=200,
            num_chains=chains,
            init_jitter=0.3,
            prior=jno.bayesian.priors.gaussian(PRIOR_SIGMA),
        )
    r = a * jno.np.sin(jno.np.pi * x) + b * jno.np.cos(jno.np.pi * x) - y
    return jno.core([r.gaussian(std=SIGMA)], seed=5), a, b, y, ys, phi


@pytest.mark.slow
def test_batch_equals_separate_solves_and_the_exact_posteriors():
    crux, a, b, y, ys, phi = _problem()
    out = crux.solve_batch({y: ys})
    assert out.num_datasets == 4 and a.posterior_samples is None  # the crux is untouched
    assert out[a].shape == (4, 2, 200, 1) and out.posterior_samples["b"].shape == (4, 2, 200, 1)
    assert out.diagnostics(a)["acceptance_rate"].shape == (4, 2, 200)
    traces = dict(crux.solver.traces)
    cov = np.linalg.inv(phi.T @ phi / SIGMA**2 + np.eye(2) / PRIOR_SIGMA**2)
    for d in range(4):
        crux.condition({y: ys[d]}, dataset=d)
        crux.solve()
        for p in (a, b):
            single, batched = np.asarray(p.posterior_samples), out[p][d]
            # the vmapped program fuses differently from the single one: equal to float32
            # round-off, which NUTS may grow along a trajectory (median, first draws)
            np.testing.assert_allclose(batched[:, :5], single[:, :5], atol=1e-4)
            assert np.median(np.abs(batched - single)) < 1e-5
        mean = cov @ phi.T @ ys[d] / SIGMA**2
        sd = np.sqrt(np.diag(cov))
        for i, p in enumerate((a, b)):
            assert_mean_within(out[p][d][..., 0], mean[i], sd=sd[i], what=f"dataset {d} {p}")
    # switching datasets traced nothing new; a second batch of the same size reuses the
    # compiled program and repeats the draws
    assert all(crux.solver.traces[k] == v for k, v in traces.items())
    again = crux.solve_batch({y: ys})
    np.testing.assert_array_equal(again[b], out[b])
    assert all(crux.solver.traces[k] == 1 for k in crux.solver.traces if k.startswith("batch/"))


@pytest.mark.slow
def test_64_datasets_one_after_another_equal_64_separate_solves_bit_for_bit():
    """group=1 (lax.map) runs each dataset on the single solve's program."""
    crux, a, b, y, ys, phi = _problem(num_datasets=64)
    out = crux.solve_batch({y: ys}, group=1)
    assert out[a].shape == (64, 2, 200, 1)
    for d in range(64):
        crux.condition({y: ys[d]}, dataset=d)
        crux.solve()
        np.testing.assert_array_equal(out[a][d], np.asarray(a.posterior_samples))
        np.testing.assert_array_equal(out[b][d], np.asarray(b.posterior_samples))


def test_batch_arguments_are_checked():
    crux, a, _, y, ys, _ = _problem(num_datasets=2)
    with pytest.raises(ValueError, match="group must be a positive int"):
        crux.solve_batch({y: ys}, group=0)
    with pytest.raises(ValueError, match=r"data 'y' has shape .*expected \(D, "):
        crux.solve_batch({y: ys[0]})
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.02))
    x, _ = dom.variable("interior")
    c = jno.np.parameter((1,), name="c").optimizer(optax.adam(1e-2))
    z = jno.np.parameter((1,), name="z")
    z.bayesian(blackjax.nuts, warmup=10, keep=10)
    mixed = jno.core([(c * x - 1.0).mse, (z - c).gaussian(std=1.0)])
    with pytest.raises(ValueError, match="MCMC models only"):
        mixed.solve_batch({x: np.zeros((2,) + x.pointset.coords.shape)})


MESH_SCRIPT = r"""
import json
import blackjax, jax, numpy as np, jno
from jax.sharding import Mesh
dom = jno.domain(constructor=jno.domain.line(mesh_size=0.05))
x, _ = dom.variable("interior")
rng = np.random.default_rng(0)
ys = rng.normal(size=(4, x.pointset.size))
y = dom.variable("y", ys[0][:, None])
a = jno.np.parameter((1,), name="a", init=0.0)
a.bayesian(blackjax.nuts, warmup=50, keep=30, num_chains=2,
           prior=jno.bayesian.priors.gaussian(2.0))
crux = jno.core([(a * jno.np.sin(jno.np.pi * x) - y).gaussian(std=0.5)], seed=1)
mesh = Mesh(np.array(jax.local_devices()), ("data",))
out = crux.solve_batch({y: ys}, mesh=mesh if len(jax.local_devices()) > 1 else None)
print(json.dumps({"devices": len(jax.local_devices()), "draws": out[a].tolist()}))
"""


@pytest.mark.slow
def test_mesh_sharded_batch_matches_unsharded():
    """The dataset axis sharded over 2 forced host devices: the draws of one device, to
    round-off (x64, as in test_sharding.py: per-device programs fuse differently)."""
    import json
    import os
    import subprocess
    import sys

    def run(devices):
        env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_ENABLE_X64="1",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        out = subprocess.run([sys.executable, "-c", MESH_SCRIPT], capture_output=True,
                             text=True, env=env, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    one, two = run(1), run(2)
    assert one["devices"] == 1 and two["devices"] == 2
    a, b = np.array(one["draws"]), np.array(two["draws"])
    assert a.shape == b.shape == (4, 2, 30, 1)
    np.testing.assert_allclose(a[:, :, :3], b[:, :, :3], atol=1e-8)
    assert np.median(np.abs(a - b)) < 1e-8
