"""Fully connected stacks: the encoder, Siamese and spectral networks are all instances."""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh}


def mlp(in_dim: int, widths: Sequence[int], activation: str = "relu", output_activation: Optional[str] = None) -> nn.Sequential:
    """``Linear → activation`` for every width but the last, then ``Linear`` (→ ``output_activation``)."""
    layers: list[nn.Module] = []
    dims = [in_dim, *widths]
    for position, (width_in, width_out) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(width_in, width_out))
        last = position == len(widths) - 1
        name = output_activation if last else activation
        if name is not None:
            layers.append(ACTIVATIONS[name]())
    return nn.Sequential(*layers)


@torch.no_grad()
def apply_in_batches(module: nn.Module, x: torch.Tensor, batch_size: int = 8192) -> torch.Tensor:
    """``module(x)`` in eval mode, a batch at a time so memory stays bounded for any ``len(x)``."""
    was_training = module.training
    module.eval()
    try:
        return torch.cat([module(x[start : start + batch_size]) for start in range(0, len(x), batch_size)])
    finally:
        module.train(was_training)
