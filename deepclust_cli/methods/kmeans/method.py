"""k-means baseline: scikit-learn's KMeans on the input vectors."""

from __future__ import annotations

from typing import Any, Optional

import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.methods.base import ClusteringMethod, EvalSet
from deepclust_cli.methods.kmeans.config import KMeansConfig
from deepclust_cli.ops.kmeans import assign


class KMeans(ClusteringMethod):
    """Lloyd's algorithm minimizing Σ_i min_k ||x_i − μ_k||², k-means++ seeding, the best of
    ``n_init`` restarts by inertia. ``predict`` assigns each sample to its nearest stored center.
    """

    name = "kmeans"
    Config = KMeansConfig
    config: KMeansConfig

    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
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
        self._labels = torch.as_tensor(model.labels_, dtype=torch.int64)
        context.log(f"k-means: inertia {model.inertia_:.6g} after {model.n_iter_} iterations (best of {self.config.n_init})")

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return assign(x, self.centers)[0]

    def _state(self) -> dict[str, Any]:
        return {"centers": self.centers.cpu()} if self.fitted else {}

    def _load_state(self, state: dict[str, Any]) -> None:
        if self.fitted:
            self.centers = state["centers"].float()
