"""Many small MLPs of one shape held as stacked weights: a whole tree level of GeoCluster students
trains as one batched matrix product instead of one Python call per node."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


class StackedMLP(nn.Module):
    """``count`` independent MLPs ``in_dim → hidden… → out_dim`` with ReLU between layers; layer
    ``l`` of MLP ``i`` is ``x ↦ x W_l[i] + b_l[i]``, initialized like ``nn.Linear``
    (``U(−1/√fan_in, 1/√fan_in)``) from ``generator``."""

    def __init__(self, count: int, in_dim: int, hidden: Sequence[int], out_dim: int, generator: torch.Generator) -> None:
        super().__init__()
        widths = [in_dim, *hidden, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(widths[:-1], widths[1:]):
            bound = 1 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter((torch.rand(count, fan_in, fan_out, generator=generator) * 2 - 1) * bound))
            self.biases.append(nn.Parameter((torch.rand(count, 1, fan_out, generator=generator) * 2 - 1) * bound))

    @property
    def count(self) -> int:
        return self.weights[0].shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: count × B × in_dim, row ``i`` through MLP ``i``; returns count × B × out_dim."""
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(bias, x, weight)
            if layer < last:
                x = torch.relu(x)
        return x

    def forward_rows(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """``x``: P × in_dim, sample ``p`` through MLP ``rows[p]``; returns P × out_dim. Samples are
        grouped by MLP, so the loop runs once per distinct MLP, not per sample."""
        order = torch.argsort(rows)
        distinct, counts = torch.unique_consecutive(rows[order], return_counts=True)
        out = x.new_empty(len(x), self.weights[-1].shape[-1])
        start = 0
        last = len(self.weights) - 1
        for row, count in zip(distinct.tolist(), counts.tolist()):
            index = order[start : start + count]
            h = x[index]
            for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
                h = torch.addmm(bias[row], h, weight[row])
                if layer < last:
                    h = torch.relu(h)
            out[index] = h
            start += count
        return out
