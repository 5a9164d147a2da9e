"""k-means in torch, on the device the data lives on — the readout deep methods end with.

Lloyd's algorithm (Lloyd, 1982) from greedy k-means++ seeds (Arthur & Vassilvitskii, 2007, with
``2 + ⌊ln k⌋`` candidates per center as in scikit-learn), the best of ``n_init`` runs by inertia
``Σ_i min_k ‖x_i − μ_k‖²``. Distances go through the chunked exact search of
:mod:`deepclust_cli.ops.neighbors`, so memory stays bounded for millions of points and thousands of
centers. The ``kmeans`` baseline method keeps scikit-learn's implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from deepclust_cli.ops.neighbors import knn


@dataclass
class KMeansResult:
    centers: torch.Tensor  # k × d
    labels: torch.Tensor  # n, int64
    inertia: float
    iterations: int


def kmeans(
    x: torch.Tensor, k: int, *, n_init: int = 10, max_iter: int = 300, tol: float = 1e-4, seed: int = 0
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` groups; the best of ``n_init`` seeded runs.

    A run stops when the centers move less than ``tol`` × the mean per-feature variance of ``x``
    (summed squared shift, scikit-learn's rule) or after ``max_iter`` iterations. A cluster left
    empty takes the point farthest from its current center.
    """
    x = x.float()
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k-means needs 1 <= k <= n_samples={n}, got k={k}")
    generator = torch.Generator().manual_seed(seed)
    threshold = tol * float(x.var(dim=0, unbiased=False).mean()) if n > 1 else 0.0
    best = None
    for _ in range(n_init):
        result = _lloyd(x, _kmeans_plus_plus(x, k, generator), max_iter, threshold)
        if best is None or result.inertia < best.inertia:
            best = result
    return best


def assign(x: torch.Tensor, centers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest center of every row: (labels, squared distances)."""
    distances, nearest = knn(centers.to(x.device), 1, queries=x)
    return nearest[:, 0], distances[:, 0].square()


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """Greedy k-means++: each new center is the best of ``2 + ⌊ln k⌋`` points drawn with
    probability ∝ squared distance to the nearest center so far (the one lowering the potential most)."""
    n = len(x)
    trials = 2 + int(math.log(k))
    centers = x[torch.randint(n, (1,), generator=generator).to(x.device)]
    closest = (x - centers[0]).square().sum(dim=1)
    for _ in range(1, k):
        weights = closest.double().cpu()
        if float(weights.sum()) <= 0:  # fewer distinct points than centers: any point will do
            weights = torch.ones(n, dtype=torch.float64)
        candidates = torch.multinomial(weights, trials, replacement=True, generator=generator).to(x.device)
        # n × trials squared distances: the potential each candidate would leave.
        to_candidates = torch.cdist(x, x[candidates]).square()
        potentials = torch.minimum(closest.unsqueeze(1), to_candidates).sum(dim=0)
        choice = int(potentials.argmin())
        centers = torch.cat([centers, x[candidates[choice]].unsqueeze(0)])
        closest = torch.minimum(closest, to_candidates[:, choice])
    return centers


def _lloyd(x: torch.Tensor, centers: torch.Tensor, max_iter: int, threshold: float) -> KMeansResult:
    k = len(centers)
    for iteration in range(1, max_iter + 1):
        labels, squared = assign(x, centers)
        sums = torch.zeros_like(centers).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k)
        updated = sums / counts.clamp_min(1).unsqueeze(1).to(sums.dtype)
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            farthest = squared.topk(len(empty)).indices
            updated[empty] = x[farthest]
        shift = float((updated - centers).square().sum())
        centers = updated
        if shift <= threshold:
            break
    labels, squared = assign(x, centers)
    return KMeansResult(centers, labels, float(squared.sum()), iteration)
