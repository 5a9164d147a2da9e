"""A fitted linear projection onto the leading principal components, kept as a module so that it
travels with a method's checkpoint and applies unchanged to unseen points."""

from __future__ import annotations

import torch
from torch import nn


class PrincipalProjection(nn.Module):
    """``x ↦ (x − μ) V_k`` with ``μ`` the mean of the fitted data and ``V_k`` the eigenvectors of its
    covariance ``Σ = (X − μ)ᵀ(X − μ) / n`` for the ``k`` largest eigenvalues (each column's sign fixed
    so its largest entry is positive, which makes the projection reproducible)."""

    def __init__(self, in_dim: int, n_components: int) -> None:
        super().__init__()
        if not 1 <= n_components <= in_dim:
            raise ValueError(f"n_components must be in [1, {in_dim}], got {n_components}")
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("components", torch.eye(in_dim)[:, :n_components].contiguous())

    @torch.no_grad()
    def fit(self, x: torch.Tensor, chunk: int = 16384) -> "PrincipalProjection":
        """Fit ``μ`` and ``V_k`` on ``x`` (N × in_dim); the covariance is summed in float64 over row
        chunks so that memory stays at one chunk plus the in_dim × in_dim matrix."""
        mean = x.double().mean(dim=0)
        covariance = torch.zeros(x.shape[1], x.shape[1], dtype=torch.float64, device=x.device)
        for start in range(0, len(x), chunk):
            centered = x[start : start + chunk].double() - mean
            covariance += centered.T @ centered
        _, vectors = torch.linalg.eigh(covariance / len(x))
        leading = vectors[:, -self.components.shape[1] :].flip(dims=[1])
        signs = torch.sign(leading.gather(0, leading.abs().argmax(dim=0, keepdim=True)))
        self.mean.copy_(mean.to(self.mean))
        self.components.copy_((leading * signs).to(self.components))
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) @ self.components
