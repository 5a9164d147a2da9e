"""The k-means baseline's config schema (scikit-learn's KMeans parameters)."""

from __future__ import annotations

from dataclasses import dataclass

from deepclust_cli.errors import require
from deepclust_cli.methods.config import ClusteringConfig


@dataclass
class KMeansConfig(ClusteringConfig):
    n_init: int = 10
    max_iter: int = 300
    tol: float = 1e-4
    init: str = "k-means++"
    algorithm: str = "lloyd"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_init >= 1, f"n_init must be >= 1, got {self.n_init}")
        require(self.max_iter >= 1, f"max_iter must be >= 1, got {self.max_iter}")
        require(self.tol >= 0, f"tol must be >= 0, got {self.tol}")
        require(self.init in ("k-means++", "random"), f"init must be 'k-means++' or 'random', got {self.init!r}")
        require(self.algorithm in ("lloyd", "elkan"), f"algorithm must be 'lloyd' or 'elkan', got {self.algorithm!r}")
