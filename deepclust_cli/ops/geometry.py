"""Geometric object families for GeoCluster: their parameters, point-to-object metric, closest
points, bounding boxes, seeded generation and outlines for plots.

Every metric broadcasts like an elementwise operation: ``distance(points[..., dim],
objects[..., n_params])`` has the broadcast shape of the two leading parts, so a queries × objects
matrix is ``distance(points[:, None], objects[None])`` and a per-pair list is ``distance(p, o)``.
A family may offer other metrics (``METRICS``); ``family(name, metric)`` returns it with one of them.

=============  ==========================  ===================================================
family         parameters                  metric
=============  ==========================  ===================================================
squares        x, y, side, rotation (rad)  L∞ in the square's own frame (``metric=frame``), in
                                           world coordinates (``metric=world``) or to the nearest
                                           corner (``metric=corners``, the reference's); 0 inside
cuboids        x, y, z, w, h, d (center,   L∞, axis-aligned; 0 inside
               full sizes)
segments2d/3d  both end points             Euclidean to the projection clamped to the segment
ellipses       a, b, h, k (semi-axes,      Euclidean to the filled, axis-aligned ellipse
               center)                     (0 inside); the foot point by bisection
=============  ==========================  ===================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Optional

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class ObjectFamily:
    """One kind of object: ``dim``-dimensional, described by ``n_params`` numbers per object."""

    name: str
    dim: int
    n_params: int
    layout: str
    distance: Callable[[Tensor, Tensor], Tensor]
    closest_point: Callable[[Tensor, Tensor], Tensor]
    bounds: Callable[[Tensor], tuple[Tensor, Tensor]]
    generate: Callable[[int, float, float, float, torch.Generator], Tensor]
    invalid: Callable[[Tensor], Optional[str]]  # why these objects are unusable, or None
    outline: Callable[[Tensor], Tensor]  # N × m × 2 polylines (2-D families only)


# -- squares -------------------------------------------------------------------------------------
CORNER_SIGNS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))  # a square's (or box's) corners, counter-clockwise


def _square_frame(points: Tensor, squares: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The point in the square's frame: ``(u, v) = R(−θ)(p − c)``, plus the half side, cos θ, sin θ."""
    cos, sin = torch.cos(squares[..., 3]), torch.sin(squares[..., 3])
    dx, dy = points[..., 0] - squares[..., 0], points[..., 1] - squares[..., 1]
    return cos * dx + sin * dy, cos * dy - sin * dx, squares[..., 2] / 2, cos, sin


def square_distance(points: Tensor, squares: Tensor) -> Tensor:
    """``max(0, max(|u|, |v|) − side/2)`` for ``(u, v)`` the point in the square's frame."""
    u, v, half, _, _ = _square_frame(points, squares)
    return (torch.maximum(u.abs(), v.abs()) - half).clamp_min(0)


def square_closest_point(points: Tensor, squares: Tensor) -> Tensor:
    """``c + R(θ)·clamp((u, v), ±side/2)``: nearest in the Euclidean and the L∞ sense alike."""
    u, v, half, cos, sin = _square_frame(points, squares)
    u, v = torch.maximum(torch.minimum(u, half), -half), torch.maximum(torch.minimum(v, half), -half)
    return torch.stack([squares[..., 0] + cos * u - sin * v, squares[..., 1] + sin * u + cos * v], dim=-1)


def square_world_distance(points: Tensor, squares: Tensor) -> Tensor:
    """L∞ in world coordinates, ``min_{s ∈ S} ‖p − s‖∞``, exactly and in closed form.

    ``d(p, S) ≤ r`` iff ``p ∈ S ⊕ r·B`` (B the unit L∞ ball, the square [−1, 1]²). A Minkowski sum
    of convex polygons is the intersection of the half-planes ``n·x ≤ h_S(n) + r·h_B(n)`` over the
    edge normals n of both, with support functions ``h_S(n) = c·n + (side/2)(|n·u| + |n·v|)`` (u, v the
    square's axes) and ``h_B(n) = ‖n‖₁``. By symmetry the normals are the world axes and u, v, so with
    ``q = p − c``, ``k = |cos θ| + |sin θ|`` and ``a = side/2``:

        d = max(0, |q_x| − a·k, |q_y| − a·k, (|q·u| − a)/k, (|q·v| − a)/k).

    At θ = 0 (mod 90°) this is the own-frame distance ``max(0, ‖q‖∞ − a)``; otherwise the two differ
    by up to a factor √2 either way. It is never above the L∞ distance to the nearest corner, which is
    what the reference's ``Linf_simple`` (PRigas96/GeoCluster, src/metrics.py) measures outside."""
    u, v, half, cos, sin = _square_frame(points, squares)
    k = cos.abs() + sin.abs()
    dx, dy = (points[..., 0] - squares[..., 0]).abs(), (points[..., 1] - squares[..., 1]).abs()
    axes = torch.maximum(dx, dy) - half * k
    edges = (torch.maximum(u.abs(), v.abs()) - half) / k
    return torch.maximum(axes, edges).clamp_min(0)


def square_world_closest_point(points: Tensor, squares: Tensor) -> Tensor:
    """A point of the square at L∞ distance ``d`` (world frame) from ``p``: the contact of the box
    ``p ± d`` with the square is a corner of the square (an axis normal binds) or a corner of the
    box (an edge normal binds), so the best of the 4 square corners and the 4 box corners clamped
    into the square (in its frame) is one; the nearest is not unique in general."""
    d = square_world_distance(points, squares)
    signs = torch.tensor(CORNER_SIGNS, dtype=points.dtype, device=points.device)
    shape = torch.broadcast_shapes(points.shape[:-1], squares.shape[:-1])
    box_corners = points[..., None, :] + d[..., None, None] * signs  # ... × 4 × 2
    cos, sin = torch.cos(squares[..., 3])[..., None], torch.sin(squares[..., 3])[..., None]
    half = (squares[..., 2] / 2)[..., None]
    center = squares[..., None, :2]
    offset = box_corners - center
    u = (cos * offset[..., 0] + sin * offset[..., 1]).clamp(-half, half)
    v = (cos * offset[..., 1] - sin * offset[..., 0]).clamp(-half, half)
    clamped = torch.stack([cos * u - sin * v, sin * u + cos * v], dim=-1) + center
    candidates = torch.cat([clamped.expand(*shape, 4, 2), _square_corners(squares).expand(*shape, 4, 2)], dim=-2)
    reach = (candidates - points[..., None, :]).abs().amax(dim=-1)
    best = reach.argmin(dim=-1)
    return candidates.gather(-2, best[..., None, None].expand(*shape, 1, 2)).squeeze(-2)


def _square_corners(squares: Tensor) -> Tensor:
    """The four corners, ``c + R(θ)·(±side/2, ±side/2)`` (… × 4 × 2)."""
    signs = torch.tensor(CORNER_SIGNS, dtype=squares.dtype, device=squares.device)
    cos, sin = torch.cos(squares[..., 3])[..., None], torch.sin(squares[..., 3])[..., None]
    local = signs * (squares[..., 2] / 2)[..., None, None]
    return torch.stack([cos * local[..., 0] - sin * local[..., 1], sin * local[..., 0] + cos * local[..., 1]], dim=-1) + squares[..., None, :2]


def square_corner_distance(points: Tensor, squares: Tensor) -> Tensor:
    """The reference's square metric (``Linf_simple``, PRigas96/GeoCluster src/metrics.py): 0 inside,
    else ``min_corner ‖p − corner‖∞`` — the corners only, so at or above the exact world-frame L∞
    (equal where a corner is nearest)."""
    inside = square_distance(points, squares) == 0
    reach = (points[..., None, :] - _square_corners(squares)).abs().amax(dim=-1).amin(dim=-1)
    return torch.where(inside, torch.zeros_like(reach), reach)


def square_corner_closest_point(points: Tensor, squares: Tensor) -> Tensor:
    """The point itself inside, else the corner nearest in L∞ (where ``square_corner_distance`` is attained)."""
    corners = _square_corners(squares)
    shape = torch.broadcast_shapes(points.shape[:-1], squares.shape[:-1])
    best = (points[..., None, :] - corners).abs().amax(dim=-1).argmin(dim=-1)
    nearest = corners.expand(*shape, 4, 2).gather(-2, best[..., None, None].expand(*shape, 1, 2)).squeeze(-2)
    inside = (square_distance(points, squares) == 0)[..., None]
    return torch.where(inside, points.expand(*shape, 2), nearest)


def square_bounds(squares: Tensor) -> tuple[Tensor, Tensor]:
    reach = squares[:, 2] / 2 * (squares[:, 3].cos().abs() + squares[:, 3].sin().abs())
    center = squares[:, :2]
    return center - reach[:, None], center + reach[:, None]


def square_outline(squares: Tensor) -> Tensor:
    corners = torch.tensor([[-1, -1], [1, -1], [1, 1], [-1, 1], [-1, -1]], dtype=squares.dtype) / 2
    cos, sin = squares[:, 3].cos()[:, None], squares[:, 3].sin()[:, None]
    local = corners[None] * squares[:, 2, None, None]
    x = squares[:, 0, None] + cos * local[..., 0] - sin * local[..., 1]
    y = squares[:, 1, None] + sin * local[..., 0] + cos * local[..., 1]
    return torch.stack([x, y], dim=-1)


def generate_squares(n: int, extent: float, size_min: float, size_max: float, generator: torch.Generator) -> Tensor:
    center = torch.rand(n, 2, generator=generator) * extent
    side = size_min + torch.rand(n, 1, generator=generator) * (size_max - size_min)
    rotation = torch.rand(n, 1, generator=generator) * (math.pi / 2)
    return torch.cat([center, side, rotation], dim=1)


# -- axis-aligned cuboids ------------------------------------------------------------------------
def cuboid_distance(points: Tensor, cuboids: Tensor) -> Tensor:
    """``max_i max(0, |p_i − c_i| − size_i/2)``."""
    return ((points - cuboids[..., :3]).abs() - cuboids[..., 3:] / 2).clamp_min(0).amax(dim=-1)


def cuboid_closest_point(points: Tensor, cuboids: Tensor) -> Tensor:
    low, high = cuboids[..., :3] - cuboids[..., 3:] / 2, cuboids[..., :3] + cuboids[..., 3:] / 2
    return torch.maximum(torch.minimum(points, high), low)


def cuboid_bounds(cuboids: Tensor) -> tuple[Tensor, Tensor]:
    return cuboids[:, :3] - cuboids[:, 3:] / 2, cuboids[:, :3] + cuboids[:, 3:] / 2


def generate_cuboids(n: int, extent: float, size_min: float, size_max: float, generator: torch.Generator) -> Tensor:
    center = torch.rand(n, 3, generator=generator) * extent
    sizes = size_min + torch.rand(n, 3, generator=generator) * (size_max - size_min)
    return torch.cat([center, sizes], dim=1)


# -- segments ------------------------------------------------------------------------------------
def segment_closest_point(points: Tensor, segments: Tensor) -> Tensor:
    """``a + t(b − a)`` with ``t = clamp((p − a)·(b − a)/‖b − a‖², 0, 1)`` (a point segment: ``a``)."""
    dim = points.shape[-1]
    start, end = segments[..., :dim], segments[..., dim:]
    direction = end - start
    squared = (direction * direction).sum(dim=-1)
    t = ((points - start) * direction).sum(dim=-1) / squared.clamp_min(torch.finfo(squared.dtype).tiny)
    return start + t.clamp(0, 1)[..., None] * direction


def segment_distance(points: Tensor, segments: Tensor) -> Tensor:
    return (points - segment_closest_point(points, segments)).square().sum(dim=-1).sqrt()


def segment_bounds(segments: Tensor) -> tuple[Tensor, Tensor]:
    dim = segments.shape[1] // 2
    start, end = segments[:, :dim], segments[:, dim:]
    return torch.minimum(start, end), torch.maximum(start, end)


def segment_generator(dim: int) -> Callable[[int, float, float, float, torch.Generator], Tensor]:
    def generate(n: int, extent: float, size_min: float, size_max: float, generator: torch.Generator) -> Tensor:
        start = torch.rand(n, dim, generator=generator) * extent
        direction = torch.randn(n, dim, generator=generator)
        direction = direction / direction.norm(dim=1, keepdim=True).clamp_min(1e-12)
        length = size_min + torch.rand(n, 1, generator=generator) * (size_max - size_min)
        return torch.cat([start, start + length * direction], dim=1)

    return generate


# -- ellipses ------------------------------------------------------------------------------------
ELLIPSE_BISECTION_STEPS = 60


def ellipse_closest_point(points: Tensor, ellipses: Tensor) -> Tensor:
    """The foot point on the filled ellipse ``(x−h)²/a² + (y−k)²/b² ≤ 1`` (the point itself inside).

    Outside, the foot point of ``y = |p − center|`` is ``x_i = e_i² y_i / (t + e_i²)`` where ``t > 0``
    is the root of ``F(t) = Σ_i (e_i y_i / (t + e_i²))² − 1`` (Eberly, "Distance from a point to an
    ellipse"); ``F`` decreases from ``F(0) > 0`` to ``F(max(e)·‖y‖) ≤ 0``, so bisection finds it.
    """
    semi = ellipses[..., :2]
    offset = points - ellipses[..., 2:]
    y = offset.abs()
    inside = ((y / semi).square().sum(dim=-1) <= 1)[..., None]
    low = torch.zeros_like(y[..., 0])
    high = semi.amax(dim=-1) * y.norm(dim=-1)
    squared_semi = semi.square()
    for _ in range(ELLIPSE_BISECTION_STEPS):
        middle = (low + high) / 2
        positive = ((semi * y) / (middle[..., None] + squared_semi)).square().sum(dim=-1) > 1
        low, high = torch.where(positive, middle, low), torch.where(positive, high, middle)
    t = (low + high) / 2
    foot = squared_semi * y / (t[..., None] + squared_semi)
    return torch.where(inside, points, ellipses[..., 2:] + foot * offset.sign())


def ellipse_distance(points: Tensor, ellipses: Tensor) -> Tensor:
    return (points - ellipse_closest_point(points, ellipses)).square().sum(dim=-1).sqrt()


def ellipse_bounds(ellipses: Tensor) -> tuple[Tensor, Tensor]:
    return ellipses[:, 2:] - ellipses[:, :2], ellipses[:, 2:] + ellipses[:, :2]


def ellipse_outline(ellipses: Tensor) -> Tensor:
    angle = torch.linspace(0, 2 * math.pi, 33, dtype=ellipses.dtype)
    x = ellipses[:, 2, None] + ellipses[:, 0, None] * angle.cos()
    y = ellipses[:, 3, None] + ellipses[:, 1, None] * angle.sin()
    return torch.stack([x, y], dim=-1)


def generate_ellipses(n: int, extent: float, size_min: float, size_max: float, generator: torch.Generator) -> Tensor:
    semi = size_min + torch.rand(n, 2, generator=generator) * (size_max - size_min)
    center = torch.rand(n, 2, generator=generator) * extent
    return torch.cat([semi, center], dim=1)


# -- validity ------------------------------------------------------------------------------------
def _negative_columns(columns: slice, what: str, strict: bool = False) -> Callable[[Tensor], Optional[str]]:
    def invalid(objects: Tensor) -> Optional[str]:
        values = objects[:, columns]
        bad = int((values <= 0).sum() if strict else (values < 0).sum())
        return f"{bad} {what} {'not positive' if strict else 'negative'}" if bad else None

    return invalid


def _always_valid(objects: Tensor) -> Optional[str]:
    return None


def _no_outline(objects: Tensor) -> Tensor:
    raise ValueError("only 2-D objects have outlines")


FAMILIES: dict[str, ObjectFamily] = {
    family.name: family
    for family in (
        ObjectFamily(
            "squares", 2, 4, "x, y, side, rotation", square_distance, square_closest_point, square_bounds,
            generate_squares, _negative_columns(slice(2, 3), "side lengths"), square_outline,
        ),
        ObjectFamily(
            "cuboids", 3, 6, "x, y, z (center), w, h, d (full sizes)", cuboid_distance, cuboid_closest_point,
            cuboid_bounds, generate_cuboids, _negative_columns(slice(3, 6), "sizes"), _no_outline,
        ),
        ObjectFamily(
            "segments2d", 2, 4, "x1, y1, x2, y2", segment_distance, segment_closest_point, segment_bounds,
            segment_generator(2), _always_valid, lambda segments: segments.reshape(-1, 2, 2),
        ),
        ObjectFamily(
            "segments3d", 3, 6, "x1, y1, z1, x2, y2, z2", segment_distance, segment_closest_point, segment_bounds,
            segment_generator(3), _always_valid, _no_outline,
        ),
        ObjectFamily(
            "ellipses", 2, 4, "a, b (semi-axes), h, k (center)", ellipse_distance, ellipse_closest_point,
            ellipse_bounds, generate_ellipses, _negative_columns(slice(0, 2), "semi-axes", strict=True), ellipse_outline,
        ),
    )
}


# Other metrics a family offers (the first is its own, in FAMILIES): name → (distance, closest point).
METRICS: dict[str, dict[str, tuple[Callable[[Tensor, Tensor], Tensor], Callable[[Tensor, Tensor], Tensor]]]] = {
    "squares": {
        "frame": (square_distance, square_closest_point),
        "world": (square_world_distance, square_world_closest_point),
        "corners": (square_corner_distance, square_corner_closest_point),
    },
}


def family(name: str, metric: Optional[str] = None) -> ObjectFamily:
    """The object family called ``name``, measured by ``metric`` (None: its own); a one-line error
    lists the known types or the family's metrics."""
    if name not in FAMILIES:
        raise ValueError(f"unknown object type '{name}'; known types: {', '.join(FAMILIES)}")
    if metric is None:
        return FAMILIES[name]
    known = METRICS.get(name, {})
    if metric not in known:
        raise ValueError(f"{name} have no metric '{metric}'; known: {', '.join(known) or 'only their own (metric=null)'}")
    distance, closest_point = known[metric]
    return replace(FAMILIES[name], distance=distance, closest_point=closest_point)


def distance_blocks(
    points: Tensor, objects: Tensor, metric: Callable[[Tensor, Tensor], Tensor], budget: int = 1 << 24
) -> Iterator[Tensor]:
    """``metric`` for every point × object, as consecutive row blocks of about ``budget`` pairs, so
    memory stays bounded however many points and objects there are."""
    rows = max(1, budget // max(len(objects), 1))
    for start in range(0, len(points), rows):
        yield metric(points[start : start + rows, None], objects[None])


def brute_force_nearest(
    points: Tensor, objects: Tensor, metric: Callable[[Tensor, Tensor], Tensor], k: int = 1, budget: int = 1 << 24
) -> tuple[Tensor, Tensor]:
    """The ``k`` nearest objects of every point by exhaustive search: distances and indices (Q × k,
    ascending), computed in row blocks of about ``budget`` point-object pairs."""
    k = min(k, len(objects))
    distances, indices = [], []
    for block in distance_blocks(points, objects, metric, budget):
        nearest = block.topk(k, dim=1, largest=False) if k > 1 else block.min(dim=1, keepdim=True)
        distances.append(nearest[0])
        indices.append(nearest[1])
    return torch.cat(distances), torch.cat(indices)
