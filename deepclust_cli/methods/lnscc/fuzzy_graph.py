"""The fuzzy kNN graph of LNSCC: UMAP's fuzzy simplicial set, built and sampled in torch.

LNSCC (Locally Normalized Soft Contrastive Clustering, Ma & Kim, IJCAI 2022) takes its positive
pairs from the fuzzy simplicial set of UMAP (McInnes, Healy & Melville, 2018, section 3 and
appendix): each point ``i`` gets a local scale — the distance ``ρ_i`` to its nearest neighbor and
a bandwidth ``σ_i`` — its directed kNN memberships ``w_ij = exp(−max(0, d_ij − ρ_i)/σ_i)`` are
symmetrized by the fuzzy union ``W + Wᵀ − W∘Wᵀ``, weak edges are pruned, and training draws edges
with probability proportional to their weight. The low-dimensional similarity
``q(d) = 1 / (1 + a·d^(2b))`` uses UMAP's fitted ``(a, b)``.

Callers bring the kNN themselves (:func:`deepclust_cli.ops.neighbors.knn`: ``distances`` float32
``N × k`` ascending, ``indices`` int64 ``N × k``, self excluded). Everything stays on the input's
device and costs ``O(N·k)`` memory: the ``N × N`` matrix never exists.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import torch

MIN_K_DIST_SCALE = 1e-3  # UMAP's floor on σ, relative to the mean kNN distance


def _check_knn(distances: torch.Tensor, name: str = "distances") -> None:
    if distances.ndim != 2:
        raise ValueError(f"{name} must be 2-D (points × k), got shape {tuple(distances.shape)}")
    if distances.shape[1] < 2:
        raise ValueError(f"k must be >= 2 (log2 k is the bandwidth target), got {distances.shape[1]}")


def local_scales(
    distances: torch.Tensor, n_iter: int = 64, tolerance: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point ``(ρ, σ)`` (UMAP's ``smooth_knn_dist`` with ``local_connectivity = 1``), vectors of length N.

    ``ρ_i`` is the smallest positive distance in row ``i`` (0 when the whole row is 0), so exact
    duplicates do not pin the scale at zero. ``σ_i`` solves
    ``Σ_j exp(−max(0, d_ij − ρ_i)/σ_i) = log2 k`` with ``k = distances.shape[1]`` — every column
    counts, since self is already excluded (UMAP's ``k`` counts self, so its sum skips column 0).
    The left side grows monotonically from 1 (σ → 0) to ``k`` (σ → ∞), so a bisection finds it:
    from ``lo = 0, hi = ∞, σ = 1``, a sum above target sets ``hi = σ, σ = (lo + hi)/2``, one below
    sets ``lo = σ`` and doubles ``σ`` while ``hi`` is infinite, else ``σ = (lo + hi)/2``. All rows
    run at once in float64 for ``n_iter`` steps; a row stops once ``|sum − log2 k| < tolerance``.

    UMAP's floor then applies: ``σ_i ≥ 1e-3 · mean_j d_ij`` when ``ρ_i > 0``, else
    ``σ_i ≥ 1e-3 · mean of all distances``. It binds where ``log2 k`` or more neighbors sit at
    distance ``≤ ρ_i`` (duplicates, ties): their terms alone reach the target, the bisection drives
    σ towards 0, and the floor keeps the farther neighbors' memberships from underflowing to 0.
    Both outputs have ``distances``' dtype and device.
    """
    _check_knn(distances)
    if n_iter < 1:
        raise ValueError(f"n_iter must be >= 1, got {n_iter}")
    d = distances.double()
    positive = torch.where(d > 0, d, math.inf).amin(dim=1)
    rho = torch.where(torch.isinf(positive), 0.0, positive)
    gap = (d - rho[:, None]).clamp_min(0)
    target = math.log2(d.shape[1])

    lo = torch.zeros_like(rho)
    hi = torch.full_like(rho, math.inf)
    mid = torch.ones_like(rho)
    active = torch.ones_like(rho, dtype=torch.bool)
    for _ in range(n_iter):
        total = torch.exp(-gap / mid[:, None]).sum(dim=1)
        active &= (total - target).abs() >= tolerance
        if not active.any():
            break
        above = total > target
        # Both candidates use the old bounds: "above" moves only hi, "below" moves only lo.
        grown = torch.where(torch.isinf(hi), mid * 2, (mid + hi) / 2)
        next_mid = torch.where(above, (lo + mid) / 2, grown)
        hi = torch.where(active & above, mid, hi)
        lo = torch.where(active & ~above, mid, lo)
        mid = torch.where(active, next_mid, mid)

    floor = MIN_K_DIST_SCALE * torch.where(rho > 0, d.mean(dim=1), d.mean())
    sigma = torch.maximum(mid, floor)
    return rho.to(distances.dtype), sigma.to(distances.dtype)


def membership_strengths(distances: torch.Tensor, rho: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Directed memberships ``w_ij = exp(−max(0, d_ij − ρ_i)/σ_i)``, ``N × k`` in ``distances``' dtype.

    The nearest positive neighbor (and any duplicate) gets ``w = 1``. With ``(ρ, σ)`` from
    :func:`local_scales` each row sums to ``log2 k``, up to the bisection tolerance and the σ floor.
    Computed in float64 so the row sums hold to float32 precision.
    """
    _check_knn(distances)
    if rho.shape != (len(distances),) or sigma.shape != (len(distances),):
        raise ValueError(
            f"rho and sigma must have shape ({len(distances)},), got {tuple(rho.shape)} and {tuple(sigma.shape)}"
        )
    gap = (distances.double() - rho.double()[:, None]).clamp_min(0)
    return torch.exp(-gap / sigma.double()[:, None]).to(distances.dtype)


@dataclass
class Graph:
    """A symmetric sparse weighted graph on ``n`` nodes as a deduplicated edge list.

    ``rows``, ``cols`` (int64) and ``weights`` (float32) are parallel vectors, sorted by
    ``(row, col)``. Each undirected edge appears twice (``i → j`` and ``j → i``) with the same
    weight; there are no self loops and no zero weights.
    """

    rows: torch.Tensor
    cols: torch.Tensor
    weights: torch.Tensor
    n: int


def fuzzy_union(indices: torch.Tensor, weights: torch.Tensor, n: int) -> Graph:
    """Symmetrize directed kNN weights ``W`` by the fuzzy union ``W + Wᵀ − W∘Wᵀ``.

    Row ``i`` of ``W`` holds ``weights[i]`` at columns ``indices[i]`` (``indices`` ``N × k``,
    entries in ``[0, n)``; memberships in ``[0, 1]``). Both directions of every entry are keyed by
    ``i·n + j`` and grouped; a group's weight is ``1 − Π(1 − w)``, which is ``a + b − ab`` for an
    edge listed both ways and ``a`` for a one-sided edge. The product runs in float64 so that
    ``1 − (1 − a)`` keeps small weights' precision. Self loops (an index equal to its row) and
    zero weights (exp underflow; UMAP's ``eliminate_zeros``) are not edges and are dropped.
    """
    if indices.ndim != 2 or indices.shape != weights.shape:
        raise ValueError(
            f"indices and weights must be 2-D of the same shape, got {tuple(indices.shape)} and {tuple(weights.shape)}"
        )
    if indices.numel() and (indices.min() < 0 or indices.max() >= n):
        raise ValueError(f"indices must lie in [0, {n}), got range [{indices.min().item()}, {indices.max().item()}]")
    if weights.numel() and (weights.min() < 0 or weights.max() > 1):
        raise ValueError("weights must be fuzzy memberships in [0, 1]")
    source = torch.arange(len(indices), device=indices.device).repeat_interleave(indices.shape[1])
    target = indices.reshape(-1)
    w = weights.reshape(-1).double()
    keep = (source != target) & (w > 0)
    source, target, w = source[keep], target[keep], w[keep]

    keys = torch.cat([source * n + target, target * n + source])
    keys, group = torch.unique(keys, sorted=True, return_inverse=True)
    complement = torch.ones(len(keys), dtype=torch.float64, device=w.device)
    complement.scatter_reduce_(0, group, torch.cat([1 - w, 1 - w]), reduce="prod")
    return Graph(keys // n, keys % n, (1 - complement).float(), n)


def _check_fraction(fraction: float) -> None:
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")


def prune(graph: Graph, fraction: float = 1 / 200) -> Graph:
    """Drop edges with ``w < fraction · max w`` (the reference, after UMAP, uses ``max / 200``:
    UMAP's 200-epoch schedule would sample such an edge less than once).

    Both directions of an edge carry the same weight, so the result stays symmetric.
    """
    _check_fraction(fraction)
    if len(graph.weights) == 0:
        return graph
    keep = graph.weights >= fraction * graph.weights.max()
    return Graph(graph.rows[keep], graph.cols[keep], graph.weights[keep], graph.n)


def sample_edges(graph: Graph, count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` directed edges ``(heads, tails)``, drawn with replacement with ``P(e) = w_e / Σ w``.

    Inverse CDF: ``C = cumsum(w)`` in float64 and ``u ~ U[0, C_last)``; edge ``e`` is the one with
    ``C_{e−1} ≤ u < C_e`` (``torch.searchsorted``). Unlike ``torch.multinomial`` this has no limit
    of 2^24 categories, and unlike the reference it needs no edge list repeated ``int(200·w)``
    times. The uniforms come from ``generator`` on the CPU (so a seed gives the same draws on
    every device) and then move to the graph's device, where the result lies.
    """
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    if len(graph.weights) == 0:
        raise ValueError("cannot sample edges from an empty graph")
    cdf = torch.cumsum(graph.weights.double(), dim=0)
    uniforms = torch.rand(count, generator=generator, dtype=torch.float64, device="cpu").to(cdf.device) * cdf[-1]
    # The last boundary is left out: every u below it lands in the last edge without a clamp.
    edge = torch.searchsorted(cdf[:-1], uniforms, right=True)
    return graph.rows[edge], graph.cols[edge]


def fit_ab(min_dist: float, spread: float = 1.0) -> tuple[float, float]:
    """``(a, b)`` of ``q(d) = 1 / (1 + a·d^(2b))`` (UMAP's ``find_ab_params``).

    Least squares (``scipy.optimize.curve_fit``) against the target ``1`` for ``d < min_dist`` and
    ``exp(−(d − min_dist)/spread)`` beyond, on 300 evenly spaced ``d`` in ``[0, 3·spread]``.
    ``min_dist = 0.1, spread = 1`` gives ``a ≈ 1.577, b ≈ 0.895``.
    """
    if min_dist < 0:
        raise ValueError(f"min_dist must be >= 0, got {min_dist}")
    if spread <= 0:
        raise ValueError(f"spread must be > 0, got {spread}")

    def curve(d: np.ndarray, a: float, b: float) -> np.ndarray:
        return 1.0 / (1.0 + a * d ** (2 * b))

    d = np.linspace(0, 3 * spread, 300)
    target = np.where(d < min_dist, 1.0, np.exp(-(d - min_dist) / spread))
    (a, b), _ = scipy.optimize.curve_fit(curve, d, target)
    return float(a), float(b)


def fuzzy_knn_graph(distances: torch.Tensor, indices: torch.Tensor, prune_fraction: float = 1 / 200) -> Graph:
    """The whole graph step on a self-kNN (``N`` nodes): :func:`local_scales` →
    :func:`membership_strengths` → :func:`fuzzy_union` → :func:`prune`."""
    if distances.shape != indices.shape:
        raise ValueError(
            f"distances and indices must have the same shape, got {tuple(distances.shape)} and {tuple(indices.shape)}"
        )
    _check_fraction(prune_fraction)  # before the work, not after it
    rho, sigma = local_scales(distances)
    weights = membership_strengths(distances, rho, sigma)
    return prune(fuzzy_union(indices, weights, len(distances)), prune_fraction)
