"""Polygons, balls and constructive solid geometry: membership, areas, sampling, seeding.

Areas are Monte Carlo estimates (fraction of uniform bounding-box points inside x box
measure) compared with closed forms; each test states its Monte Carlo standard error (MCSE).
"""

import math

import numpy as np
import pytest
from scipy import stats

import jno

D = jno.domain


def _mc_area(geom, n, seed, lo=None, hi=None):
    """Monte Carlo measure of ``geom`` and its standard error."""
    glo, ghi = geom.bounds
    lo = glo if lo is None else np.asarray(lo, float)
    hi = ghi if hi is None else np.asarray(hi, float)
    rng = np.random.default_rng(seed)
    p = rng.uniform(lo, hi, size=(n, geom.dim))
    frac = geom.contains(p).mean()
    box = float(np.prod(hi - lo))
    return frac * box, math.sqrt(frac * (1 - frac) / n) * box


def _shoelace(v):
    v = np.asarray(v, float)
    x, y = v[:, 0], v[:, 1]
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _lens(r, d):
    """Area of the intersection of two disks of radius r whose centres are d apart."""
    return 2 * r**2 * math.acos(d / (2 * r)) - 0.5 * d * math.sqrt(4 * r**2 - d**2)


# ------------------------------------------------------------------ plate with a hole
C, R = np.array([0.5, 0.5]), 0.2


def _plate():
    return D.difference(D.rect(0.05), D.disk(0.05, center=C, radius=R))


def test_plate_with_hole_tags_and_grid():
    plate = _plate()
    assert (D.rect(0.05) - D.disk(0.05, center=C, radius=R)).tags == plate.tags
    assert {"interior", "boundary", "left", "right", "bottom", "top", "inner"} <= set(plate.tags)
    interior = plate.points("interior")
    dist = np.linalg.norm(interior - C, axis=1)
    assert np.all(dist >= R - 1e-12) and np.all((interior >= 0) & (interior <= 1))
    # Every grid node of the unit square off the closed hole is there, plus the hole's nodes.
    grid = D.rect(0.05).points("interior")
    assert interior.shape[0] == np.sum(np.linalg.norm(grid - C, axis=1) > R + 1e-9) + 25
    inner = plate.points("inner")
    np.testing.assert_allclose(np.linalg.norm(inner - C, axis=1), R, rtol=1e-12)
    np.testing.assert_allclose(plate.points("left")[:, 0], 0.0)
    boundary = plate.points("boundary")
    assert boundary.shape[0] == 80 + 25 and len(np.unique(boundary, axis=0)) == 105


def test_plate_with_hole_sampling():
    dom = jno.domain(constructor=_plate(), seed=3)
    n = 4000
    pts = {tag: dom.sample(tag, n) for tag in ("interior", "boundary", "inner", "top")}
    assert all(p.shape == (n, 2) for p in pts.values())
    pi = pts["interior"]
    assert np.all(np.linalg.norm(pi - C, axis=1) > R) and np.all((pi >= 0) & (pi <= 1))
    np.testing.assert_allclose(np.linalg.norm(pts["inner"] - C, axis=1), R, rtol=1e-12)
    np.testing.assert_allclose(pts["top"][:, 1], 1.0)
    pb = pts["boundary"]
    on_hole = np.abs(np.linalg.norm(pb - C, axis=1) - R) < 1e-9
    on_square = np.any(np.isclose(pb, 0) | np.isclose(pb, 1), axis=1)
    assert np.all(on_hole ^ on_square)
    # Uniform by length: the hole's share of the perimeter is 2πr / (4 + 2πr) = 0.239.
    p_hole = 2 * math.pi * R / (4 + 2 * math.pi * R)
    mcse = math.sqrt(p_hole * (1 - p_hole) / n)  # 6.7e-3
    assert abs(on_hole.mean() - p_hole) < 4 * mcse, on_hole.mean()
    # Uniform in area: the share of interior samples with x < 0.5 is exactly one half.
    left = (pi[:, 0] < 0.5).mean()
    assert abs(left - 0.5) < 4 * math.sqrt(0.25 / n), left


def test_plate_with_hole_area_monte_carlo():
    # Area 1 - π·0.04 = 0.8743; MCSE with 400 000 points: sqrt(p(1-p)/N) = 5.2e-4 = 0.06 %.
    area, mcse = _mc_area(_plate(), 400_000, seed=0)
    exact = 1 - math.pi * R**2
    assert mcse / exact < 1e-3
    assert abs(area - exact) / exact < 0.01, area
    # The rejection sampler hits the square at the rate of the area.
    assert abs(area - exact) < 5 * mcse


def test_union_and_intersection_of_two_disks_against_the_lens_formula():
    r, d = 1.0, 1.2
    a = D.disk(0.05, center=(0, 0), radius=r)
    b = D.disk(0.05, center=(d, 0), radius=r)
    lens = _lens(r, d)  # 0.9408
    union = a | b
    inter = a & b
    assert isinstance(D.union(a, b), type(union)) and D.intersection(a, b).tags == inter.tags
    # MCSE of both estimates with 400 000 points in boxes of area 6.4 and 1.6: < 0.1 %.
    u_area, u_se = _mc_area(union, 400_000, seed=1)
    i_area, i_se = _mc_area(inter, 400_000, seed=2)
    assert u_se / (2 * math.pi - lens) < 1e-3 and i_se / lens < 2e-3
    assert abs(u_area - (2 * math.pi - lens)) / (2 * math.pi - lens) < 0.01, u_area
    assert abs(i_area - lens) / lens < 0.01, i_area
    # Interior samples of the union fall in the lens at the rate lens / union area.
    n = 20_000
    p = union.sample("interior", n, np.random.default_rng(4))
    in_a = np.linalg.norm(p, axis=1) <= r
    in_b = np.linalg.norm(p - [d, 0], axis=1) <= r
    assert np.all(in_a | in_b)
    q = lens / (2 * math.pi - lens)
    assert abs((in_a & in_b).mean() - q) < 4 * math.sqrt(q * (1 - q) / n)
    # Boundaries: the union keeps each circle outside the other, the intersection inside.
    for geom, outside in ((union, True), (inter, False)):
        pb = geom.sample("boundary", 2000, np.random.default_rng(5))
        da, db = np.linalg.norm(pb, axis=1) - r, np.linalg.norm(pb - [d, 0], axis=1) - r
        on_a, on_b = np.abs(da) < 1e-9, np.abs(db) < 1e-9
        assert np.all(on_a | on_b)
        if outside:
            assert np.all(db[on_a] > 0) and np.all(da[on_b] > 0)
        else:
            assert np.all(db[on_a] < 0) and np.all(da[on_b] < 0)
        # By symmetry half the boundary is on each circle.
        assert abs(on_a.mean() - 0.5) < 4 * math.sqrt(0.25 / 2000)
    # Normals of the intersection's boundary are each circle's own outward normal.
    pts, nrm = inter.sample_with_normals("boundary", 500, np.random.default_rng(6))
    own = np.where((np.abs(np.linalg.norm(pts, axis=1) - r) < 1e-9)[:, None], pts, pts - [d, 0])
    np.testing.assert_allclose(nrm, own / r, atol=1e-12)


def test_coincident_edges_kept_once_or_dropped():
    # Two unit squares side by side: the shared edge x = 1 is inside the union.
    u = D.rect(0.1) | D.rect(0.1, x_range=(1, 2))
    b = u.points("boundary")
    assert not np.any(np.isclose(b[:, 0], 1) & (b[:, 1] > 1e-9) & (b[:, 1] < 1 - 1e-9))
    assert len(np.unique(np.round(b, 12), axis=0)) == len(b)
    pb = u.sample("boundary", 3000, np.random.default_rng(0))
    assert not np.any(np.isclose(pb[:, 0], 1) & (pb[:, 1] > 1e-9) & (pb[:, 1] < 1 - 1e-9))
    # Overlapping squares: the intersection [0.5, 1] x [0, 1] shares three edges with them;
    # the bottom edge is 0.5 / 3 of the perimeter and must be sampled once, not twice.
    inter = D.rect(0.1) & D.rect(0.1, x_range=(0.5, 1.5))
    n = 6000
    pb = inter.sample("boundary", n, np.random.default_rng(1))
    assert np.all((pb[:, 0] >= 0.5 - 1e-12) & (pb[:, 0] <= 1 + 1e-12))
    bottom = np.isclose(pb[:, 1], 0).mean()
    assert abs(bottom - 1 / 6) < 4 * math.sqrt((1 / 6) * (5 / 6) / n), bottom
    assert len(np.unique(np.round(inter.points("boundary"), 12), axis=0)) == len(
        inter.points("boundary")
    )
    # A notch cut into the top edge: the top between x = 0.4 and 0.6 is removed, and the
    # notch walls face into the notch.
    notch = D.rect(0.05) - D.rect(0.05, x_range=(0.4, 0.6), y_range=(0.5, 1.5))
    top = notch.points("top")
    assert not np.any((top[:, 0] > 0.4 + 1e-9) & (top[:, 0] < 0.6 - 1e-9))
    inner, n_in = notch.points("inner"), notch.normals("inner")
    walls = np.isclose(inner[:, 0], 0.4) & (inner[:, 1] > 0.5 + 1e-9)
    np.testing.assert_allclose(n_in[walls], [[1, 0]] * int(walls.sum()))
    floor = np.isclose(inner[:, 1], 0.5) & (inner[:, 0] > 0.4 + 1e-9) & (inner[:, 0] < 0.6 - 1e-9)
    np.testing.assert_allclose(n_in[floor], [[0, 1]] * int(floor.sum()))
    assert abs(_mc_area(notch, 200_000, 7)[0] - 0.9) < 0.01


def test_nested_csg_and_operator_forms():
    plate = (
        D.rect(0.05, (0, 2), (0, 1)) - D.disk(0.05, (0.5, 0.5), 0.2) - D.disk(0.05, (1.5, 0.5), 0.2)
    )
    inner = plate.points("inner")
    d1, d2 = np.linalg.norm(inner - [0.5, 0.5], axis=1), np.linalg.norm(inner - [1.5, 0.5], axis=1)
    assert np.all(np.isclose(d1, 0.2) | np.isclose(d2, 0.2))
    assert np.isclose(d1, 0.2).any() and np.isclose(d2, 0.2).any()
    area, se = _mc_area(plate, 200_000, seed=3)  # MCSE 2.5e-3 on 1.75 (0.15 %)
    exact = 2 - 2 * math.pi * 0.04
    assert abs(area - exact) / exact < 0.01
    p = plate.sample("inner", 1000, np.random.default_rng(0))
    assert np.all(
        np.isclose(
            np.minimum(
                np.linalg.norm(p - [0.5, 0.5], axis=1), np.linalg.norm(p - [1.5, 0.5], axis=1)
            ),
            0.2,
        )
    )


# ------------------------------------------------------------------ polygons
L_SHAPE = [(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]  # area 3, non-convex


def test_point_in_polygon_hand_checks():
    geom = D.polygon(L_SHAPE, 0.1)
    inside = [(0.5, 0.5), (1.5, 0.5), (0.5, 1.5), (0.99, 1.99), (1.99, 0.01), (0.5, 1.0)]
    outside = [(1.5, 1.5), (2.5, 0.5), (-0.1, 1.0), (1.01, 1.01), (0.5, 2.01), (3, 3)]
    on_edge = [(1.0, 1.5), (1.5, 1.0), (0.0, 0.0), (2.0, 0.5), (1.0, 1.0)]
    assert geom.contains(inside).all()
    assert not geom.contains(outside).any()
    assert geom.contains(on_edge).all()
    # A ray through a vertex (y = 1 passes vertex (2, 1) and (1, 1)) is counted right.
    assert geom.contains([(0.5, 1.0)]).all() and not geom.contains([(1.5, 1.0 + 1e-6)]).any()
    # The signed distance is exact: 0.25 to the nearest edge from (0.25, 0.5).
    np.testing.assert_allclose(geom.sdf(np.array([[0.25, 0.5], [1.5, 1.5]])), [-0.25, 0.5])
    # Grid nodes: strictly inside ones, then the boundary nodes.
    interior = geom.points("interior")
    assert geom.contains(interior).all()
    assert not np.any((interior[:, 0] > 1 + 1e-9) & (interior[:, 1] > 1 + 1e-9))
    assert geom.points("boundary").shape[0] == 80  # perimeter 8 / mesh 0.1
    assert geom.points("edge0").shape[0] == 21 and geom.points("edge2").shape[0] == 11


def test_polygon_area_monte_carlo_against_shoelace():
    hexagon = [(math.cos(t), 0.7 * math.sin(t)) for t in np.linspace(0, 2 * np.pi, 7)[:-1]]
    for vertices in (L_SHAPE, hexagon, L_SHAPE[::-1]):
        geom = D.polygon(vertices, 0.1)
        exact = _shoelace(vertices)
        assert np.isclose(geom.area, exact)
        area, se = _mc_area(geom, 300_000, seed=0)  # MCSE <= 0.1 % of the area
        assert se / exact < 1.5e-3
        assert abs(area - exact) / exact < 0.01, (area, exact)
    # Interior samples are uniform in area: the arm x > 1 holds 1/3 of the L.
    n = 12_000
    p = D.polygon(L_SHAPE, 0.1).sample("interior", n, np.random.default_rng(2))
    assert D.polygon(L_SHAPE, 0.1).contains(p).all()
    arm = (p[:, 0] > 1).mean()
    assert abs(arm - 1 / 3) < 4 * math.sqrt((2 / 9) / n), arm


def test_polygon_boundary_samples_proportional_to_edge_length():
    vertices = np.array([(0, 0), (3, 0), (3, 1), (1, 2), (0, 1)], float)
    geom = D.polygon(vertices, 0.1)
    lengths = np.linalg.norm(np.roll(vertices, -1, axis=0) - vertices, axis=1)
    n = 20_000
    p = geom.sample("boundary", n, np.random.default_rng(0))
    # Assign each sample to the edge it lies on (distance to the segment).
    a, d = vertices, np.roll(vertices, -1, axis=0) - vertices
    w = p[:, None, :] - a[None]
    t = np.clip(np.einsum("nmk,mk->nm", w, d) / (d**2).sum(1), 0, 1)
    dist = np.linalg.norm(w - t[..., None] * d[None], axis=2)
    assert np.all(dist.min(axis=1) < 1e-9)
    counts = np.bincount(dist.argmin(axis=1), minlength=5)
    expected = n * lengths / lengths.sum()
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < stats.chi2.ppf(0.999, df=4), (counts, expected)
    # One edge's tag samples only that edge.
    e3 = geom.sample("edge3", 500, np.random.default_rng(1))
    u, v = e3 - vertices[3], vertices[4] - vertices[3]
    np.testing.assert_allclose(u[:, 0] * v[1] - u[:, 1] * v[0], 0, atol=1e-12)


@pytest.mark.parametrize(
    "vertices, match",
    [
        ([(0, 0), (1, 0)], "at least 3 vertices"),
        ([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)], "coincide"),
        ([(0, 0), (1, 1), (1, 0), (0, 1)], "self-intersecting"),
        ([(0, 0), (1, 0), (2, 0)], "zero area"),
        ([(0, 0), (1, 0), (float("nan"), 1)], "finite"),
        ([[0, 0, 0], [1, 0, 0], [0, 1, 0]], "shape"),
        ([(0, 0), (2, 0), (2, 2), (2, 1), (0, 2)], "fold back|self-intersecting"),
    ],
)
def test_polygon_validation(vertices, match):
    with pytest.raises(ValueError, match=match):
        D.polygon(vertices, 0.1)


def test_geometry_validation_messages():
    cases = [
        (lambda: D.polygon(L_SHAPE, 0.0), "mesh_size"),
        (lambda: D.polygon(L_SHAPE, float("nan")), "mesh_size"),
        (lambda: D.disk(0.1, radius=0.0), "radius"),
        (lambda: D.disk(0.1, center=(0, float("nan"))), "center"),
        (lambda: D.ball(0.1, radius=-1.0), "radius"),
        (lambda: D.ball(0.1, center=(0, 0)), "center must be 3"),
        (lambda: D.rect(0.1, x_range=(0, float("nan"))), "finite"),
        (lambda: D.rect(0.1) - D.points(np.zeros((2, 2))), "no inside test"),
        (lambda: D.rect(0.1) | D.ball(0.2), "same dimension"),
        (lambda: D.rect(0.1) & D.rect(0.1, x_range=(2, 3)), "do not overlap"),
        (lambda: D.difference(D.rect(0.1), "disk"), "operand"),
        (lambda: D.rect(0.1, (0.4, 0.6), (0.4, 0.6)) - D.rect(0.1), "no grid node"),
    ]
    for make, match in cases:
        with pytest.raises(ValueError, match=match):
            make()


# ------------------------------------------------------------------ ball
def test_ball_grid_sampling_and_volume():
    c, r = np.array([0.0, 1.0, 2.0]), 0.8
    geom = D.ball(0.1, center=c, radius=r)
    assert geom.tags == ("interior", "boundary")
    sphere = geom.points("boundary")
    assert sphere.shape[0] == round(4 * math.pi * r**2 / 0.01)
    np.testing.assert_allclose(np.linalg.norm(sphere - c, axis=1), r, rtol=1e-12)
    assert np.all(np.linalg.norm(geom.points("interior") - c, axis=1) <= r * (1 + 1e-12))
    dom = jno.domain(constructor=geom)
    x, y, z, t = dom.variable("interior", sample=3000)
    p = x.pointset.coords.astype(float)
    assert t is None and np.all(np.linalg.norm(p - c, axis=1) <= r + 1e-6)
    # Uniform in volume: P(|p - c| < r/2) = 1/8.
    inner = (np.linalg.norm(p - c, axis=1) < r / 2).mean()
    assert abs(inner - 1 / 8) < 4 * math.sqrt((1 / 8) * (7 / 8) / 3000)
    pb = dom.sample("boundary", 3000)
    np.testing.assert_allclose(np.linalg.norm(pb - c, axis=1), r, rtol=1e-12)
    # Uniform on the sphere: the z-coordinate is uniform, so P(z > c_z + r/2) = 1/4.
    cap = (pb[:, 2] > c[2] + r / 2).mean()
    assert abs(cap - 0.25) < 4 * math.sqrt(0.1875 / 3000)
    vol, se = _mc_area(geom, 300_000, seed=0)  # MCSE 0.2 % of 2.14
    exact = 4 / 3 * math.pi * r**3
    assert abs(vol - exact) / exact < 0.01
    # CSG in 3-D works the same way: a box removes the half x > 0 of the ball.
    half = geom - D.box(0.1, [(0, 1), (0, 2), (1, 3)])
    vol_h, _ = _mc_area(half, 300_000, seed=1)
    assert abs(vol_h - 0.5 * exact) / exact < 0.01
    flat = half.points("inner")  # the cut face x = 0, facing +x
    np.testing.assert_allclose(flat[:, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(half.normals("inner"), [[1, 0, 0]] * flat.shape[0])


# ------------------------------------------------------------------ seeding
@pytest.mark.parametrize(
    "make",
    [
        lambda: D.polygon(L_SHAPE, 0.1),
        lambda: D.rect(0.05) - D.disk(0.05, center=(0.5, 0.5), radius=0.2),
        lambda: D.disk(0.1) | D.disk(0.1, center=(1, 0)),
        lambda: D.ball(0.2),
    ],
)
def test_seeded_sampling(make):
    def draw(seed):
        dom = jno.domain(constructor=make(), seed=seed)
        return dom.sample("interior", 64), dom.sample("boundary", 64), dom.sample("boundary", 64)

    a, b = draw(0), draw(0)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = draw(1)
    assert all(not np.allclose(u, v) for u, v in zip(a, c))
    assert not np.allclose(a[1], a[2])  # successive draws differ
