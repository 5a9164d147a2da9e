"""Config schemas more than one method uses: the fields every method has, a training stage's
knobs, the autoencoder stage. Plain dataclasses that import no torch, like every schema, so the
CLI validates a config before any implementation loads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List

from omegaconf import MISSING

from deepclust_cli.errors import require, require_finite_fields
from deepclust_cli.ops import KNN_BACKENDS

AUTO = "auto"


def require_knn_backend(value: str, key: str) -> None:
    """``key`` names one of :func:`deepclust_cli.ops.neighbors.knn`'s back ends."""
    require(value in KNN_BACKENDS, f"{key} must be one of {', '.join(KNN_BACKENDS)}, got {value!r}")


@dataclass
class MethodConfig:
    """Parameters every method has."""

    name: str = MISSING
    seed: int = 0

    def __post_init__(self) -> None:
        require_finite_fields(self)
        require(self.seed >= 0, f"seed must be >= 0, got {self.seed}")


@dataclass
class ClusteringConfig(MethodConfig):
    """A method that puts the samples into ``n_clusters`` clusters; the YAML defaults it to the
    dataset's class count."""

    n_clusters: Any = None  # an int, null (the dataset's class count) or auto (estimated before training)
    n_clusters_range: List[int] = field(default_factory=lambda: [2, 20])  # where n_clusters=auto looks

    def __post_init__(self) -> None:
        super().__post_init__()
        value = self.n_clusters
        require(
            value is None or value == AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1),
            f"n_clusters must be an integer >= 1, null or auto, got {value!r}",
        )
        low_high = list(self.n_clusters_range)
        require(
            len(low_high) == 2 and 2 <= low_high[0] <= low_high[1],
            f"n_clusters_range must be [low, high] with 2 <= low <= high, got {low_high}",
        )

    @property
    def estimates_clusters(self) -> bool:
        return self.n_clusters == AUTO


@dataclass
class StageConfig:
    """Per-stage knobs: the optimizer at ``lr`` (Adam unless ``trainer.optimizer`` says otherwise),
    × ``lr_decay`` after ``patience`` epochs without a better validation loss; stop after
    ``epochs`` epochs, when the rate reaches ``min_lr``, or — with ``tolerance`` > 0 — when
    ``tolerance_epochs`` epochs in a row fail to improve the best validation loss by more than
    ``tolerance``·|best| (converged). An epoch is one shuffled pass over the training rows, or as
    many reshuffled passes as it takes to run ``min_batches`` batches: on small data a pass is a
    batch or two, and ``patience`` and ``epochs`` would otherwise count almost no steps."""

    epochs: int = 30
    batch_size: int = 256
    min_batches: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    lr_decay: float = 0.1
    patience: int = 10
    min_lr: float = 1e-7
    tolerance: float = 0.0  # relative improvement of the validation loss that counts; 0: no convergence stop
    tolerance_epochs: int = 10

    def __post_init__(self) -> None:
        require_finite_fields(self)
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        require(self.min_batches >= 1, f"min_batches must be >= 1, got {self.min_batches}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}")
        require(0 < self.lr_decay < 1, f"lr_decay must be in (0, 1), got {self.lr_decay}")
        require(self.patience >= 0, f"patience must be >= 0, got {self.patience}")
        require(0 <= self.min_lr < self.lr, f"min_lr must be in [0, lr={self.lr}), got {self.min_lr}")
        require(self.tolerance >= 0, f"tolerance must be >= 0, got {self.tolerance}")
        require(self.tolerance_epochs >= 1, f"tolerance_epochs must be >= 1, got {self.tolerance_epochs}")


@dataclass
class AutoencoderConfig(StageConfig):
    """An autoencoder stage: the encoder's hidden widths to a ``code_dim``-d code, the decoder
    mirrored, MSE."""

    hidden: List[int] = field(default_factory=lambda: [512, 512, 2048])
    code_dim: int = 10
    epochs: int = 40
    batch_size: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        require(min(self.hidden, default=1) >= 1, f"ae.hidden must be positive widths, got {self.hidden}")
        require(self.code_dim >= 1, f"ae.code_dim must be >= 1, got {self.code_dim}")
