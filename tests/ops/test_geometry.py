"""Point-to-object metrics on hand-made cases, and their broadcasting, bounds and generation."""

import math

import numpy as np
import pytest
import torch

from deepclust_cli.ops.geometry import FAMILIES, brute_force_nearest, family


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
