"""k-means baseline: scikit-learn's KMeans on the input vectors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch

from deepclust_cli.ops.kmeans import assign
from deepclust_cli.engine.context import Context
from deepclust_cli.errors import require
from deepclust_cli.methods.base import METHODS, ClusteringMethod, EvalSet, MethodConfig


@dataclass
class KMeansConfig(MethodConfig):
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


@METHODS.register("kmeans", schema=KMeansConfig)
class KMeans(ClusteringMethod):
    """Lloyd's algorithm minimizing Σ_i min_k ||x_i − μ_k||², k-means++ seeding, the best of
    ``n_init`` restarts by inertia. ``predict`` assigns each sample to its nearest stored centre.
    """

    name = "kmeans"
    Config = KMeansConfig
    config: KMeansConfig

    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet] = None) -> None:
        from sklearn.cluster import KMeans as SklearnKMeans  # deferred: a slow import for every CLI start

        model = SklearnKMeans(
            n_clusters=self.config.n_clusters,
            init=self.config.init,
            n_init=self.config.n_init,
            max_iter=self.config.max_iter,
            tol=self.config.tol,
            algorithm=self.config.algorithm,
            random_state=self.config.seed,
        )
        with context.warnings_as_log("k-means"):
            model.fit(x.cpu().numpy())
        self.centers = torch.as_tensor(model.cluster_centers_, dtype=torch.float32)
        context.log(f"k-means: inertia {model.inertia_:.6g} after {model.n_iter_} iterations (best of {self.config.n_init})")

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return assign(x, self.centers)[0]

    def _state(self) -> dict[str, Any]:
        return {"centers": self.centers.cpu()} if self.fitted else {}

    def _load_state(self, state: dict[str, Any]) -> None:
        if self.fitted:
            self.centers = state["centers"].float()
