"""SpectralNet's output layer: orthonormalize a batch so that YᵀY/m = I (Shaham et al., 2018, §3.1)."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from deepclust_cli.nets.mlp import mlp

# A batch is treated as rank-deficient when R's smallest diagonal entry is this small relative to
# its largest: R⁻¹ would then amplify noise by more than 1e6.
RANK_TOLERANCE = 1e-6


def orthonormalizer(y: torch.Tensor, method: str = "qr", ridge: float = 1e-4) -> tuple[torch.Tensor, bool]:
    """The k×k matrix W with (ỸW)ᵀ(ỸW)/m = I for a batch Ỹ (m×k), and whether Ỹ was rank-deficient.

    ``qr``: Ỹ = QR with R's diagonal made positive, W = √m·R⁻¹. ``cholesky``: ỸᵀỸ = LLᵀ,
    W = √m·L⁻ᵀ — the same W in exact arithmetic, the older variant of the paper. When Ỹ is
    rank-deficient (or the factorization fails), the factorization is repeated on ỸᵀỸ + λI with
    λ = ``ridge``·trace(ỸᵀỸ)/k — for QR by factorizing Ỹ stacked over √λ·I — so W stays finite
    and YᵀY/m = I holds up to the ridge instead of the run crashing. Computed in float64 and
    differentiable in Ỹ.
    """
    m, k = y.shape
    y64 = y.to(torch.float64)
    r, deficient = _triangular_factor(y64, method)
    if deficient:
        lam = ridge * float((y64.detach() ** 2).sum()) / k + torch.finfo(torch.float64).tiny
        eye = torch.eye(k, dtype=torch.float64, device=y.device)
        if method == "qr":
            r = torch.linalg.qr(torch.cat([y64, math.sqrt(lam) * eye]))[1]
        else:
            r = torch.linalg.cholesky(y64.T @ y64 + lam * eye).T
        r = r * torch.sign(torch.diagonal(r)).unsqueeze(1)
    eye = torch.eye(k, dtype=torch.float64, device=y.device)
    w = math.sqrt(m) * torch.linalg.solve_triangular(r, eye, upper=True)
    return w.to(y.dtype), deficient


def _triangular_factor(y: torch.Tensor, method: str) -> tuple[torch.Tensor, bool]:
    """Upper-triangular R with RᵀR = ỸᵀỸ and a positive diagonal; flags rank deficiency."""
    if method == "qr":
        r = torch.linalg.qr(y)[1]  # the reduced mode: only it has a derivative
    else:
        lower, info = torch.linalg.cholesky_ex(y.T @ y)
        if int(info) != 0:
            return lower.T, True
        r = lower.T
    diagonal = torch.diagonal(r).detach().abs()
    r = r * torch.sign(torch.diagonal(r)).detach().unsqueeze(1)
    deficient = not bool(torch.isfinite(diagonal).all()) or float(diagonal.min()) <= RANK_TOLERANCE * float(diagonal.max())
    return r, deficient


class SpectralNetwork(nn.Module):
    """MLP (LeakyReLU hidden layers, tanh output of width k) followed by the orthonormalization layer.

    ``fit_orthonorm(raw)`` computes W from a batch's raw outputs Ỹ (the orthogonalization step),
    keeps a detached copy and returns W itself, so a training step may differentiate through it;
    ``forward`` applies the kept W, a buffer and so part of the state dict.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], n_clusters: int, method: str = "qr", ridge: float = 1e-4) -> None:
        super().__init__()
        self.body = mlp(in_dim, [*hidden, n_clusters], activation="leaky_relu", output_activation="tanh")
        self.method = method
        self.ridge = ridge
        self.register_buffer("orthonorm_weights", torch.eye(n_clusters))

    def fit_orthonorm(self, raw: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """W for the batch outputs ``raw`` (kept for ``forward``), and whether they were rank-deficient."""
        weights, deficient = orthonormalizer(raw.float(), self.method, self.ridge)
        self.orthonorm_weights.copy_(weights.detach())
        return weights, deficient

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).float() @ self.orthonorm_weights
