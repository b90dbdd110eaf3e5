"""Domains: point counts and positions, tags, seeded sampling, data attachment, time axes."""

import numpy as np
import pytest

from jno.domain import Domain, domain
from jno.trace.node import Data, Variable


def test_line_nodes_and_tags():
    dom = domain(constructor=domain.line(mesh_size=0.01))
    x, t = dom.variable("interior")
    assert isinstance(dom, Domain)
    assert isinstance(x, Variable) and t is None
    assert x.var_name == "x" and x.index == 0 and x.shape == (1,)
    pts = dom.points("interior")
    assert pts.shape == (101, 1)
    np.testing.assert_allclose(pts[:, 0], np.linspace(0, 1, 101))
    np.testing.assert_allclose(dom.points("boundary")[:, 0], [0.0, 1.0])
    np.testing.assert_allclose(dom.points("left"), [[0.0]])
    np.testing.assert_allclose(dom.points("right"), [[1.0]])
    xb, _ = dom.variable("boundary")
    assert xb.pointset.size == 2


def test_line_custom_range():
    pts = domain(constructor=domain.line(mesh_size=0.5, x_range=(-1, 2))).points("interior")
    np.testing.assert_allclose(pts[:, 0], np.linspace(-1, 2, 7))


def test_rect_grid_edges_and_sides():
    dom = domain(constructor=domain.rect(mesh_size=0.05, x_range=(0, 1), y_range=(0, 2)))
    x, y, t = dom.variable("interior")
    assert (x.var_name, y.var_name, t) == ("x", "y", None)
    assert x.pointset is y.pointset and (x.index, y.index) == (0, 1)
    assert dom.points("interior").shape == (21 * 41, 2)
    boundary = dom.points("boundary")
    assert boundary.shape == (2 * 21 + 2 * 41 - 4, 2)
    assert len(np.unique(boundary, axis=0)) == len(boundary)
    on_edge = (
        np.isclose(boundary[:, 0], 0)
        | np.isclose(boundary[:, 0], 1)
        | np.isclose(boundary[:, 1], 0)
        | np.isclose(boundary[:, 1], 2)
    )
    assert on_edge.all()
    for side, axis, value, count in [
        ("left", 0, 0.0, 41),
        ("right", 0, 1.0, 41),
        ("bottom", 1, 0.0, 21),
        ("top", 1, 2.0, 21),
    ]:
        pts = dom.points(side)
        assert pts.shape == (count, 2)
        np.testing.assert_allclose(pts[:, axis], value)
    np.testing.assert_array_equal(dom.points("x0_min"), dom.points("left"))


def test_box_any_dimension():
    dom = domain(constructor=domain.box(mesh_size=0.25, ranges=[(0, 1)] * 3))
    x, y, z, t = dom.variable("interior")
    assert [v.var_name for v in (x, y, z)] == ["x", "y", "z"] and t is None
    assert dom.points("interior").shape == (125, 3)
    assert dom.points("boundary").shape == (125 - 27, 3)
    for side, axis, value in [("x2_min", 2, 0.0), ("back", 2, 1.0), ("top", 1, 1.0)]:
        pts = dom.points(side)
        assert pts.shape == (25, 3)
        np.testing.assert_allclose(pts[:, axis], value)
    names = [
        v.var_name
        for v in domain(constructor=domain.box(0.5, [(0, 1)] * 5)).variable("interior")[:-1]
    ]
    assert names == ["x", "y", "z", "x3", "x4"]


def test_disk_interior_and_circle():
    dom = domain(constructor=domain.disk(mesh_size=0.05, center=(1.0, -1.0), radius=0.5))
    center = np.array([1.0, -1.0])
    boundary = dom.points("boundary")
    np.testing.assert_allclose(np.linalg.norm(boundary - center, axis=1), 0.5, rtol=1e-12)
    assert len(boundary) == round(2 * np.pi * 0.5 / 0.05)
    interior = dom.points("interior")
    assert (np.linalg.norm(interior - center, axis=1) <= 0.5 + 1e-12).all()
    assert len(np.unique(interior.round(9), axis=0)) == len(interior)
    # ~ area / h^2 grid nodes strictly inside, plus the circle points
    assert (
        abs(len(interior) - len(boundary) - np.pi * 0.25 / 0.05**2) < 0.1 * np.pi * 0.25 / 0.05**2
    )


def test_points_constructor_interior_only():
    dom = domain(constructor=domain.points(np.array([[0.1], [0.5], [0.9]])))
    assert dom.tags == ("interior",)
    x, _ = dom.variable("interior")
    np.testing.assert_allclose(x.pointset.coords[:, 0], [0.1, 0.5, 0.9])
    with pytest.raises(ValueError, match="available tags: 'interior'"):
        dom.variable("boundary")


def test_repeated_calls_share_the_pointset():
    dom = domain(constructor=domain.rect(mesh_size=0.25))
    x1, _, _ = dom.variable("interior")
    x2, y2, _ = dom.variable("interior")
    assert x1.pointset is x2.pointset is y2.pointset
    xl, _, _ = dom.variable("left")
    assert xl.pointset is not x1.pointset


@pytest.mark.parametrize(
    "make, tag, inside",
    [
        (lambda: domain.line(0.1, x_range=(2, 3)), "interior", lambda p: (p >= 2) & (p <= 3)),
        (lambda: domain.line(0.1, x_range=(2, 3)), "boundary", lambda p: (p == 2) | (p == 3)),
        (
            lambda: domain.rect(0.1, (0, 1), (0, 2)),
            "top",
            lambda p: (p[:, 1] == 2) & (p[:, 0] >= 0) & (p[:, 0] <= 1),
        ),
        (
            lambda: domain.rect(0.1, (0, 1), (0, 2)),
            "boundary",
            lambda p: (
                np.isclose(p[:, 0], 0)
                | np.isclose(p[:, 0], 1)
                | np.isclose(p[:, 1], 0)
                | np.isclose(p[:, 1], 2)
            ),
        ),
        (
            lambda: domain.box(0.5, [(0, 1)] * 3),
            "interior",
            lambda p: ((p >= 0) & (p <= 1)).all(axis=1),
        ),
        (
            lambda: domain.disk(0.1, radius=2.0),
            "interior",
            lambda p: np.linalg.norm(p, axis=1) <= 2,
        ),
        (
            lambda: domain.disk(0.1, radius=2.0),
            "boundary",
            lambda p: np.isclose(np.linalg.norm(p, axis=1), 2),
        ),
        (lambda: domain.points(np.array([0.1, 0.5])), "interior", lambda p: np.isin(p, [0.1, 0.5])),
    ],
)
def test_sampled_points_lie_in_their_region(make, tag, inside):
    pts = domain(constructor=make()).sample(tag, 400)
    assert pts.shape[0] == 400
    assert np.all(inside(pts.squeeze(-1) if pts.shape[1] == 1 else pts))


def test_sampling_is_uniform():
    disk = domain(constructor=domain.disk(0.1)).sample("interior", 20000)
    # fraction inside radius 1/2 of a uniform disk is 1/4, at 4 binomial standard errors
    assert abs(np.mean(np.linalg.norm(disk, axis=1) < 0.5) - 0.25) < 4 * np.sqrt(
        0.25 * 0.75 / 20000
    )
    rect = domain(constructor=domain.rect(0.1, (0, 3), (0, 1))).sample("boundary", 20000)
    # perimeter 8: the bottom edge (length 3) gets 3/8 of the points
    assert abs(np.mean(rect[:, 1] == 0) - 3 / 8) < 4 * np.sqrt(3 / 8 * 5 / 8 / 20000)


def test_sampling_reproducible_and_fresh():
    def draws(seed):
        dom = domain(constructor=domain.rect(0.1), seed=seed)
        a, _, _ = dom.variable("interior", sample=50)
        b, _, _ = dom.variable("interior", sample=50)
        return a, b

    a, b = draws(0)
    a2, b2 = draws(0)
    c, _ = draws(1)
    assert a.pointset.size == 50
    np.testing.assert_array_equal(a.pointset.coords, a2.pointset.coords)
    np.testing.assert_array_equal(b.pointset.coords, b2.pointset.coords)
    assert a.pointset is not b.pointset
    assert not np.allclose(a.pointset.coords, b.pointset.coords)
    assert not np.allclose(a.pointset.coords, c.pointset.coords)


def test_sampling_ignores_global_numpy_rng():
    np.random.seed(1)
    first = domain(constructor=domain.line(0.1)).sample("interior", 10)
    np.random.seed(2)
    second = domain(constructor=domain.line(0.1)).sample("interior", 10)
    np.testing.assert_array_equal(first, second)


def test_bad_sample_size():
    dom = domain(constructor=domain.line(0.1))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            dom.variable("interior", sample=bad)


def test_attach_data():
    dom = domain(constructor=domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    u = np.sin(np.pi * dom.points("interior")[:, 0])
    d = dom.variable("u_obs", u, tag="interior")
    assert isinstance(d, Data)
    assert d.pointset is x.pointset and d.shape == (1,)
    np.testing.assert_allclose(d.pointset.data["u_obs"][:, 0], u, rtol=1e-6)
    v = dom.variable("v_obs", np.zeros((101, 3)))  # tag defaults to "interior"
    assert v.pointset is x.pointset and v.shape == (3,)


def test_attach_data_errors():
    dom = domain(constructor=domain.line(mesh_size=0.01))
    with pytest.raises(ValueError, match="leading axis must be the 101 points"):
        dom.variable("u_obs", np.zeros(100), tag="interior")
    with pytest.raises(ValueError, match="leading axis must be the 2 points"):
        dom.variable("u_obs", np.zeros(101), tag="boundary")
    dom.variable("u_obs", np.zeros(101))
    with pytest.raises(ValueError, match="already attached"):
        dom.variable("u_obs", np.ones(101))
    with pytest.raises(ValueError, match="sampled"):
        dom.variable("u_obs2", np.zeros(101), sample=10)
    with pytest.raises(TypeError, match="tag="):
        dom.variable("interior", tag="interior")


def test_unknown_tag_lists_available():
    dom = domain(constructor=domain.line(0.1))
    with pytest.raises(ValueError, match="'interior', 'boundary'.*'left', 'right'"):
        dom.variable("inside")
    with pytest.raises(ValueError, match="unknown tag 'top'"):
        dom.points("top")
    with pytest.raises(ValueError, match="unknown tag"):
        dom.variable("u", np.zeros(3), tag="nope")


def test_user_tags():
    dom = domain(constructor=domain.rect(0.25))
    dom.add_tag("sensors", np.array([[0.2, 0.3], [0.7, 0.1]]))
    assert dom.tags[-1] == "sensors"
    x, y, _ = dom.variable("sensors")
    np.testing.assert_allclose(x.pointset.coords, [[0.2, 0.3], [0.7, 0.1]])
    d = dom.variable("obs", np.array([1.0, 2.0]), tag="sensors")
    assert d.pointset is x.pointset
    assert np.isin(dom.sample("sensors", 20)[:, 0], [0.2, 0.7]).all()
    with pytest.raises(ValueError, match="already exists"):
        dom.add_tag("left", np.zeros((1, 2)))
    with pytest.raises(ValueError, match="shape"):
        dom.add_tag("bad", np.zeros((3, 3)))


def test_time_axis_product():
    dom = domain(constructor=domain.line(mesh_size=0.1), time=(0.0, 1.0, 11))
    x, t = dom.variable("interior")
    assert isinstance(t, Variable) and t.var_name == "t" and t.index == 1
    assert x.pointset is t.pointset and x.pointset.names == ("x", "t")
    pts = dom.points("interior")
    assert pts.shape == (11 * 11, 2)
    grid = pts.reshape(11, 11, 2)  # time-major: (nt, n_space, d)
    np.testing.assert_allclose(grid[:, :, 0], np.tile(np.linspace(0, 1, 11), (11, 1)))
    np.testing.assert_allclose(grid[:, :, 1], np.repeat(np.linspace(0, 1, 11)[:, None], 11, axis=1))
    assert dom.points("boundary").shape == (2 * 11, 2)
    initial = dom.points("initial")
    np.testing.assert_allclose(initial[:, 0], np.linspace(0, 1, 11))
    np.testing.assert_allclose(initial[:, 1], 0.0)
    xi, ti = dom.variable("initial")
    assert xi.pointset.size == 11
    samples = dom.sample("interior", 500)
    assert ((samples >= 0) & (samples <= 1)).all()
    np.testing.assert_allclose(dom.sample("initial", 20)[:, 1], 0.0)
    np.testing.assert_allclose(np.unique(dom.sample("left", 50)[:, 0]), [0.0])


def test_time_axis_user_tags():
    dom = domain(constructor=domain.line(0.5), time=(0.0, 2.0, 3))
    dom.add_tag("sensor", np.array([0.25]))  # spatial only: taken at every time node
    np.testing.assert_allclose(dom.points("sensor"), [[0.25, 0.0], [0.25, 1.0], [0.25, 2.0]])
    dom.add_tag("obs", np.array([[0.3, 0.7]]))  # explicit space-time point
    np.testing.assert_allclose(dom.points("obs"), [[0.3, 0.7]])


def test_bad_arguments():
    with pytest.raises(TypeError, match="geometry"):
        domain(constructor=np.zeros((3, 1)))
    with pytest.raises(ValueError, match="time"):
        domain(constructor=domain.line(0.1), time=(1.0, 0.0, 5))
    with pytest.raises(ValueError, match="mesh_size"):
        domain.line(mesh_size=0.0)
    with pytest.raises(ValueError, match="lo < hi"):
        domain.rect(0.1, x_range=(1, 0))


def test_public_entry_point():
    import jno

    dom = jno.domain(constructor=jno.domain.line(mesh_size=0.01))
    x, _ = dom.variable("interior")
    assert isinstance(dom, jno.domain.Domain) and x.pointset.size == 101
    sensors = jno.domain(constructor=jno.domain.points(np.array([[0.1], [0.5], [0.9]])))
    np.testing.assert_allclose(sensors.points("interior")[:, 0], [0.1, 0.5, 0.9])
