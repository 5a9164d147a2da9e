"""LNSCC's config schema: where the features come from, the graph, the network, both phases."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.errors import require
from deepclust_cli.methods.config import AutoencoderConfig, ClusteringConfig, require_knn_backend

FORMULATIONS = ("deepclust", "reference")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


@dataclass
class FeatureConfig:
    """What the graph and the network read: ``raw`` vectors, ``ae`` codes, or ``backbone`` features
    of a torchvision model whose weights the user supplies (nothing is downloaded)."""

    source: str = "raw"
    pca: Optional[int] = None  # project the features onto this many principal components first
    ae: AutoencoderConfig = field(default_factory=lambda: AutoencoderConfig(hidden=[500, 500, 2000], code_dim=10, epochs=50))
    backbone: str = "resnet18"  # a torchvision classification model
    weights: Optional[str] = None  # its state-dict file (e.g. resnet18-f37072fd.pth)
    image_size: int = 224  # images are resized to this before the backbone
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))  # the backbone's training statistics
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))

    def __post_init__(self) -> None:
        require(self.source in ("raw", "ae", "backbone"), f"features.source must be raw, ae or backbone, got {self.source!r}")
        require(
            self.source != "backbone" or self.weights is not None,
            "features.source=backbone needs features.weights=PATH (a torchvision state-dict file; nothing is downloaded)",
        )
        require(self.pca is None or self.pca >= 1, f"features.pca must be >= 1 or null, got {self.pca}")
        require(self.image_size >= 16, f"features.image_size must be >= 16, got {self.image_size}")
        require(len(self.mean) == len(self.std), f"features.mean has {len(self.mean)} values but std has {len(self.std)}")


@dataclass
class LNSCCConfig(ClusteringConfig):
    """The reference's graph and optimizer — k = 30, min_dist 0.1, Adam 0.008 on batches of 500
    edges, 0.1-weighted KL and balance terms — with 5 negatives per edge (the reference: 10) and a
    network sized for speed: [256, 128] without dropout to 10 dimensions, 5,000 sampled edges an
    epoch (the reference: [512, 256], dropout 0.3, 2-D, every edge; conf/experiment/lnscc_digits).
    ``formulation`` chooses the reference's loss, balance term, seeding rule and residual block
    (xma24/lnscc, ``lnscc_train.py``; the default: ACC 0.974 against 0.881 on MNIST, 3 seeds) or
    ours; method.py's docstring lists both."""

    features: FeatureConfig = field(default_factory=FeatureConfig)
    validation_fraction: float = 0.1  # held out for the autoencoder stage's validation loss (features.source=ae)
    n_neighbors: int = 30
    knn_backend: str = "auto"  # auto (exact up to 20,000 points on the CPU, else ivf), exact, ivf, hnsw or annoy
    prune_fraction: float = 1 / 200  # edges under this share of the largest weight are dropped
    hidden: List[int] = field(default_factory=lambda: [256, 128])
    embedding_dim: int = 10
    dropout: float = 0.0
    min_dist: float = 0.1
    spread: float = 1.0
    negative_sample_rate: int = 5
    negative_weight: float = 1.0
    epochs: int = 30
    edges_per_epoch: Optional[int] = 5000  # None: as many as the graph has undirected edges
    batch_size: int = 500  # edges
    lr: float = 0.008
    clustering_epoch: int = 20  # the clustering phase starts after this many epochs
    clustering_delay: int = 0  # epochs between seeding the centers and adding the clustering terms (the reference: half of clustering_epoch)
    formulation: str = "reference"  # lnscc_train.py's loss, balance term, seeding KL and residual block (README: it beat ours), or deepclust
    n_init: int = 10
    balance_tolerance: float = 0.01  # restarts this close to the most balanced compete on graph cut; 0: the reference's rule
    kl_weight: float = 0.1
    balance_weight: float = 0.1
    plot_every: int = 0  # epochs between embedding frames (plots/frames, embedding.gif); 0: none

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.validation_fraction < 0.5, f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        require(self.n_neighbors >= 2, f"n_neighbors must be >= 2, got {self.n_neighbors}")
        require_knn_backend(self.knn_backend, "knn_backend")
        require(0 <= self.prune_fraction < 1, f"prune_fraction must be in [0, 1), got {self.prune_fraction}")
        require(min(self.hidden, default=1) >= 1, f"hidden must be positive widths, got {self.hidden}")
        require(self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.min_dist >= 0 and self.spread > 0, f"need min_dist >= 0 and spread > 0, got {self.min_dist}, {self.spread}")
        require(self.negative_sample_rate >= 1, f"negative_sample_rate must be >= 1, got {self.negative_sample_rate}")
        require(self.negative_weight > 0, f"negative_weight must be > 0, got {self.negative_weight}")
        require(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        require(self.edges_per_epoch is None or self.edges_per_epoch >= 1, f"edges_per_epoch must be >= 1, got {self.edges_per_epoch}")
        require(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 <= self.clustering_epoch <= self.epochs, f"clustering_epoch must be in [0, epochs={self.epochs}], got {self.clustering_epoch}")
        require(
            0 <= self.clustering_delay <= self.epochs - self.clustering_epoch,
            f"clustering_delay must be in [0, epochs - clustering_epoch = {self.epochs - self.clustering_epoch}], got {self.clustering_delay}",
        )
        require(self.formulation in FORMULATIONS, f"formulation must be one of {', '.join(FORMULATIONS)}, got {self.formulation!r}")
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
        require(self.balance_tolerance >= 0, f"balance_tolerance must be >= 0, got {self.balance_tolerance}")
        require(self.kl_weight >= 0 and self.balance_weight >= 0, "kl_weight and balance_weight must be >= 0")
        require(self.plot_every >= 0, f"plot_every must be >= 0, got {self.plot_every}")
