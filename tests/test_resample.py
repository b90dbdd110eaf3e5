"""Adaptive collocation (jno.sampling.rad / rar_d): the probabilities and selections against
their definitions, one resampling step against a hand-written residual and the same keys,
continuation, no recompilation, and the configuration errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jno
from jno.solve import resample as rs

A = 30.0  # u = atan(A (x - 1/2)): a steep front at x = 1/2


def build(n=48, seed=0):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=1 / (n - 1)))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    net = jno.nn.wrap(
        jno.nn.mlp(1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(seed)), name="u"
    )
    net.optimizer(optax.adam(1e-3))
    f = -2 * A**3 * (x - 0.5) / (1 + A**2 * (x - 0.5) ** 2) ** 2
    r = jno.diff(net(x), x, order=2) - f
    crux = jno.core([r.mse, (net(xb) - jno.np.arctan(A * (xb - 0.5))).mse], seed=seed)
    return crux, net, x, dom


def coords_of(crux, x):
    return np.asarray(crux.solver.state.inputs[rs.ps_key(x.pointset)]["coords"])


def test_probabilities_and_selections_follow_the_definitions():
    _, _, x, _ = build()
    eps = jnp.asarray([0.0, 1.0, 2.0, 3.0, 0.0, 4.0], jnp.float32)
    for k, c in [(1.0, 1.0), (2.0, 0.0), (0.0, 5.0)]:
        p = np.asarray(rs.rad(x, k=k, c=c, candidates=48).probabilities(eps))
        w = np.asarray(eps, np.float64) ** k
        w = w / w.mean() + c
        np.testing.assert_allclose(p, w / w.sum(), rtol=1e-6)
    # RAD with c = 0: points of zero residual are never drawn; no point twice
    pool = jnp.arange(200, dtype=jnp.float32)[:, None]
    eps_pool = jnp.where(jnp.arange(200) % 2 == 0, 0.0, 1.0 + jnp.arange(200) / 200)
    r = rs.rad(x, k=1.0, c=0.0, candidates=200)
    new = np.asarray(r.new_coords(jax.random.PRNGKey(3), jnp.zeros((48, 1)), pool, eps_pool, None))
    assert new.shape == (48, 1) and len(np.unique(new)) == 48
    assert np.all(new[:, 0] % 2 == 1)
    # RAR-D: exactly the `replace` points of smallest residual are replaced, by pool points
    coords = jnp.arange(48, dtype=jnp.float32)[:, None] + 1000
    eps_now = jnp.asarray(np.random.default_rng(0).permutation(48), jnp.float32)
    d = rs.rar_d(x, k=2.0, c=0.0, candidates=200, replace=0.25)
    assert d.replace == 12
    out = np.asarray(d.new_coords(jax.random.PRNGKey(4), coords, pool, eps_pool, eps_now))
    moved = np.nonzero(out[:, 0] != np.asarray(coords)[:, 0])[0]
    np.testing.assert_array_equal(np.sort(moved), np.sort(np.argsort(np.asarray(eps_now))[:12]))
    assert np.all(out[moved, 0] < 200) and np.all(out[moved, 0] % 2 == 1)


def test_one_resampling_step_equals_a_hand_written_one():
    """After the chunk that ends at step 100 the interior points are the pool draws chosen
    with the residual |u'' - f| of the trained network, computed here by jax.grad."""
    crux, net, x, _ = build()
    r = jno.sampling.rad(x, every=100, k=1.0, c=1.0, candidates=480)
    crux.solve(100, print_rate=50, resample=r)
    assert crux.history.metrics["resample:line.interior"][0].tolist() == [99]

    ref, rnet, rx, _ = build()
    ref.solve(100, print_rate=50)  # the same training, no resampling
    u = rnet.module
    before = coords_of(ref, rx)

    def u_xx(p):
        return jax.grad(jax.grad(lambda s: u(jnp.reshape(s, (1,)))[0]))(p)

    def eps(points):
        t = points[:, 0]
        f = -2 * A**3 * (t - 0.5) / (1 + A**2 * (t - 0.5) ** 2) ** 2
        return jnp.abs(jax.vmap(u_xx)(t) - f)

    (bound,) = rs.bind(jno.sampling.rad(rx, every=100, candidates=480), ref.solver.program)
    key, pool = rs.pool(bound, ref.solver.streams, 100)
    assert pool.shape == (480, 1) and np.all((pool > 0) & (pool < 1))
    w = eps(jnp.asarray(pool))
    w = w / jnp.mean(w) + 1.0
    idx = jax.random.choice(key, 480, (before.shape[0],), replace=False, p=w / jnp.sum(w))
    np.testing.assert_allclose(coords_of(crux, x), np.asarray(pool)[np.asarray(idx)], atol=0)
    np.testing.assert_allclose(
        crux.history.metrics["resample:line.interior"][1][0], float(np.mean(eps(pool))), rtol=1e-4
    )
    # the points concentrate at the front: more of them within 0.1 of x = 1/2 than uniform
    near = np.mean(np.abs(coords_of(crux, x) - 0.5) < 0.1)
    assert near > 0.2 + 4 * np.sqrt(0.2 * 0.8 / before.shape[0])


def test_continuation_and_no_recompilation():
    crux, net, x, _ = build()
    crux.solve(300, print_rate=50, resample=jno.sampling.rar_d(x, every=100))
    split, snet, sx, _ = build()
    split.solve(100, print_rate=50, resample=jno.sampling.rar_d(sx, every=100))
    split.solve(200, print_rate=50, resample=jno.sampling.rar_d(sx, every=100))
    np.testing.assert_array_equal(coords_of(crux, x), coords_of(split, sx))
    np.testing.assert_array_equal(crux.history.total_loss, split.history.total_loss)
    steps, _ = crux.history.metrics["resample:line.interior"]
    assert steps.tolist() == [99, 199, 299]
    # new coordinates, the same compiled chunk: one full and no partial chunk variant
    assert sorted(k for k in crux.solver.compiled.functions if k.startswith("chunk")) == ["chunk50/1/True/False"]


def test_configuration_errors_name_the_fix():
    crux, net, x, dom = build()
    with pytest.raises(ValueError, match="every must be a positive int"):
        jno.sampling.rad(x, every=0)
    with pytest.raises(ValueError, match="candidates=10 is fewer than the 48 points"):
        jno.sampling.rad(x, candidates=10)
    with pytest.raises(TypeError, match="coordinate variable"):
        jno.sampling.rad("interior")
    y, _ = dom.variable("interior", sample=20)
    with pytest.raises(ValueError, match="no constraint uses the points"):
        crux.solve(10, resample=jno.sampling.rad(y))
    data = dom.variable("obs", np.zeros(48), tag="interior")
    crux2 = jno.core([(net(x) - data).mse])
    with pytest.raises(ValueError, match=r"carries data or noise \(\['obs'\]\)"):
        crux2.solve(10, resample=jno.sampling.rad(x))
