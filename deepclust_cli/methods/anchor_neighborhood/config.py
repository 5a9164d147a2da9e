"""AND's config schema: backbone, memory bank, rounds, optimizer, batch augmentation, evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.errors import require
from deepclust_cli.methods.config import ClusteringConfig
from deepclust_cli.nets import BACKBONES

DEFAULT_CHUNK_BYTES = 1 << 28  # 256 MiB per block of similarities while mining anchors
BEST_BY = ("knn_acc_bank", "knn_acc", "acc")  # held-out scores best.ckpt can follow


@dataclass
class AugmentConfig:
    """Training augmentation: RandomResizedCrop to ``crop_size`` (``None``: the input's height) with
    area fraction in ``crop_scale`` and aspect ratio w/h in ``crop_ratio``; horizontal flip with
    probability ``hflip_p``; ColorJitter with factors brightness, contrast, saturation in
    [max(0, 1 - v), 1 + v] and hue shift in [-hue, hue] (0 disables an op); grayscale with
    probability ``grayscale_p``."""

    crop_size: Optional[int] = None  # output side length; None: the input's height
    crop_scale: List[float] = field(default_factory=lambda: [0.2, 1.0])  # area fraction range of the crop
    crop_ratio: List[float] = field(default_factory=lambda: [3 / 4, 4 / 3])  # aspect ratio range (w/h)
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.4  # in [0, 0.5]: a shift of 0.5 already reaches the opposite hue
    grayscale_p: float = 0.2
    hflip_p: float = 0.0

    def __post_init__(self) -> None:
        require(
            self.crop_size is None or self.crop_size >= 1,
            f"augment.crop_size must be >= 1 or null, got {self.crop_size}",
        )
        scale = list(self.crop_scale)
        require(
            len(scale) == 2 and 0 < scale[0] <= scale[1] <= 1,
            f"augment.crop_scale must be [low, high] with 0 < low <= high <= 1, got {scale}",
        )
        ratio = list(self.crop_ratio)
        require(
            len(ratio) == 2 and 0 < ratio[0] <= ratio[1],
            f"augment.crop_ratio must be [low, high] with 0 < low <= high, got {ratio}",
        )
        for name in ("brightness", "contrast", "saturation"):
            value = getattr(self, name)
            require(value >= 0, f"augment.{name} must be >= 0, got {value}")
        require(0 <= self.hue <= 0.5, f"augment.hue must be in [0, 0.5], got {self.hue}")
        for name in ("grayscale_p", "hflip_p"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"augment.{name} must be in [0, 1], got {value}")


@dataclass
class ANDConfig(ClusteringConfig):
    """The paper's settings (section 4.1) are the defaults: ResNet18, 128-d features, T = 0.1,
    η = 0.5, five rounds of 200 epochs at lr 0.03 decayed ×0.1 at 80/120/160 (SGD with Nesterov
    momentum 0.9: ``trainer.optimizer=auto`` and the trainer's momentum)."""

    backbone: str = "resnet18_cifar"
    embedding_dim: int = 128
    temperature: float = 0.1
    bank_momentum: float = 0.5  # η in m_i ← normalize(η·m_i + (1 − η)·f_i)
    anchor_fractions: List[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])  # one round each
    neighborhood_size: int = 1  # the reference's ANs_size: nearest other samples per anchor
    epochs: int = 200  # per round
    batch_size: int = 128
    lr: float = 0.03
    weight_decay: float = 5e-4
    milestones: List[int] = field(default_factory=lambda: [80, 120, 160])  # epochs within a round
    lr_decay: float = 0.1
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mean: List[float] = field(default_factory=list)  # per-channel statistics in [0, 1] units; [] = none
    std: List[float] = field(default_factory=list)
    eval_every: int = 10  # epochs between held-out evaluations; 0: only at the end
    knn_neighbors: int = 200
    knn_temperature: float = 0.1
    best_by: str = "knn_acc_bank"  # best.ckpt: the evaluation with the highest of knn_acc_bank, knn_acc or acc
    n_init: int = 10
    channels_last: bool = True  # on CUDA: NHWC convolutions (tensor cores)
    bank_chunk_bytes: int = DEFAULT_CHUNK_BYTES  # similarity block size while mining anchors

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.backbone in BACKBONES, f"backbone must be one of {', '.join(BACKBONES.names())}, got {self.backbone!r}")
        require(self.embedding_dim >= 2, f"embedding_dim must be >= 2, got {self.embedding_dim}")
        require(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")
        require(0 <= self.bank_momentum < 1, f"bank_momentum must be in [0, 1), got {self.bank_momentum}")
        fractions = list(self.anchor_fractions)
        require(
            len(fractions) >= 1 and all(0 <= f <= 1 for f in fractions) and fractions == sorted(fractions),
            f"anchor_fractions must be a non-decreasing list of fractions in [0, 1], got {fractions}",
        )
        require(self.neighborhood_size >= 1, f"neighborhood_size must be >= 1, got {self.neighborhood_size}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(list(self.milestones) == sorted(self.milestones), f"milestones must increase, got {self.milestones}")
        require(0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}")
        require(len(self.mean) == len(self.std), f"mean has {len(self.mean)} values but std has {len(self.std)}")
        require(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        require(self.knn_neighbors >= 1, f"knn_neighbors must be >= 1, got {self.knn_neighbors}")
        require(self.knn_temperature > 0, f"knn_temperature must be > 0, got {self.knn_temperature}")
        require(self.best_by in BEST_BY, f"best_by must be one of {', '.join(BEST_BY)}, got {self.best_by!r}")
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
        require(self.bank_chunk_bytes >= 1 << 20, f"bank_chunk_bytes must be >= 1 MiB, got {self.bank_chunk_bytes}")
