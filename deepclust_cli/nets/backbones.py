"""Image backbones by name, each ending in a linear head and an L2 normalization.

``build_backbone(name, in_channels, dim)`` returns a module mapping ``N×C×H×W`` images to unit
vectors ``N×dim``, the feature AND's memory bank stores (Huang et al., ICML 2019, section 4):

- ``resnet18_cifar``, ``resnet50_cifar``: torchvision's ResNets with the CIFAR stem — a 3×3 stride-1
  first convolution and no max-pool — so 32×32 inputs keep their resolution (He et al. 2016, sec. 4.2);
- ``alexnet``: torchvision's AlexNet, for ImageNet-size inputs (224×224);
- ``small_convnet``: two 3×3 conv–BN–ReLU–max-pool blocks (16, 32 channels) and a linear head on the
  7×7 map — it keeps where strokes are, which a global pool would lose — for 28×28 grey images on a CPU.
"""

from __future__ import annotations

from typing import Callable

import torch
import torchvision
from torch import nn

from deepclust_cli.registry import Registry

BackboneFactory = Callable[[int, int], nn.Module]
"""``factory(in_channels, dim) -> module`` whose outputs are ``N×dim`` (not yet normalized)."""

BACKBONES: Registry[BackboneFactory] = Registry("backbone")


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


@BACKBONES.register("resnet18_cifar")
def resnet18_cifar(in_channels: int, dim: int) -> nn.Module:
    return _cifar_resnet(torchvision.models.resnet18(num_classes=dim), in_channels)


@BACKBONES.register("resnet50_cifar")
def resnet50_cifar(in_channels: int, dim: int) -> nn.Module:
    return _cifar_resnet(torchvision.models.resnet50(num_classes=dim), in_channels)


@BACKBONES.register("alexnet")
def alexnet(in_channels: int, dim: int) -> nn.Module:
    model = torchvision.models.alexnet(num_classes=dim)
    if in_channels != 3:
        model.features[0] = nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2)
    return model


@BACKBONES.register("small_convnet")
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
