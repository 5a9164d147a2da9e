"""The autoencoder + k-means baseline's config schema: the autoencoder stage and the k-means readout."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepclust_cli.errors import require
from deepclust_cli.methods.config import AutoencoderConfig, ClusteringConfig


@dataclass
class AEKMeansConfig(ClusteringConfig):
    """An autoencoder (``ae``: widths, code size, its training stage) trained on MSE(x, x̂) with a
    ``validation_fraction`` held out for its schedule, then k-means with ``n_init`` restarts on the
    codes of all samples."""

    ae: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    validation_fraction: float = 0.1  # held out for the validation loss that drives the AE's LR schedule
    n_init: int = 10  # k-means restarts on the codes

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.validation_fraction < 0.5, f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
