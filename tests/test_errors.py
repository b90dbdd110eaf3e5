"""Every documented misuse raises a clear ValueError/TypeError before any JAX trace."""

import blackjax
import jax
import numpy as np
import pytest

import jno


@pytest.fixture
def line():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    xb, _ = dom.variable("boundary")
    return dom, x, xb


def test_shape_mismatch(line):
    _, x, _ = line
    v = jno.np.concat([x, x, x], axis=-1)  # (3,)
    w = jno.np.concat([x, x], axis=-1)  # (2,)
    with pytest.raises(ValueError, match="per-point shape"):
        v + w


def test_mixing_two_point_sets(line):
    _, x, xb = line
    with pytest.raises(ValueError, match="mixes point sets"):
        x + xb


def test_derivative_wrt_non_coordinate(line):
    _, x, _ = line
    a = jno.np.parameter((1,), name="a")
    with pytest.raises(TypeError, match="coordinate"):
        jno.diff(a * x, a)
    with pytest.raises(TypeError, match="coordinate"):
        jno.diff(x**2, 2.0 * x)


def test_derivative_of_reduced_expression(line):
    _, x, _ = line
    with pytest.raises(ValueError, match="not point-wise"):
        jno.diff(x - x.mean, x)


def test_empty_and_non_scalar_constraints(line):
    _, x, _ = line
    with pytest.raises(ValueError, match="empty"):
        jno.core([])
    with pytest.raises(ValueError, match="not a scalar"):
        jno.core([x**2])
    with pytest.raises(TypeError, match="constraint 0"):
        jno.core([3.0])


def test_unknown_tag(line):
    dom, _, _ = line
    with pytest.raises(ValueError, match="tag"):
        dom.variable("nowhere")


def test_model_input_shape():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    net = jno.nn.wrap(jno.nn.mlp(2, key=jax.random.PRNGKey(0)), name="u")
    with pytest.raises(ValueError, match="model 'u'"):
        net(x)


def test_bayesian_configuration_errors():
    a = jno.np.parameter((1,), name="a")
    with pytest.raises(ValueError, match="step_size"):
        a.bayesian(blackjax.mala)
    with pytest.raises(ValueError, match="step_size"):
        a.bayesian(blackjax.nuts, adapt=False)
    with pytest.raises(TypeError, match="kernel family"):
        a.bayesian(lambda position, step_size: None, step_size=0.1)
    for kw, word in (({"keep": 0}, "keep"), ({"thin": 0}, "thin"), ({"warmup": -1}, "warmup"),
                     ({"init_jitter": -0.1}, "init_jitter")):
        with pytest.raises(ValueError, match=word):
            a.bayesian(blackjax.nuts, step_size=0.1, **kw)


def test_bayesian_after_vi_and_mismatched_chains():
    import optax

    a = jno.np.parameter((1,), name="a")
    a.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2))
    with pytest.raises(ValueError, match="after .vi"):
        a.bayesian(blackjax.nuts)
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    b = jno.np.parameter((1,), name="b").bayesian(blackjax.nuts, num_chains=2)
    c = jno.np.parameter((1,), name="c").bayesian(blackjax.nuts, num_chains=3)
    with pytest.raises(ValueError, match="num_chains"):
        jno.core([(b * x + c - x).mse])


def test_prior_must_return_scalar():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((2,), name="a").bayesian(blackjax.nuts, prior=lambda p: p * 2.0)
    with pytest.raises(ValueError, match="model 'a': the prior must return a scalar"):
        jno.core([(a[0:1] * x - x).mse])  # checked when the crux is built


def test_eval_chain_without_bayesian_dependency():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a")
    crux = jno.core([(a * x - x).mse])
    with pytest.raises(ValueError, match="no Bayesian"):
        crux.eval([x * 2.0], samples="chain")


def test_data_with_wrong_length():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    with pytest.raises(ValueError, match="leading axis"):
        dom.variable("u_obs", np.zeros((5, 1)))


def test_solve_without_epochs_needs_bayesian():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    x, _ = dom.variable("interior")
    a = jno.np.parameter((1,), name="a")
    crux = jno.core([(a * x - x).mse])
    with pytest.raises(ValueError, match="number of steps"):
        crux.solve()


def test_vi_configuration_errors():
    import optax

    a = jno.np.parameter((1,), name="a")
    with pytest.raises(ValueError, match="likelihood_scale"):
        a.vi(blackjax.meanfield_vi, optimizer=optax.adam(1e-2), likelihood_scale=0.0)
    with pytest.raises(ValueError, match="meanfield_vi"):
        a.vi(blackjax.fullrank_vi, optimizer=optax.adam(1e-2))
    with pytest.raises(TypeError, match="optax"):
        a.vi(blackjax.meanfield_vi, optimizer="adam")
