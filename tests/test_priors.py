"""Built-in priors against scipy.stats log-densities, and validate_prior's error messages."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jno.bayesian import priors
from jno.bayesian.priors import validate_prior


@pytest.fixture(scope="module")
def tree():
    """A mixed pytree: matrices, a bias, a scalar, plus leaves every prior must ignore."""
    rng = np.random.default_rng(0)
    return {
        "w": jnp.asarray(rng.standard_normal((3, 4)) * 2.0, dtype=jnp.float32),
        "b": jnp.asarray(rng.standard_normal(4), dtype=jnp.float32),
        "s": jnp.asarray(0.7, dtype=jnp.float32),
        "conv": jnp.asarray(rng.standard_normal((2, 3, 5)), dtype=jnp.float32),
        "count": jnp.arange(5),  # integer leaf: ignored
        "flag": jnp.array([True, False]),  # bool leaf: ignored
        "rate": 0.1,  # Python scalar: ignored
        "act": jnp.tanh,  # function: ignored
        "missing": None,
    }


@pytest.fixture(scope="module")
def mlp():
    return eqx.nn.MLP(3, 2, 8, 2, key=jax.random.PRNGKey(1))


def float_leaves(t):
    return [
        np.asarray(leaf, dtype=np.float64)
        for leaf in jax.tree.leaves(eqx.filter(t, eqx.is_inexact_array))
    ]


def test_gaussian_is_the_normal_logpdf_sum(tree):
    expected = sum(stats.norm.logpdf(x, scale=2.5).sum() for x in float_leaves(tree))
    np.testing.assert_allclose(priors.gaussian(sigma=2.5)(tree), expected, rtol=1e-5)


def test_gaussian_default_sigma_is_ten(tree):
    expected = sum(stats.norm.logpdf(x, scale=10.0).sum() for x in float_leaves(tree))
    np.testing.assert_allclose(priors.gaussian()(tree), expected, rtol=1e-5)


def test_gaussian_fan_in_aware_scales_matrices_only(tree):
    expected = 0.0
    for x in float_leaves(tree):
        sigma = 2.5 / math.sqrt(x.shape[-1]) if x.ndim >= 2 else 2.5
        expected += stats.norm.logpdf(x, scale=sigma).sum()
    np.testing.assert_allclose(priors.gaussian(2.5, fan_in_aware=True)(tree), expected, rtol=1e-5)


def test_laplace_is_the_laplace_logpdf_sum(tree):
    expected = sum(stats.laplace.logpdf(x, scale=0.5).sum() for x in float_leaves(tree))
    np.testing.assert_allclose(priors.laplace(scale=0.5)(tree), expected, rtol=1e-5)


@pytest.mark.parametrize(("df", "scale"), [(4.0, 1.0), (2.5, 0.3), (30.0, 2.0)])
def test_student_t_is_the_t_logpdf_sum(tree, df, scale):
    expected = sum(stats.t.logpdf(x, df=df, scale=scale).sum() for x in float_leaves(tree))
    np.testing.assert_allclose(priors.student_t(df, scale)(tree), expected, rtol=1e-5)


@pytest.mark.parametrize("fan_in_aware", [True, False])
def test_layerwise_gaussian_on_an_equinox_mlp(mlp, fan_in_aware):
    prior = priors.layerwise_gaussian(base_sigma=2.0, default_sigma=0.5, fan_in_aware=fan_in_aware)
    expected = 0.0
    for layer in mlp.layers:
        w_sigma = 2.0 / math.sqrt(layer.in_features) if fan_in_aware else 2.0
        expected += stats.norm.logpdf(np.asarray(layer.weight), scale=w_sigma).sum()
        expected += stats.norm.logpdf(np.asarray(layer.bias), scale=0.5).sum()
    np.testing.assert_allclose(prior(mlp), expected, rtol=1e-5)


def test_gaussian_fan_in_uses_the_linear_input_size(mlp):
    # equinox Linear stores weight as (out, in): fan_in is in_features = shape[-1].
    expected = 0.0
    for layer in mlp.layers:
        expected += stats.norm.logpdf(
            np.asarray(layer.weight), scale=3.0 / math.sqrt(layer.in_features)
        ).sum()
        expected += stats.norm.logpdf(np.asarray(layer.bias), scale=3.0).sum()
    np.testing.assert_allclose(priors.gaussian(3.0, fan_in_aware=True)(mlp), expected, rtol=1e-5)


def test_masked_subset_sees_only_its_leaves(mlp):
    # .mask(M).bayesian() hands the prior the masked subset: unmasked leaves are None.
    mask = jax.tree.map(lambda _: False, mlp)
    mask = eqx.tree_at(
        lambda m: m.layers[-1], mask, replace=jax.tree.map(lambda _: True, mlp.layers[-1])
    )
    head = eqx.filter(mlp, mask)
    prior = priors.layerwise_gaussian()
    np.testing.assert_allclose(prior(head), prior(mlp.layers[-1]), rtol=1e-6)
    assert float(prior(head)) > float(prior(mlp))  # fewer negative terms


@pytest.mark.parametrize(
    "prior",
    [priors.gaussian(), priors.laplace(), priors.student_t(), priors.layerwise_gaussian()],
)
def test_no_float_leaves_give_zero(prior):
    assert float(prior({"n": jnp.arange(3), "none": None})) == 0.0
    assert prior({}).shape == ()


def test_priors_jit_and_differentiate(mlp):
    prior = priors.gaussian(sigma=2.0)
    value = eqx.filter_jit(prior)(mlp)
    np.testing.assert_allclose(value, prior(mlp), rtol=1e-6)
    grad = eqx.filter_grad(prior)(mlp)
    np.testing.assert_allclose(grad.layers[0].weight, -mlp.layers[0].weight / 4.0, rtol=1e-6)
    x = jnp.array([0.5, -2.0])
    np.testing.assert_allclose(
        jax.grad(priors.student_t(4.0, 1.0))(x), -(5.0 / 4.0) * x / (1 + x**2 / 4.0), rtol=1e-5
    )
    np.testing.assert_allclose(jax.grad(priors.laplace(0.5))(x), -jnp.sign(x) / 0.5)


def test_priors_are_hashable_values_with_a_readable_repr():
    assert priors.gaussian(2.0) == priors.gaussian(2.0)
    assert hash(priors.laplace(0.5)) == hash(priors.laplace(0.5))
    assert repr(priors.student_t(3.0, 0.1)) == "StudentT(df=3.0, scale=0.1)"


@pytest.mark.parametrize(
    ("factory", "kwargs", "match"),
    [
        (priors.student_t, {"df": 2.0}, "df must be a finite number > 2"),
        (priors.student_t, {"df": 1.0}, "df must be a finite number > 2"),
        (priors.student_t, {"df": float("inf")}, "df must be"),
        (priors.student_t, {"scale": 0.0}, "scale must be"),
        (priors.gaussian, {"sigma": -1.0}, "sigma must be"),
        (priors.gaussian, {"sigma": float("nan")}, "sigma must be"),
        (priors.laplace, {"scale": 0.0}, "scale must be"),
        (priors.layerwise_gaussian, {"base_sigma": 0.0}, "base_sigma must be"),
        (priors.layerwise_gaussian, {"default_sigma": -2.0}, "default_sigma must be"),
    ],
)
def test_invalid_hyperparameters(factory, kwargs, match):
    with pytest.raises(ValueError, match=match):
        factory(**kwargs)


def l_half_prior(p, scale=1.0):
    """The seed's custom L1/2 prior."""
    return (
        -sum(
            jnp.sum(jnp.sqrt(jnp.abs(leaf)))
            for leaf in jax.tree_util.tree_leaves(p)
            if hasattr(leaf, "dtype") and jnp.issubdtype(leaf.dtype, jnp.floating)
        )
        / scale
    )


@pytest.mark.parametrize(
    "prior",
    [priors.gaussian(), priors.layerwise_gaussian(), l_half_prior, lambda p: 0],
)
def test_validate_prior_accepts_scalar_priors(mlp, prior):
    validate_prior(prior, mlp, "model 'net'")


def test_validate_prior_errors_name_the_model(mlp):
    with pytest.raises(TypeError, match=r"model 'a': prior must be a callable"):
        validate_prior("gaussian", jnp.zeros(1), "model 'a'")
    with pytest.raises(TypeError, match=r"model 'net': the prior .* failed .*KeyError"):
        validate_prior(lambda p: p["missing"], {"w": jnp.zeros(2)}, "model 'net'")
    with pytest.raises(ValueError, match=r"model 'net': .* scalar log-density, got shape \(8, 3\)"):
        validate_prior(lambda p: p.layers[0].weight, mlp, "model 'net'")
    with pytest.raises(TypeError, match=r"model 'a': .* must return a scalar array, got tuple"):
        validate_prior(lambda p: (0.0, 1.0), jnp.zeros(1), "model 'a'")
    with pytest.raises(
        TypeError, match=r"model 'a': .* real-valued log-density, got dtype complex"
    ):
        validate_prior(lambda p: jnp.sum(p) * 1j, jnp.zeros(1), "model 'a'")
