"""A fully connected autoencoder: ReLU encoder to a linear code, mirrored decoder."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from deepclust_cli.nets.mlp import mlp


class Autoencoder(nn.Module):
    """Encoder ``in_dim → hidden[0] → … → hidden[-1] → code_dim`` (ReLU between, linear code) and
    the mirrored decoder back to ``in_dim`` (linear output), trained on the reconstruction error
    MSE(x, x̂). SpectralNet's MNIST setting is ``hidden = [512, 512, 2048]``, ``code_dim = 10``
    (Shaham et al., 2018, §5)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], code_dim: int) -> None:
        super().__init__()
        self.encoder = mlp(in_dim, [*hidden, code_dim], activation="relu")
        self.decoder = mlp(code_dim, [*reversed(hidden), in_dim], activation="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def reconstruction_loss(self, x: torch.Tensor) -> torch.Tensor:
        """``MSE(x, x̂)``, computed in float32 whatever precision the forward pass ran in."""
        return (self(x).float() - x).square().mean()
