"""Image backbones: trained from scratch by name, or a torchvision model with the user's weights.

``build_backbone(name, in_channels, dim)`` returns a module mapping ``N×C×H×W`` images to unit
vectors ``N×dim``, the feature AND's memory bank stores (Huang et al., ICML 2019, section 4):

- ``resnet18_cifar``, ``resnet50_cifar``: torchvision's ResNets with the CIFAR stem — a 3×3 stride-1
  first convolution and no max-pool — so 32×32 inputs keep their resolution (He et al. 2016, sec. 4.2);
- ``alexnet``: torchvision's AlexNet, for ImageNet-size inputs (224×224);
- ``alexnet_cifar``: AlexNet's five convolutions (64, 192, 384, 256, 256 channels) as 3×3 stride-1
  conv–BN–ReLU, max-pools 2×2 after the first, second and fifth, then 1024–1024 fully connected
  BN–ReLU layers and a linear head: the 32×32 AlexNet of the instance-discrimination code family
  AND's CIFAR/SVHN AlexNet rows come from (``CIFARAlexNet``; the AND repository ships only ResNets);
- ``small_convnet``: two 3×3 conv–BN–ReLU–max-pool blocks (16, 32 channels) and a linear head on the
  7×7 map — it keeps where strokes are, which a global pool would lose — for 28×28 grey images on a CPU.

``pretrained_features(images, name, weights, ...)`` runs any torchvision classification model whose
state-dict file the user supplies (LNSCC's ``features.source=backbone``). Nothing is downloaded:
``weights`` is e.g. torchvision's ``resnet18-f37072fd.pth`` copied from a machine with internet. The
classifier head is dropped, so the features are the penultimate layer's (512-d for ResNet18).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
import torchvision
from torch import nn

from deepclust_cli.errors import CheckpointError, ConfigError
from deepclust_cli.nets import BACKBONES

BackboneFactory = Callable[[int, int], nn.Module]
"""``factory(in_channels, dim) -> module`` whose outputs are ``N×dim`` (not yet normalized)."""

class Normalized(nn.Module):
    """``f(x) / ‖f(x)‖``: features on the unit sphere, so dot products are cosine similarities."""

    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.body(images).float(), dim=1)


def build_backbone(name: str, in_channels: int, dim: int) -> Normalized:
    return Normalized(BACKBONES.get(name)(in_channels, dim))


def _cifar_resnet(model: torchvision.models.ResNet, in_channels: int) -> torchvision.models.ResNet:
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def resnet18_cifar(in_channels: int, dim: int) -> nn.Module:
    return _cifar_resnet(torchvision.models.resnet18(num_classes=dim), in_channels)


def resnet50_cifar(in_channels: int, dim: int) -> nn.Module:
    return _cifar_resnet(torchvision.models.resnet50(num_classes=dim), in_channels)


def alexnet(in_channels: int, dim: int) -> nn.Module:
    model = torchvision.models.alexnet(num_classes=dim)
    if in_channels != 3:
        model.features[0] = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
    return model


def alexnet_cifar(in_channels: int, dim: int) -> nn.Module:
    def conv(width_in: int, width_out: int) -> list[nn.Module]:
        return [nn.Conv2d(width_in, width_out, 3, padding=1), nn.BatchNorm2d(width_out), nn.ReLU(inplace=True)]

    def dense(width_in: int, width_out: int) -> list[nn.Module]:
        return [nn.Linear(width_in, width_out), nn.BatchNorm1d(width_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *conv(in_channels, 64),
        nn.MaxPool2d(2),
        *conv(64, 192),
        nn.MaxPool2d(2),
        *conv(192, 384),
        *conv(384, 256),
        *conv(256, 256),
        nn.MaxPool2d(2),
        nn.AdaptiveMaxPool2d(4),  # 4×4 from 32×32 inputs already; other sizes still reach the 4096-d head
        nn.Flatten(),
        *dense(256 * 4 * 4, 1024),
        *dense(1024, 1024),
        nn.Linear(1024, dim),
    )


def small_convnet(in_channels: int, dim: int) -> nn.Module:
    def block(width_in: int, width_out: int) -> list[nn.Module]:
        return [nn.Conv2d(width_in, width_out, 3, padding=1, bias=False), nn.BatchNorm2d(width_out), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(in_channels, 16),
        nn.MaxPool2d(2),
        *block(16, 32),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(7),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, dim),
    )


# -- a torchvision model with the user's weights, as a feature extractor -------------------------
FEATURE_BATCH = 256  # images per forward pass of pretrained_features


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
