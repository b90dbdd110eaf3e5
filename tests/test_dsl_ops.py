"""Operators, jno.np functions, jno.fn, indexing and data, against numpy on the same points."""

import blackjax
import jax.numpy as jnp
import numpy as np
import pytest

import jno


@pytest.fixture
def rect():
    dom = jno.domain(constructor=jno.domain.rect(mesh_size=0.25, x_range=(0, 1), y_range=(0, 2)))
    x, y, _ = dom.variable("interior")
    return dom, x, y, dom.points("interior")


def values(*exprs):
    crux = jno.core([(exprs[0] * 0.0).mse])
    return crux.eval(list(exprs))


def test_arithmetic_and_functions(rect):
    _, x, y, p = rect
    X, Y = p[:, :1], p[:, 1:]
    exprs = [x + y, x - 2 * y, x * y / (1 + y), -(x**2), 2.0**x, abs(x - 0.5),
             jno.np.where(x > 0.5, y, -y), jno.np.maximum(x, y), jno.np.arctan(y),
             jno.np.sqrt(1 + x), jno.np.tanh(y) * jno.np.cosh(x) + jno.np.sinh(x)]
    want = [X + Y, X - 2 * Y, X * Y / (1 + Y), -(X**2), 2.0**X, np.abs(X - 0.5),
            np.where(X > 0.5, Y, -Y), np.maximum(X, Y), np.arctan(Y), np.sqrt(1 + X),
            np.tanh(Y) * np.cosh(X) + np.sinh(X)]
    for got, w in zip(values(*exprs), want):
        np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)


def test_vectors_indexing_matmul_and_fn(rect):
    _, x, y, p = rect
    v = jno.np.concat([x, y, x * y], axis=-1)
    m = np.array([[1.0, 2.0], [0.0, 1.0], [3.0, -1.0]], dtype=np.float32)
    outs = values(v[..., 1:2], v @ m, jno.np.sum(v**2), jno.np.stack([x, y], axis=-1),
                  jno.fn(lambda a, b: jnp.hypot(a, b), x, y))
    V = np.concatenate([p[:, :1], p[:, 1:], p[:, :1] * p[:, 1:]], axis=1)
    np.testing.assert_allclose(outs[0], V[:, 1:2], rtol=1e-6)
    np.testing.assert_allclose(outs[1], V @ m, rtol=1e-5)
    np.testing.assert_allclose(outs[2], np.sum(V**2, axis=1, keepdims=True), rtol=1e-5)
    assert outs[3].shape == (p.shape[0], 1, 2)
    np.testing.assert_allclose(outs[4][:, 0], np.hypot(p[:, 0], p[:, 1]), rtol=1e-6)


def test_attached_data_and_reductions(rect):
    dom, x, y, p = rect
    d = np.arange(p.shape[0], dtype=np.float32)
    obs = dom.variable("obs", d)
    r = x - obs
    got = jno.core([r.mse]).eval([r])[:, 0]
    np.testing.assert_allclose(got, p[:, 0] - d, rtol=1e-6)
    crux = jno.core([r.mse, r.mean, r.sum, r.mae, r.max])
    vals = crux.solve(1, print_rate=1).losses
    rr = p[:, 0] - d
    np.testing.assert_allclose([v[0] for v in vals.values()],
                               [np.mean(rr**2), rr.mean(), rr.sum(), np.abs(rr).mean(), rr.max()],
                               rtol=1e-5)


def test_gaussian_likelihood_value_is_exact(rect):
    _, x, y, p = rect
    a = jno.np.parameter((1,), name="a", init=0.3)
    sigma = 0.2
    c = (a * x - y).gaussian(std=sigma)
    r = 0.3 * p[:, 0] - p[:, 1]
    want = 0.5 * np.sum(r**2) / sigma**2 + r.size * np.log(sigma * np.sqrt(2 * np.pi))
    crux = jno.core([c])
    np.testing.assert_allclose(float(crux.program.losses(crux.program.initial_params())[0]),
                               want, rtol=1e-5)


def test_nonfinite_log_density_is_counted_as_divergence():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a", init=0.2)
    a.bayesian(blackjax.nuts, step_size=0.5, adapt=False, warmup=0, keep=200)
    r = jno.np.sqrt(a) * x - 0.1 * x  # sqrt(a) is NaN for a < 0
    crux = jno.core([r.gaussian(std=0.05)])
    with pytest.warns(UserWarning, match="divergent") as record:
        crux.solve()
    d = a.posterior_diagnostics
    n_div = int(np.sum(d["is_divergent"] | d["nonfinite"]))
    assert n_div > 0.01 * 200  # above the guide's 1 % threshold, so a warnings.warn
    (message,) = [str(w.message) for w in record if "divergent" in str(w.message)]
    assert f"Model 'a': {n_div}/200 divergent or non-finite" in message
    assert np.all(np.isfinite(a.posterior_samples))
