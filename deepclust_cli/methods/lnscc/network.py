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


class ReferenceResidual(nn.Module):
    """The reference's ``ResidualBlock(h, 2h)`` (xma24/lnscc, ``lnscc_train.py``):
    ``LeakyReLU(x + Dropout(LN_h(Linear_{2h→h}(Dropout(LN_2h(LeakyReLU(Linear_{h→2h}(x))))))))``."""

    def __init__(self, width: int, dropout: float, slope: float) -> None:
        super().__init__()
        self.inner = nn.Sequential(_block(width, 2 * width, dropout, slope), nn.Linear(2 * width, width), nn.LayerNorm(width), nn.Dropout(dropout))
        self.activation = nn.LeakyReLU(slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.inner(x))


class ResidualMLP(nn.Module):
    """For each width ``h``: ``Linear → LeakyReLU(slope) → LayerNorm → Dropout`` to ``h``, then a
    residual block; a final ``Linear`` to ``out_dim`` (Ma & Kim 2022, the reference's
    384 → [512, 256] → dim network). Our residual block is that same layer ``h → h`` around a skip
    connection, with PyTorch's default initialization; ``reference=True`` builds the reference's
    block (:class:`ReferenceResidual`: inner width 2h, two LayerNorms, the activation after the
    sum) and its Kaiming-normal weights with zero biases."""

    def __init__(self, in_dim: int, widths: Sequence[int], out_dim: int, dropout: float = 0.3, slope: float = 0.1, reference: bool = False) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width_in = in_dim
        for width in widths:
            residual = ReferenceResidual(width, dropout, slope) if reference else Residual(_block(width, width, dropout, slope))
            layers += [_block(width_in, width, dropout, slope), residual]
            width_in = width
        layers.append(nn.Linear(width_in, out_dim))
        self.layers = nn.Sequential(*layers)
        if reference:
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.kaiming_normal_(module.weight, nonlinearity="leaky_relu")
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
