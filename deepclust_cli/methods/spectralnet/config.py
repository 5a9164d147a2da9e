"""SpectralNet's and SpectralNetAE's config schemas: the graph, the three stages, the decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.errors import require
from deepclust_cli.methods.config import AutoencoderConfig, MethodConfig, StageConfig


@dataclass
class AutoencoderStage(AutoencoderConfig):
    """Stage 1, optional: its codes become the later nets' input."""

    enabled: bool = False


@dataclass
class SiameseStage(StageConfig):
    """Stage 2: ``n_neighbors`` nearest neighbours of each point are positive pairs, as many
    random other points are negative pairs; contrastive loss with ``margin``."""

    enabled: bool = False
    hidden: List[int] = field(default_factory=lambda: [1024, 1024, 512, 10])
    n_neighbors: int = 2
    knn_backend: str = "exact"  # exact, or annoy for large n
    margin: float = 1.0
    epochs: int = 30
    batch_size: int = 128  # pairs per batch

    def __post_init__(self) -> None:
        super().__post_init__()
        require(len(self.hidden) >= 1 and min(self.hidden) >= 1, f"siamese.hidden must be positive widths, got {self.hidden}")
        require(self.n_neighbors >= 1, f"siamese.n_neighbors must be >= 1, got {self.n_neighbors}")
        require(self.knn_backend in ("exact", "annoy"), f"siamese.knn_backend must be exact or annoy, got {self.knn_backend!r}")
        require(self.margin > 0, f"siamese.margin must be > 0, got {self.margin}")


@dataclass
class SpectralStage(StageConfig):
    """Stage 3: hidden widths of the spectral net (a tanh layer of output_dim units follows) and
    its orthonormalization layer."""

    hidden: List[int] = field(default_factory=lambda: [128, 128])
    output_dim: Optional[int] = None  # embedding width; None: n_clusters, as in the paper
    epochs: int = 40
    batch_size: int = 1024
    min_lr: float = 1e-8
    orthonorm: str = "qr"  # qr, or cholesky (the older variant)
    orthonorm_gradient: bool = True  # differentiate through W from the orthogonalization batch
    ridge: float = 1e-4  # relative ridge for rank-deficient batches
    sparse: bool = False  # batches of seed points plus their nearest neighbours (large n)
    sparse_neighbors: int = 4  # neighbours added per seed point in sparse mode

    def __post_init__(self) -> None:
        super().__post_init__()
        require(min(self.hidden, default=1) >= 1, f"spectral.hidden must be positive widths, got {self.hidden}")
        require(self.output_dim is None or self.output_dim >= 1, f"spectral.output_dim must be >= 1, got {self.output_dim}")
        require(self.orthonorm in ("qr", "cholesky"), f"spectral.orthonorm must be qr or cholesky, got {self.orthonorm!r}")
        require(self.ridge > 0, f"spectral.ridge must be > 0, got {self.ridge}")
        require(self.sparse_neighbors >= 1, f"spectral.sparse_neighbors must be >= 1, got {self.sparse_neighbors}")


@dataclass
class SpectralNetConfig(MethodConfig):
    """The graph (``n_neighbors``, ``scale_k``, ``scale``, ``affinity_input``, ``laplacian``) and the
    three training stages."""

    n_neighbors: int = 30  # kNN of the batch affinity
    scale_k: int = 15  # σ = distance to the scale_k-th neighbour (the point itself not counted)
    scale: str = "local"  # local: σ_i per point; global: one σ, the batch median
    affinity_input: str = "auto"  # auto (siamese > code > raw), raw, code or siamese
    laplacian: str = "unnormalized"  # or normalized: L_sym, and k-means on unit-length rows (Ng, Jordan & Weiss)
    ae: AutoencoderStage = field(default_factory=AutoencoderStage)
    siamese: SiameseStage = field(default_factory=SiameseStage)
    spectral: SpectralStage = field(default_factory=SpectralStage)
    validation_fraction: float = 0.1  # held out per stage for the LR schedule
    kmeans_n_init: int = 10

    @property
    def embedding_dim(self) -> int:
        return self.spectral.output_dim or self.n_clusters

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_neighbors >= 1, f"n_neighbors must be >= 1, got {self.n_neighbors}")
        require(self.scale_k >= 1, f"scale_k must be >= 1, got {self.scale_k}")
        require(self.scale in ("local", "global"), f"scale must be local or global, got {self.scale!r}")
        require(
            self.affinity_input in ("auto", "raw", "code", "siamese"),
            f"affinity_input must be auto, raw, code or siamese, got {self.affinity_input!r}",
        )
        require(
            self.laplacian in ("unnormalized", "normalized"),
            f"laplacian must be unnormalized or normalized, got {self.laplacian!r}",
        )
        require(0 < self.validation_fraction < 0.5, f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        require(self.kmeans_n_init >= 1, f"kmeans_n_init must be >= 1, got {self.kmeans_n_init}")
        if self.n_clusters is not None:
            width = self.embedding_dim
            require(
                self.spectral.batch_size > width,
                f"spectral.batch_size ({self.spectral.batch_size}) must exceed the embedding width ({width}) "
                "to orthonormalize a batch",
            )
        wanted = {"code": self.ae.enabled, "siamese": self.siamese.enabled}
        require(
            wanted.get(self.affinity_input, True),
            f"affinity_input={self.affinity_input} needs the {'ae' if self.affinity_input == 'code' else 'siamese'} stage enabled",
        )


@dataclass
class SpectralNetAEConfig(SpectralNetConfig):
    """SpectralNet's parameters plus the reconstruction weight ``alpha`` and the decoder's hidden
    widths (None: the spectral net's hidden widths reversed)."""

    alpha: float = 1e-3
    decoder: Optional[List[int]] = None

    @property
    def decoder_hidden(self) -> list[int]:
        return list(reversed(self.spectral.hidden)) if self.decoder is None else list(self.decoder)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        require(min(self.decoder_hidden, default=1) >= 1, f"decoder must be positive widths, got {self.decoder}")
