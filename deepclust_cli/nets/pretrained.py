"""Features of images from a torchvision classification model whose weights the user supplies.

Nothing is downloaded: ``weights`` is a state-dict file (e.g. torchvision's ``resnet18-f37072fd.pth``
copied from a machine with internet). The classifier head is dropped, so the features are the
penultimate layer's (512-d for ResNet18, 2048-d for ResNet50).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torchvision
from torch import nn

from deepclust_cli.errors import CheckpointError, ConfigError

FEATURE_BATCH = 256


def headless_backbone(name: str, weights: Path) -> nn.Module:
    """torchvision's ``name`` with the state dict from ``weights`` and its classifier replaced by identity."""
    if name not in torchvision.models.list_models(module=torchvision.models):
        raise ConfigError(f"features.backbone: torchvision has no classification model '{name}'")
    if not weights.is_file():
        raise CheckpointError(f"features.weights: {weights} does not exist; point it at a {name} state-dict file")
    model = torchvision.models.get_model(name, weights=None)
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except (RuntimeError, ValueError, OSError) as error:
        raise CheckpointError(f"features.weights: {weights} is not a {name} state dict ({str(error).splitlines()[0]})") from error
    for head in ("fc", "classifier", "head", "heads"):
        if hasattr(model, head):
            setattr(model, head, nn.Identity())
            break
    return model.eval()


@torch.no_grad()
def pretrained_features(
    images: torch.Tensor,
    name: str,
    weights: Path,
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    device: torch.device,
) -> torch.Tensor:
    """Penultimate-layer features of uint8 images ``N×C×H×W`` (grey images repeated to 3 channels),
    resized to ``image_size`` and normalized by the backbone's own training ``mean``/``std``."""
    model = headless_backbone(name, weights).to(device)
    shift = torch.tensor(mean, device=device).view(1, -1, 1, 1)
    scale = torch.tensor(std, device=device).view(1, -1, 1, 1)
    parts = []
    for start in range(0, len(images), FEATURE_BATCH):
        batch = images[start : start + FEATURE_BATCH].to(device).float().div(255)
        if batch.shape[1] == 1:
            batch = batch.expand(-1, 3, -1, -1)
        batch = nn.functional.interpolate(batch, size=(image_size, image_size), mode="bilinear", align_corners=False)
        parts.append(model((batch - shift) / scale).float().flatten(1))
    return torch.cat(parts)
