"""SpectralNet's and SpectralNetAE's config schemas: the graph, the three stages, the decoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.errors import require
from deepclust_cli.methods.config import AutoencoderConfig, ClusteringConfig, StageConfig, require_knn_backend


@dataclass
class AutoencoderStage(AutoencoderConfig):
    """Stage 1, optional: its codes become the later nets' input."""

    enabled: bool = False


@dataclass
class SiameseStage(StageConfig):
    """Stage 2: ``n_neighbors`` nearest neighbors of each point are positive pairs, as many
    random other points are negative pairs; contrastive loss with ``margin``; an MLP of ``hidden``
    widths to ``output_dim`` outputs, the space affinities are measured in.

    ``pairs_per_epoch`` set: each epoch draws ``pairs_per_epoch / 2`` anchor points afresh, each
    with one positive (a random one of its ``n_neighbors`` nearest) and one random negative, the
    reference's sampling (KlugerLab/SpectralNet ``src/core/pairs.py``
    ``create_pairs_from_unlabeled_data``: ``siamese_tot_pairs``; shaham-lab/SpectralNet
    ``_get_approx_nn_pairs``); None: every training point with all ``2·n_neighbors`` pairs."""

    enabled: bool = False
    hidden: List[int] = field(default_factory=lambda: [1024, 1024, 512])
    output_dim: int = 10
    n_neighbors: int = 2
    knn_backend: str = "auto"  # auto (exact up to 20,000 points on the CPU, else ivf), exact, ivf, hnsw or annoy
    margin: float = 1.0
    epochs: int = 30
    batch_size: int = 128  # pairs per batch
    pairs_per_epoch: Optional[int] = None  # None: every training point × 2·n_neighbors pairs

    def __post_init__(self) -> None:
        super().__post_init__()
        require(min(self.hidden, default=1) >= 1, f"siamese.hidden must be positive widths, got {self.hidden}")
        require(
            self.pairs_per_epoch is None or (self.pairs_per_epoch >= 2 and self.pairs_per_epoch % 2 == 0),
            f"siamese.pairs_per_epoch must be null or an even number >= 2 (one positive and one negative per point), got {self.pairs_per_epoch}",
        )
        require(self.output_dim >= 1, f"siamese.output_dim must be >= 1, got {self.output_dim}")
        require(self.n_neighbors >= 1, f"siamese.n_neighbors must be >= 1, got {self.n_neighbors}")
        require_knn_backend(self.knn_backend, "siamese.knn_backend")
        require(self.margin > 0, f"siamese.margin must be > 0, got {self.margin}")


@dataclass
class SpectralStage(StageConfig):
    """Stage 3: hidden widths of the spectral net (a tanh layer of ``embedding_dim`` units follows)
    and its orthonormalization layer."""

    hidden: List[int] = field(default_factory=lambda: [128, 128])
    epochs: int = 40
    batch_size: int = 1024
    min_batches: int = 8  # 2,000 points are two batches a pass: too few steps for patience and epochs
    min_lr: float = 1e-8
    orthonorm: str = "qr"  # qr, or cholesky (the older variant)
    orthonorm_gradient: bool = True  # differentiate through W from the orthogonalization batch
    ridge: float = 1e-4  # relative ridge for rank-deficient batches
    sparse: bool = False  # batches of seed points plus their nearest neighbors (large n)
    sparse_neighbors: int = 4  # neighbors added per seed point in sparse mode

    def __post_init__(self) -> None:
        super().__post_init__()
        require(min(self.hidden, default=1) >= 1, f"spectral.hidden must be positive widths, got {self.hidden}")
        require(self.orthonorm in ("qr", "cholesky"), f"spectral.orthonorm must be qr or cholesky, got {self.orthonorm!r}")
        require(self.ridge > 0, f"spectral.ridge must be > 0, got {self.ridge}")
        require(self.sparse_neighbors >= 1, f"spectral.sparse_neighbors must be >= 1, got {self.sparse_neighbors}")


@dataclass
class SpectralNetConfig(ClusteringConfig):
    """The graph (``n_neighbors``, ``scale_k``, ``scale``, ``scale_rule``, ``affinity_input``, ``laplacian``), the
    three training stages, the embedding's width and the k-means readout's restarts."""

    n_neighbors: int = 30  # kNN of the batch affinity
    scale_k: int = 15  # σ = distance to the scale_k-th neighbor (the point itself not counted)
    scale: str = "local"  # local: σ_i per point; global: one σ, the batch median
    scale_rule: str = "ours"  # ours, or reference: σ as shaham-lab/SpectralNet computes it (gaussian_knn_weights)
    affinity_input: str = "auto"  # auto (siamese > code > raw), raw, code or siamese
    laplacian: str = "unnormalized"  # or normalized: L_sym, and k-means on unit-length rows (Ng, Jordan & Weiss)
    ae: AutoencoderStage = field(default_factory=AutoencoderStage)
    siamese: SiameseStage = field(default_factory=SiameseStage)
    spectral: SpectralStage = field(default_factory=SpectralStage)
    embedding_dim: Optional[int] = None  # the spectral net's output width; None: n_clusters, as in the paper
    validation_fraction: float = 0.1  # held out per stage for the LR schedule
    n_init: int = 10  # k-means restarts of the readout

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.embedding_dim is None or self.embedding_dim >= 1, f"embedding_dim must be >= 1, got {self.embedding_dim}")
        if self.embedding_dim is None and isinstance(self.n_clusters, int):
            self.embedding_dim = self.n_clusters  # once n_clusters is known (from the labels or its estimate)
        require(self.n_neighbors >= 1, f"n_neighbors must be >= 1, got {self.n_neighbors}")
        require(self.scale_k >= 1, f"scale_k must be >= 1, got {self.scale_k}")
        require(self.scale in ("local", "global"), f"scale must be local or global, got {self.scale!r}")
        require(self.scale_rule in ("ours", "reference"), f"scale_rule must be ours or reference, got {self.scale_rule!r}")
        require(
            not (self.scale_rule == "reference" and self.scale == "global" and self.scale_k < 2),
            "scale_rule=reference with scale=global needs scale_k >= 2: its neighbor 1 is the point itself (σ = 0)",
        )
        require(
            self.affinity_input in ("auto", "raw", "code", "siamese"),
            f"affinity_input must be auto, raw, code or siamese, got {self.affinity_input!r}",
        )
        require(
            self.laplacian in ("unnormalized", "normalized"),
            f"laplacian must be unnormalized or normalized, got {self.laplacian!r}",
        )
        require(0 < self.validation_fraction < 0.5, f"validation_fraction must be in (0, 0.5), got {self.validation_fraction}")
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
        if self.embedding_dim is not None:
            require(
                self.spectral.batch_size > self.embedding_dim,
                f"spectral.batch_size ({self.spectral.batch_size}) must exceed the embedding width ({self.embedding_dim}) "
                "to orthonormalize a batch",
            )
        wanted = {"code": self.ae.enabled, "siamese": self.siamese.enabled}
        require(
            wanted.get(self.affinity_input, True),
            f"affinity_input={self.affinity_input} needs the {'ae' if self.affinity_input == 'code' else 'siamese'} stage enabled",
        )


@dataclass
class DecoderConfig:
    """SpectralNetAE's decoder from Ỹ back to the spectral net's input: its hidden widths, and the
    activation after its first layer (LeakyReLU after the others; the output is linear). The
    reference (Arthedon/SpectralNetAutoEncoder, Model/SpectralNetAEModel.py) puts a tanh there."""

    hidden: Optional[List[int]] = None  # None: the spectral net's hidden widths reversed
    first_activation: str = "leaky_relu"  # leaky_relu (ours) or tanh (the reference's)

    def __post_init__(self) -> None:
        require(self.hidden is None or min(self.hidden, default=1) >= 1, f"decoder.hidden must be positive widths, got {self.hidden}")
        require(
            self.first_activation in ("leaky_relu", "tanh"),
            f"decoder.first_activation must be leaky_relu or tanh, got {self.first_activation!r}",
        )


@dataclass
class SpectralNetAEConfig(SpectralNetConfig):
    """SpectralNet's parameters plus the reconstruction weight ``alpha`` and the decoder."""

    alpha: float = 1e-3
    decoder: DecoderConfig = field(default_factory=DecoderConfig)

    @property
    def decoder_hidden(self) -> list[int]:
        """The decoder's hidden widths, ``decoder.hidden`` resolved."""
        return list(reversed(self.spectral.hidden)) if self.decoder.hidden is None else list(self.decoder.hidden)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.alpha >= 0, f"alpha must be >= 0, got {self.alpha}")
        require(
            self.decoder.first_activation == "leaky_relu" or len(self.decoder_hidden) > 0,
            "decoder.first_activation=tanh needs a hidden layer to follow: the decoder has none (decoder.hidden)",
        )
