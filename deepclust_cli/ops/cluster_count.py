"""How many clusters the data holds, before any training: the eigengap of the normalized Laplacian
of locally scaled affinities (self-tuning spectral clustering, Zelnik-Manor & Perona, NIPS 2004).

A graph of K well-separated groups has K eigenvalues of ``L_sym = I − D^{-1/2} W D^{-1/2}`` at
(or near) 0 and the (K+1)-th clearly above. The estimate is the K in the range with the largest
gap measured as a ratio, ``λ_{K+1} / λ_K`` (eigenvalues floored at ``ZERO_EIGENVALUE`` × the largest one computed): the
eigenvalues of the bulk grow with their index, so a difference ``λ_{K+1} − λ_K`` keeps growing
past the true K, while a ratio peaks where the near-zero eigenvalues end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deepclust_cli.ops.neighbors import knn

SCALE_NEIGHBOR = 7  # σ_i = distance to the 7th neighbor, the paper's local scale
ZERO_EIGENVALUE = 1e-3  # of the largest eigenvalue computed: smaller ones count as zeros
MAX_SAMPLES = 3000  # a seeded subsample keeps the dense eigendecomposition at about a second


@dataclass
class ClusterCountEstimate:
    n_clusters: int
    eigenvalues: np.ndarray  # the smallest eigenvalues of L_sym, ascending (up to the range's top + 1)
    low: int
    high: int


def estimate_n_clusters(x: torch.Tensor, low: int = 2, high: int = 20, seed: int = 0, max_samples: int = MAX_SAMPLES) -> ClusterCountEstimate:
    """The eigengap estimate of the number of clusters in the rows of ``x``, within ``[low, high]``.

    Affinities ``W_ij = exp(−d_ij² / (σ_i σ_j))`` between all pairs (``σ_i``: the distance to the
    ``SCALE_NEIGHBOR``-th neighbor), computed on a seeded random ``max_samples`` of the rows.
    """
    x = x.flatten(1).float()
    if len(x) > max_samples:
        keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_samples]
        x = x[keep.to(x.device)]
    n = len(x)
    high = min(high, n - 2)
    if high < low:
        raise ValueError(f"{n} samples are too few to estimate between {low} and {high} clusters")
    distances, _ = knn(x, min(SCALE_NEIGHBOR, n - 1))
    sigma = distances[:, -1].double().clamp(min=1e-12)
    points = x.double()
    affinity = torch.exp(-torch.cdist(points, points).square() / (sigma[:, None] * sigma[None, :]))
    affinity.fill_diagonal_(0.0)
    scale = affinity.sum(dim=1).clamp(min=1e-12).rsqrt()
    laplacian = torch.eye(n, dtype=torch.float64, device=x.device) - scale[:, None] * affinity * scale[None, :]
    eigenvalues = torch.linalg.eigvalsh(laplacian)[: high + 1].clamp(min=0).cpu().numpy()
    return ClusterCountEstimate(int(low + np.argmax(gap_ratios(eigenvalues, low, high))), eigenvalues, low, high)


def gap_ratios(eigenvalues: np.ndarray, low: int, high: int) -> np.ndarray:
    """``λ_{K+1} / λ_K`` for K = low..high, the eigenvalues (ascending, from λ_1) floored at
    ``ZERO_EIGENVALUE`` × the largest one given."""
    floored = np.maximum(np.asarray(eigenvalues, dtype=float), ZERO_EIGENVALUE * eigenvalues[-1])
    return floored[low : high + 1] / floored[low - 1 : high]
