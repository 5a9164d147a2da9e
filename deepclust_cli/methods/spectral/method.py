"""Spectral-clustering baseline: scikit-learn's SpectralClustering on a kNN graph from our neighbors module."""

from __future__ import annotations

from typing import Any, Optional

import torch
from scipy.sparse.csgraph import connected_components

from deepclust_cli.engine.context import Context
from deepclust_cli.errors import DataError
from deepclust_cli.methods.base import ClusteringMethod, EvalSet
from deepclust_cli.methods.spectral.config import SpectralConfig
from deepclust_cli.ops.neighbors import knn, knn_graph


class Spectral(ClusteringMethod):
    """Normalized spectral clustering (Ng, Jordan & Weiss, 2002) on the symmetric kNN connectivity
    graph: the ``n_clusters`` leading eigenvectors of the normalized affinity, then k-means on
    them. Spectral clustering has no out-of-sample map, so ``predict`` gives each sample the
    majority label of its ``predict_neighbors`` nearest fitted points; the fitted points and their
    labels are part of the state.
    """

    name = "spectral"
    Config = SpectralConfig
    config: SpectralConfig

    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        if len(x) > self.config.max_fit_samples:
            raise DataError(
                f"spectral: {len(x):,} samples exceed method.max_fit_samples={self.config.max_fit_samples:,}, beyond which "
                "scikit-learn's eigensolver runs for hours; use method=spectralnet with method.spectral.sparse=true, "
                "subsample with dataset.max_samples, or raise method.max_fit_samples"
            )
        from sklearn.cluster import SpectralClustering  # deferred: a slow import for every CLI start

        graph = knn_graph(
            x,
            self.config.n_neighbors,
            backend=self.config.knn_backend,
            device=context.device,
            seed=self.config.seed,  # the approximate back ends' cells, trees
            progress="spectral: kNN graph" if context.show_progress else None,
        )
        n_components, _ = connected_components(graph, directed=False)
        if n_components > self.config.n_clusters:
            context.warn(
                f"spectral: the {self.config.n_neighbors}-NN graph has {n_components} connected components, "
                f"more than n_clusters={self.config.n_clusters}; raise method.n_neighbors"
            )
        model = SpectralClustering(
            n_clusters=self.config.n_clusters,
            affinity="precomputed",
            assign_labels=self.config.assign_labels,
            eigen_solver=self.config.eigen_solver,
            n_init=self.config.n_init,
            random_state=self.config.seed,
        )
        with context.warnings_as_log("spectral", _solver_note):
            labels = model.fit_predict(graph)
        self.fitted_points = x.cpu()
        self.fitted_labels = torch.as_tensor(labels, dtype=torch.int64)
        self._labels = self.fitted_labels
        context.log(f"spectral: {self.config.n_neighbors}-NN graph with {graph.nnz} edges, {n_components} component(s)")

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        k = min(self.config.predict_neighbors, len(self.fitted_points))
        _, nearest = knn(self.fitted_points.to(x.device), k, queries=x)
        votes = self.fitted_labels.to(x.device)[nearest]
        return votes[:, 0] if k == 1 else torch.mode(votes, dim=1).values

    def _state(self) -> dict[str, Any]:
        return {"fitted_points": self.fitted_points, "fitted_labels": self.fitted_labels} if self.fitted else {}

    def _load_state(self, state: dict[str, Any]) -> None:
        if self.fitted:
            self.fitted_points = state["fitted_points"].float()
            self.fitted_labels = state["fitted_labels"].long()


def _solver_note(message: str) -> str | None:
    """One line for what scikit-learn's eigen-solvers warn about, in several lines each.

    A disconnected graph is reported by ``_fit`` itself when it matters (more components than
    clusters), so that warning is dropped.
    """
    if "Graph is not fully connected" in message:
        return None
    if "not reaching the requested tolerance" in message:
        return "LOBPCG stopped at its iteration limit short of its tolerance; eigen_solver=arpack is exact but slower"
    return message
