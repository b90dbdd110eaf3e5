"""Bad data and bad arguments raise at the call that receives them, naming the fix."""

import jax
import numpy as np
import pytest

import jno


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_data_rejected_at_variable(bad):
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))  # 11 points
    values = np.linspace(0.0, 1.0, 11)
    values[3] = bad
    with pytest.raises(ValueError, match=r"data 'u_obs'.*rows 3\b.*Drop those points") as err:
        dom.variable("u_obs", values)
    kind = "1 NaN and 0 infinite" if np.isnan(bad) else "0 NaN and 1 infinite"
    assert kind in str(err.value)


def test_non_finite_data_on_a_tag_counts_rows():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    values = np.zeros((2, 2))
    values[1, 0] = np.nan
    values[0, 1] = np.inf
    with pytest.raises(ValueError, match=r"data 'g'.*1 NaN and 1 infinite.*rows 0, 1"):
        dom.variable("g", values, tag="boundary")
    assert "g" not in dom.pointset("boundary").data  # nothing half-attached


def test_finite_data_still_attaches():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    u = dom.variable("u_obs", np.arange(11.0))
    np.testing.assert_array_equal(dom.pointset("interior").data["u_obs"][:, 0], np.arange(11.0))
    assert u is not None


def test_integer_data_is_not_a_finite_check_problem():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    dom.variable("label", np.arange(11))
    np.testing.assert_array_equal(dom.pointset("interior").data["label"][:, 0], np.arange(11))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_points_rejected(bad):
    pts = np.array([[0.0], [0.5], [bad], [1.0]])
    with pytest.raises(ValueError, match=r"points\(array\): 1 location.*rows 2\b.*drop those rows"):
        jno.domain.points(pts)


def test_non_finite_user_tag_rejected():
    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.1))
    with pytest.raises(ValueError, match=r"tag 'sensors': 1 point coordinate.*NaN or infinite"):
        dom.add_tag("sensors", np.array([0.2, np.nan]))


@pytest.mark.parametrize("shape", [(-1,), (2, -3), -2])
def test_negative_parameter_shape_is_a_value_error(shape):
    with pytest.raises(ValueError, match=r"jno.np.parameter\(shape=.*name='w'.*negative"):
        jno.np.parameter(shape, name="w")


@pytest.mark.parametrize("shape", [(1.5,), (2.0,), ("3",), 1.0, None, (True,)])
def test_non_integer_parameter_shape_is_a_type_error(shape):
    with pytest.raises(TypeError, match=r"jno.np.parameter\(shape=.*tuple of ints"):
        jno.np.parameter(shape, key=jax.random.PRNGKey(0))


def test_valid_parameter_shapes():
    assert jno.np.parameter(3).module.shape == (3,)
    assert jno.np.parameter((2, np.int64(4))).module.shape == (2, 4)
    assert jno.np.parameter([1]).module.shape == (1,)
    assert jno.np.parameter((0,)).module.shape == (0,)
