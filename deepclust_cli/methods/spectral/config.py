"""The spectral-clustering baseline's config schema (its kNN graph, scikit-learn's SpectralClustering)."""

from __future__ import annotations

from dataclasses import dataclass

from deepclust_cli.errors import require
from deepclust_cli.methods.config import ClusteringConfig, require_knn_backend


@dataclass
class SpectralConfig(ClusteringConfig):
    n_neighbors: int = 10
    knn_backend: str = "auto"  # auto (exact up to 20,000 points on the CPU, else ivf), exact, ivf, hnsw or annoy
    assign_labels: str = "kmeans"  # kmeans, discretize or cluster_qr
    eigen_solver: str = "lobpcg"  # lobpcg, or arpack (shift-invert: minutes from ~20k points)
    n_init: int = 10
    predict_neighbors: int = 1  # out-of-sample: majority label among this many nearest fitted points
    max_fit_samples: int = 200_000  # refuse larger fits: scikit-learn's eigensolver grows past an hour there (README, Results)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_neighbors >= 1, f"n_neighbors must be >= 1, got {self.n_neighbors}")
        require_knn_backend(self.knn_backend, "knn_backend")
        require(
            self.assign_labels in ("kmeans", "discretize", "cluster_qr"),
            f"assign_labels must be 'kmeans', 'discretize' or 'cluster_qr', got {self.assign_labels!r}",
        )
        require(self.eigen_solver in ("arpack", "lobpcg"), f"eigen_solver must be 'arpack' or 'lobpcg', got {self.eigen_solver!r}")
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
        require(self.predict_neighbors >= 1, f"predict_neighbors must be >= 1, got {self.predict_neighbors}")
        require(self.max_fit_samples >= 1, f"max_fit_samples must be >= 1, got {self.max_fit_samples}")
