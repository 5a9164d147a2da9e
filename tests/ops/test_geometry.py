"""Point-to-object metrics on hand-made cases, and their broadcasting, bounds and generation."""

import math

import numpy as np
import pytest
import torch

from deepclust_cli.ops.geometry import FAMILIES, METRICS, brute_force_nearest, family


def distance(kind: str, point, obj) -> float:
    return float(family(kind).distance(torch.tensor(point, dtype=torch.float64), torch.tensor(obj, dtype=torch.float64)))


@pytest.mark.parametrize(
    "point, expected",
    [((3.0, 0.0), 2.0), ((2.0, 2.0), 1.0), ((0.5, -0.5), 0.0), ((1.0, 0.0), 0.0), ((-1.5, 4.0), 3.0)],
)
def test_axis_aligned_square_is_l_infinity(point, expected):
    assert distance("squares", point, (0.0, 0.0, 2.0, 0.0)) == pytest.approx(expected)


def test_rotated_square_measures_in_its_own_frame():
    # Side 2 rotated by 45°: its corners sit at distance √2 along the axes.
    square = (1.0, 1.0, 2.0, math.pi / 4)
    assert distance("squares", (1.0 + math.sqrt(2), 1.0), square) == pytest.approx(0.0, abs=1e-12)
    # (3, 1) is offset (2, 0); in the square's frame that is (√2, −√2): L∞ √2 minus the half side 1.
    assert distance("squares", (3.0, 1.0), square) == pytest.approx(math.sqrt(2) - 1)
    assert distance("squares", (1.0, 1.0), square) == 0.0


def test_square_closest_point_lies_on_the_square_at_the_metric_distance():
    torch.manual_seed(0)
    squares = family("squares").generate(50, 10.0, 0.5, 2.0, torch.Generator().manual_seed(1)).double()
    points = torch.rand(50, 2, dtype=torch.float64) * 10
    closest = family("squares").closest_point(points, squares)
    assert torch.allclose(family("squares").distance(closest, squares), torch.zeros(50, dtype=torch.float64), atol=1e-9)
    cos, sin = squares[:, 3].cos(), squares[:, 3].sin()
    offset = points - closest
    local = torch.stack([cos * offset[:, 0] + sin * offset[:, 1], cos * offset[:, 1] - sin * offset[:, 0]], dim=1)
    assert torch.allclose(local.abs().amax(dim=1), family("squares").distance(points, squares), atol=1e-9)


def world(point, square) -> float:
    return float(family("squares", "world").distance(torch.tensor(point, dtype=torch.float64), torch.tensor(square, dtype=torch.float64)))


def test_world_frame_square_distance_on_hand_cases():
    # Side 2 rotated by 45°: corners at (±√2, 0) and (0, ±√2), edges on |x| + |y| = √2.
    square = (0.0, 0.0, 2.0, math.pi / 4)
    assert world((3.0, 0.0), square) == pytest.approx(3 - math.sqrt(2))  # a corner is nearest
    assert world((2.0, 2.0), square) == pytest.approx(2 - math.sqrt(2) / 2)  # the box's corner meets an edge
    assert world((0.3, 0.2), square) == 0.0
    assert world((3.0, 1.0), (0.0, 0.0, 2.0, 0.0)) == pytest.approx(2.0)  # axis-aligned: the own-frame value


def test_world_frame_square_distance_matches_a_dense_boundary_search():
    squares = family("squares").generate(60, 10.0, 0.5, 3.0, torch.Generator().manual_seed(2)).double()
    points = torch.rand(60, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 16 - 3
    # 4 × 4,000 points along each square's boundary, plus its centre: outside, the L∞ minimum lies on the boundary.
    t = torch.linspace(-0.5, 0.5, 4000, dtype=torch.float64)
    edge_u = torch.cat([t, t, torch.full_like(t, -0.5), torch.full_like(t, 0.5), torch.zeros(1, dtype=torch.float64)])
    edge_v = torch.cat([torch.full_like(t, -0.5), torch.full_like(t, 0.5), t, t, torch.zeros(1, dtype=torch.float64)])
    cos, sin, side = squares[:, 3:].cos(), squares[:, 3:].sin(), squares[:, 2:3]
    x = squares[:, :1] + side * (cos * edge_u - sin * edge_v)
    y = squares[:, 1:2] + side * (sin * edge_u + cos * edge_v)
    dense = torch.maximum((x - points[:, :1]).abs(), (y - points[:, 1:]).abs()).amin(dim=1)
    inside = family("squares").distance(points, squares) == 0  # the own frame says which points are inside
    dense = torch.where(inside, torch.zeros_like(dense), dense)
    exact = family("squares", "world").distance(points, squares)
    assert (~inside).sum() > 40
    assert torch.allclose(exact, dense, rtol=1e-3, atol=1e-3 * float(side.min()))
    assert not torch.allclose(exact, family("squares").distance(points, squares), rtol=1e-2)  # not the own-frame metric


def test_world_frame_closest_point_lies_on_the_square_at_the_world_distance():
    shape = family("squares", "world")
    squares = shape.generate(80, 10.0, 0.5, 2.0, torch.Generator().manual_seed(4)).double()
    squares[:40, 3] = torch.tensor([0.0, math.pi / 4, math.pi / 2, 0.0]).repeat(10)  # the reference file's rotations
    points = torch.rand(80, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 14 - 2
    closest = shape.closest_point(points, squares)
    assert torch.allclose(shape.distance(closest, squares), torch.zeros(80, dtype=torch.float64), atol=1e-9)
    assert torch.allclose((points - closest).abs().amax(dim=1), shape.distance(points, squares), atol=1e-9)
    matrix = shape.closest_point(points[:5, None], squares[None])
    assert matrix.shape == (5, 80, 2) and torch.allclose(matrix[3], shape.closest_point(points[3].expand(80, 2), squares))


def test_the_reference_corner_metric_is_the_nearest_corner_and_never_below_the_exact_one():
    square = (0.0, 0.0, 2.0, math.pi / 4)  # corners at (±√2, 0) and (0, ±√2)
    corners = family("squares", "corners")
    point = torch.tensor([2.0, 2.0], dtype=torch.float64)
    assert float(corners.distance(point, torch.tensor(square, dtype=torch.float64))) == pytest.approx(2.0)  # an edge is nearer: 1.29
    assert float(corners.distance(torch.tensor([3.0, 0.0], dtype=torch.float64), torch.tensor(square, dtype=torch.float64))) == pytest.approx(3 - math.sqrt(2))
    squares = family("squares").generate(100, 10.0, 0.5, 3.0, torch.Generator().manual_seed(6)).double()
    points = torch.rand(100, 2, generator=torch.Generator().manual_seed(7), dtype=torch.float64) * 14 - 2
    reference, exact = corners.distance(points, squares), family("squares", "world").distance(points, squares)
    assert (reference >= exact - 1e-12).all() and (reference > exact + 1e-3).any()
    assert torch.equal(reference == 0, family("squares").distance(points, squares) == 0)  # 0 exactly inside
    closest = corners.closest_point(points, squares)
    assert torch.allclose((points - closest).abs().amax(dim=1), reference) and torch.allclose(family("squares").distance(closest, squares), torch.zeros(100, dtype=torch.float64), atol=1e-9)


def test_metric_choices_are_named():
    assert sorted(METRICS["squares"]) == ["corners", "frame", "world"] and family("squares", "frame") == family("squares")
    with pytest.raises(ValueError, match="squares have no metric 'euclid'; known: frame, world, corners"):
        family("squares", "euclid")
    with pytest.raises(ValueError, match="cuboids have no metric 'world'; known: only their own"):
        family("cuboids", "world")


@pytest.mark.parametrize("point, expected", [((0, 0, 5), 2.0), ((2, 3, 0), 1.0), ((0.5, -1.5, 2.5), 0.0), ((-4, 0, 0), 3.0)])
def test_cuboid_is_l_infinity_to_the_box(point, expected):
    assert distance("cuboids", point, (0, 0, 0, 2, 4, 6)) == pytest.approx(expected)


@pytest.mark.parametrize(
    "point, expected", [((1, 1), 1.0), ((3, 0), 1.0), ((-1, -1), math.sqrt(2)), ((1.5, 0), 0.0), ((2, -2), 2.0)]
)
def test_segment_2d_is_euclidean_to_the_clamped_projection(point, expected):
    assert distance("segments2d", point, (0, 0, 2, 0)) == pytest.approx(expected)


def test_degenerate_segment_is_a_point_and_3d_segments_clamp_too():
    assert distance("segments2d", (4, 5), (1, 1, 1, 1)) == pytest.approx(5.0)
    assert distance("segments3d", (0, 0, 5), (0, 0, 0, 0, 0, 2)) == pytest.approx(3.0)
    assert distance("segments3d", (1, 2, 1), (0, 0, 0, 0, 0, 2)) == pytest.approx(math.sqrt(5))


@pytest.mark.parametrize("point, expected", [((3, 0), 1.0), ((0, 3), 2.0), ((1, 0.5), 0.0), ((-2, 0), 0.0), ((0, -1.5), 0.5)])
def test_ellipse_on_the_axes(point, expected):
    assert distance("ellipses", point, (2, 1, 0, 0)) == pytest.approx(expected, abs=1e-9)


def test_ellipse_distance_matches_a_dense_boundary_search():
    rng = np.random.default_rng(0)
    ellipses = np.c_[rng.uniform(0.5, 3, 20), rng.uniform(0.5, 3, 20), rng.uniform(-5, 5, 20), rng.uniform(-5, 5, 20)]
    points = rng.uniform(-10, 10, size=(20, 2))
    angle = np.linspace(0, 2 * np.pi, 200001)
    for (a, b, h, k), (x, y) in zip(ellipses, points):
        inside = ((x - h) / a) ** 2 + ((y - k) / b) ** 2 <= 1
        direct = 0.0 if inside else np.hypot(h + a * np.cos(angle) - x, k + b * np.sin(angle) - y).min()
        assert distance("ellipses", (x, y), (a, b, h, k)) == pytest.approx(direct, abs=1e-6)


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_metrics_broadcast_to_a_queries_by_objects_matrix(kind):
    shape = family(kind)
    objects = shape.generate(7, 10.0, 0.5, 2.0, torch.Generator().manual_seed(0))
    points = torch.rand(5, shape.dim, generator=torch.Generator().manual_seed(1)) * 10
    matrix = shape.distance(points[:, None], objects[None])
    assert matrix.shape == (5, 7)
    for q in range(5):
        for o in range(7):
            assert float(matrix[q, o]) == pytest.approx(float(shape.distance(points[q], objects[o])), abs=1e-5)
    distances, _ = brute_force_nearest(points, objects, shape.distance, k=7, budget=7)  # one row per block
    assert torch.equal(distances, matrix.sort(dim=1).values)


@pytest.mark.parametrize("kind", sorted(FAMILIES))
def test_bounds_hold_every_closest_point_and_generation_is_seeded(kind):
    shape = family(kind)
    objects = shape.generate(200, 10.0, 0.5, 2.0, torch.Generator().manual_seed(3))
    assert torch.equal(objects, shape.generate(200, 10.0, 0.5, 2.0, torch.Generator().manual_seed(3)))
    assert objects.shape == (200, shape.n_params)
    low, high = shape.bounds(objects)
    points = torch.rand(200, shape.dim, generator=torch.Generator().manual_seed(4)) * 30 - 10
    closest = shape.closest_point(points, objects)
    assert ((closest >= low - 1e-4) & (closest <= high + 1e-4)).all()
    assert shape.invalid(objects) is None


def test_brute_force_nearest_in_blocks_equals_the_full_matrix():
    shape = family("squares")
    objects = shape.generate(300, 10.0, 0.1, 0.5, torch.Generator().manual_seed(0))
    points = torch.rand(40, 2, generator=torch.Generator().manual_seed(1)) * 10
    matrix = shape.distance(points[:, None], objects[None])
    distances, indices = brute_force_nearest(points, objects, shape.distance, k=5, budget=1000)
    expected = matrix.topk(5, dim=1, largest=False)
    assert torch.equal(distances, expected.values)
    assert torch.equal(matrix.gather(1, indices), expected.values)
    nearest, index = brute_force_nearest(points, objects, shape.distance, budget=1)
    assert torch.equal(nearest[:, 0], matrix.min(dim=1).values)


def test_invalid_objects_and_unknown_families_are_named():
    assert family("ellipses").invalid(torch.tensor([[1.0, 0.0, 0.0, 0.0]])) == "1 semi-axes not positive"
    assert family("squares").invalid(torch.tensor([[0.0, 0.0, -1.0, 0.0]])) == "1 side lengths negative"
    with pytest.raises(ValueError, match="unknown object type 'circles'; known types: squares, cuboids"):
        family("circles")
