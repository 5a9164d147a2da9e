"""LNSCC's embedding network: an MLP of LayerNorm blocks, each followed by a residual block."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def _block(width_in: int, width_out: int, dropout: float, slope: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, width_out), nn.LeakyReLU(slope), nn.LayerNorm(width_out), nn.Dropout(dropout))


class Residual(nn.Module):
    """``x + block(x)`` for a width-preserving block."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class ResidualMLP(nn.Module):
    """For each width ``h``: ``Linear → LeakyReLU(slope) → LayerNorm → Dropout`` to ``h``, then the
    same block ``h → h`` around a skip connection; a final ``Linear`` to ``out_dim`` (Ma & Kim 2022,
    the reference's 384 → [512, 256] → dim network)."""

    def __init__(self, in_dim: int, widths: Sequence[int], out_dim: int, dropout: float = 0.3, slope: float = 0.1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_dim
        for width in widths:
            layers += [_block(width_in, width, dropout, slope), Residual(_block(width, width, dropout, slope))]
            width_in = width
        layers.append(nn.Linear(width_in, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
