"""The contract every method fulfils.

A method is a scikit-learn-style estimator: constructed from validated parameters, ``fit`` on
samples, ``predict`` cluster labels for any samples, ``save``/``load`` through the checkpoint
format. Training services (device, logging, checkpoints, plots) come from a
:class:`~deepclust_cli.engine.context.Context`, so the same code serves the library and the CLI.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Sequence, Type, TypeVar, Union

import numpy as np
import torch
from omegaconf import OmegaConf

from deepclust_cli import plots, predictions
from deepclust_cli.config import make_config
from deepclust_cli.data.base import Split
from deepclust_cli.engine.checkpoint import load_checkpoint, save_checkpoint
from deepclust_cli.engine.context import Context
from deepclust_cli.errors import CheckpointError, DataError, require
from deepclust_cli.methods import METHODS
from deepclust_cli.methods.config import ClusteringConfig, MethodConfig
from deepclust_cli.ops.metrics import clustering_metrics, label_free_scores

M = TypeVar("M", bound="ClusteringMethod")
ArrayLike = Union[np.ndarray, torch.Tensor]
EvalSet = tuple[torch.Tensor, Optional[torch.Tensor]]  # held-out samples and their labels, if any
COLLAPSE_SHARE = 0.9  # a run warns when one cluster holds more than this share of the samples


@dataclass
class Assignment:
    """What a method says of each sample: its cluster, the space the cluster was assigned in, and
    how sure it is where the method has soft assignments (LNSCC's ``max_k q_ik``; None elsewhere)."""

    clusters: torch.Tensor
    embedding: torch.Tensor
    confidence: Optional[torch.Tensor] = None


class ClusteringMethod:
    """Base class: parameter validation, input checks, persistence and the default evaluation.

    Subclasses set ``name`` and ``Config`` and implement ``_fit``, ``_predict``, ``_state`` and
    ``_load_state``. ``fit`` never uses labels to train; when given, they only feed the metrics a
    method may log while it trains.
    """

    name: ClassVar[str]
    Config: ClassVar[Type[MethodConfig]] = MethodConfig
    scores_held_out: ClassVar[bool] = False  # whether fit reads eval_set (a run prepares it only then)
    data_parallel: ClassVar[bool] = False  # whether fit shards its batches over context.world's ranks

    def __init__(self, *, device: Union[str, torch.device] = "cpu", **params: Any) -> None:
        self.config = make_config(self.Config, {"name": self.name, **params}, where=self.name)
        require(self.config.name == self.name, f"{type(self).__name__} got name={self.config.name!r}")
        if isinstance(self.config, ClusteringConfig):
            require(self.config.n_clusters is not None, f"{self.name}: n_clusters is required")
        self.device = torch.device(device)
        self.fitted = False
        self.fit_shape: Optional[tuple[int, ...]] = None  # the shape of the data training started on
        self.params = params_of(self.config)  # computed once: every checkpoint stores them
        self._labels: Optional[torch.Tensor] = None  # the training samples' clusters, once fitted
        self.cluster_count: Optional[Any] = None  # n_clusters=auto: the ClusterCountEstimate fit made

    @classmethod
    def from_config(cls: Type[M], config: MethodConfig, device: Union[str, torch.device] = "cpu") -> M:
        return cls(device=device, **{k: v for k, v in params_of(config).items() if k != "name"})

    # -- the estimator interface -------------------------------------------------------------
    def prepare(self, split: Split, num_workers: int = 0) -> torch.Tensor:
        """The input ``fit``/``predict`` take from a dataset split: float vectors by default,
        images read from disk decoded by ``num_workers`` processes."""
        return split.vectors(num_workers)

    def fit(
        self: M,
        x: ArrayLike,
        y: Optional[ArrayLike] = None,
        *,
        context: Optional[Context] = None,
        eval_set: Optional[tuple[ArrayLike, Optional[ArrayLike]]] = None,
    ) -> M:
        """Train on ``x``. ``y`` and ``eval_set = (x_held_out, y_held_out)`` are never trained on:
        a method may only score them while it trains (AND's periodic weighted-kNN accuracy).

        With a ``context`` that resumed from a checkpoint of an unfinished fit, training continues
        where the checkpoint left it — on data of the shape it started on."""
        x = self._check_input(x)
        context = context or Context(device=self.device, seed=self.config.seed)
        if isinstance(self.config, ClusteringConfig) and (self.config.estimates_clusters or self.cluster_count is not None):
            self._estimate_cluster_count(x, context)
        if isinstance(self.config, ClusteringConfig) and len(x) < self.config.n_clusters:
            raise DataError(f"{self.name}: {len(x)} samples cannot form n_clusters={self.config.n_clusters} clusters")
        held_out = None
        if eval_set is not None:
            held_out = (self._check_input(eval_set[0]), None if eval_set[1] is None else _labels_tensor(eval_set[1]))
        labels = None if y is None else _labels_tensor(y)
        shape = _shape_of(x)
        resuming = context.resumed_progress is not None and self.fit_shape is not None
        if resuming and shape != self.fit_shape:
            raise DataError(
                f"{self.name}: the checkpoint was trained on data of shape {self.fit_shape}, this data is {shape}; "
                "resume on the same data, or start afresh without --resume"
            )
        self.fit_shape = shape
        self._labels = None
        with context.training():
            self._fit(x, labels, context, held_out, resuming)
        self.fitted = True
        if self._labels is None:  # methods that know their training clusters already set them in _fit
            self._labels = self._assign(x).clusters.cpu()
        return self

    def _estimate_cluster_count(self, x: torch.Tensor, context: Context) -> None:
        """``n_clusters=auto``: the eigengap estimate on the input (:mod:`deepclust_cli.ops.cluster_count`),
        made once — a resumed fit and a reloaded model keep the first estimate."""
        from deepclust_cli.ops.cluster_count import estimate_n_clusters

        if self.cluster_count is None:
            low, high = self.config.n_clusters_range
            try:
                self.cluster_count = estimate_n_clusters(_as_rows(x), low, high, seed=self.config.seed)
            except ValueError as error:
                raise DataError(f"{self.name}: n_clusters=auto: {error}") from None
            estimate = self.cluster_count
            context.log(
                f"{self.name}: n_clusters=auto: {estimate.n_clusters} clusters (largest eigengap of the normalized "
                f"Laplacian between {estimate.low} and {estimate.high})"
            )
            path = context.plot_path("n_clusters")
            if path is not None:
                plots.eigengap(estimate.eigenvalues, estimate.n_clusters, (estimate.low, estimate.high), path)
        self._set_cluster_count(self.cluster_count.n_clusters)

    def _set_cluster_count(self, n_clusters: int) -> None:
        self.config = dataclasses.replace(self.config, n_clusters=n_clusters)
        self.params = params_of(self.config)

    # -- scikit-learn's fitted attributes ------------------------------------------------------
    @property
    def labels_(self) -> np.ndarray:
        """The cluster of every training sample (scikit-learn's ``labels_``)."""
        if self._labels is None:
            raise AttributeError(f"{self.name} has no labels_ yet: call fit(X) first")
        return self._labels.numpy()

    @property
    def cluster_centers_(self) -> np.ndarray:
        """The cluster centers in the space :meth:`transform` maps to (methods that have them)."""
        centers = getattr(self, "centers", None)
        if centers is None:
            raise AttributeError(f"{self.name} has no cluster_centers_" + ("" if self.fitted else " yet: call fit(X) first"))
        return centers.detach().cpu().numpy()

    @property
    def n_clusters_(self) -> int:
        """How many clusters :meth:`predict` assigns samples to."""
        return int(self.config.n_clusters)

    def predict(self, x: ArrayLike) -> np.ndarray:
        """Cluster labels in ``0..n_clusters-1`` for any samples, seen in ``fit`` or not (for
        GeoCluster, whose clusters are its tree's leaves, ``0..n_leaves_-1``)."""
        self._require_fitted()
        return np.asarray(self._predict(self._check_fitted_input(x)).cpu().numpy(), dtype=np.int64)

    def transform(self, x: ArrayLike) -> np.ndarray:
        """The space ``predict`` assigns clusters in, for any samples: the method's embedding, or
        the input itself for methods that do not embed."""
        self._require_fitted()
        return self._assign(self._check_fitted_input(x)).embedding.cpu().numpy()

    def fit_predict(self, x: ArrayLike, y: Optional[ArrayLike] = None, *, context: Optional[Context] = None) -> np.ndarray:
        return self.fit(x, y, context=context).predict(x)

    def evaluate(
        self,
        split: Split,
        context: Context,
        reference: Optional[Split] = None,
        *,
        split_name: str = "all",
        class_names: Optional[Sequence[str]] = None,
        out_of_sample: bool = False,
    ) -> dict[str, Any]:
        """Score :meth:`predict` on ``split`` and keep what it says of each sample.

        Metrics: acc, nmi, ari when the split has labels, and always the label-free scores of
        :func:`~deepclust_cli.ops.metrics.label_free_scores` in the space the clusters were
        assigned in. Plots: the embedding coloured by cluster (and by class), the confusion matrix.
        Files: ``predictions/<split_name>.csv`` and the embedding and centers (:mod:`deepclust_cli.predictions`).
        ``reference`` is the split the method was fitted on, for methods whose evaluation reads it
        (AND's kNN classifier); ``out_of_sample`` asks for the stored model's assignments where a
        method would otherwise refit its readout on ``split`` (AND's k-means)."""
        self._require_fitted()
        assignment, own_metrics = self._evaluate(split, context, reference, out_of_sample)
        if assignment is None:
            return own_metrics
        return {**self._report(split, assignment, context, split_name, class_names), **own_metrics}

    def _evaluate(
        self, split: Split, context: Context, reference: Optional[Split], out_of_sample: bool
    ) -> tuple[Optional[Assignment], dict[str, Any]]:
        """The assignment :meth:`evaluate` reports on (None: nothing to report, e.g. a rank that
        only helped) and the method's own metrics beside the shared ones."""
        return self._assign(self._check_fitted_input(self.prepare(split, context.trainer.num_workers))), {}

    def _require_fitted(self) -> None:
        if not self.fitted:
            raise DataError(f"{self.name} is not fitted yet: call fit(X) or load a checkpoint first")

    def _report(
        self, split: Split, assignment: Assignment, context: Context, split_name: str, class_names: Optional[Sequence[str]]
    ) -> dict[str, Any]:
        """Metrics, plots and per-sample files of ``assignment`` on ``split``."""
        predicted = assignment.clusters.cpu().numpy()
        embedding = assignment.embedding.cpu()
        path = context.plot_path("embedding")
        if path is not None:
            plots.embedding(embedding, predicted, split.y, path, title=f"{self.name} on {len(predicted)} samples")
        self._plot_cluster_gallery(split, assignment, context)
        metrics: dict[str, Any] = {}
        if split.y is not None:
            path = context.plot_path("confusion_matrix")
            if path is not None:
                plots.confusion_matrix(split.y, predicted, path, title=f"{self.name}: clusters vs classes")
            metrics = clustering_metrics(split.y, predicted)
        metrics.update(label_free_scores(embedding, predicted, self.n_clusters_, seed=self.config.seed))
        if self.cluster_count is not None:
            metrics["n_clusters_estimated"] = self.cluster_count.n_clusters
        if metrics["largest_cluster"] > COLLAPSE_SHARE and self.n_clusters_ > 1:
            context.warn(
                f"{self.name}: the clusters collapsed: one holds {metrics['largest_cluster']:.1%} of the {len(predicted)} samples "
                f"({int(metrics['clusters_used'])} of {self.n_clusters_} clusters used)"
            )
        folder = context.predictions_dir()
        if folder is not None:
            confidence = None if assignment.confidence is None else assignment.confidence.cpu().numpy()
            centers = getattr(self, "centers", None)
            written = predictions.write_predictions(
                folder, split_name, split.identity(), predicted, confidence=confidence, labels=split.y,
                class_names=class_names, embedding=embedding, centers=None if centers is None else centers.detach(),
            )
            context.log(f"cluster of each sample: {written}")
        return metrics

    def _plot_cluster_gallery(self, split: Split, assignment: Assignment, context: Context) -> None:
        """``plots/clusters.png`` for image data: per cluster (the first ``plots.cluster_rows``),
        its ``plots.images_per_cluster`` images nearest the cluster's center in the assignment's
        space (the method's centers where it has them in that space, else the cluster's mean)."""
        path = context.plot_path("clusters")
        images = split.x
        if path is None or not (split.is_lazy or (images.dtype == torch.uint8 and images.ndim == 4)):
            return
        settings = context.plot_settings
        z, clusters = assignment.embedding.float().cpu(), assignment.clusters.cpu()
        centers = getattr(self, "centers", None)
        if centers is None or centers.shape[-1] != z.shape[1] or len(centers) <= int(clusters.max()):
            sums = torch.zeros(int(clusters.max()) + 1, z.shape[1]).index_add_(0, clusters, z)
            centers = sums / torch.bincount(clusters, minlength=len(sums)).clamp(min=1)[:, None].float()
        centers = centers.detach().float().cpu()
        used = torch.unique(clusters)[: settings.cluster_rows]
        distance = (z - centers[clusters]).norm(dim=1)
        picks, sizes = [], []
        for cluster in used.tolist():  # one row per cluster shown: at most plots.cluster_rows of them
            members = torch.nonzero(clusters == cluster)[:, 0]
            picks.append(members[distance[members].argsort()[: settings.images_per_cluster]])
            sizes.append(len(members))
        chosen = torch.cat(picks)
        pictures = (split.x.load(chosen) if split.is_lazy else images[chosen]).permute(0, 2, 3, 1).numpy()
        grid = np.full((len(picks), settings.images_per_cluster, *pictures.shape[1:]), 255, dtype=np.uint8)
        start = 0
        for row, pick in enumerate(picks):
            grid[row, : len(pick)] = pictures[start : start + len(pick)]
            start += len(pick)
        plots.cluster_gallery(grid, used.tolist(), sizes, path, title=f"{self.name}: the images nearest each cluster's center")

    def _check_input(self, x: ArrayLike) -> torch.Tensor:
        tensor = torch.as_tensor(x) if torch.is_tensor(x) else torch.as_tensor(np.asarray(x))
        if tensor.ndim != 2:
            raise DataError(f"{self.name}: expected a 2-D array (samples × features), got shape {tuple(tensor.shape)}")
        if len(tensor) == 0:
            raise DataError(f"{self.name}: got no samples")
        if tensor.shape[1] == 0:
            raise DataError(f"{self.name}: the samples have no features (shape {tuple(tensor.shape)})")
        tensor = tensor.to(self.device, torch.float32)
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise DataError(f"{self.name}: the input holds {bad} NaN or inf values")
        return tensor

    def _check_fitted_input(self, x: ArrayLike) -> torch.Tensor:
        """:meth:`_check_input`, and samples shaped as the ones the model was trained on."""
        tensor = self._check_input(x)
        if self.fit_shape is not None and tuple(tensor.shape[1:]) != tuple(self.fit_shape[1:]):
            trained = " × ".join(str(size) for size in self.fit_shape[1:])
            raise DataError(
                f"{self.name}: the model was trained on samples of {trained} features; this data has "
                f"{' × '.join(str(size) for size in tensor.shape[1:])}"
            )
        return tensor

    # -- what subclasses implement -----------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        """Train; ``resuming``: continue from the training state a checkpoint loaded (same data shape)."""
        raise NotImplementedError

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _predict_and_embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Labels and the space they were assigned in (the input itself unless the method embeds)."""
        return self._predict(x), x

    def _assign(self, x: torch.Tensor) -> Assignment:
        """Clusters, their space and (for methods with soft assignments) the confidence of each sample."""
        return Assignment(*self._predict_and_embed(x))

    def _state(self) -> dict[str, Any]:
        """The method's state as tensors and plain values (checkpoints load with ``weights_only``):
        the fitted model, or — mid-training — whatever training needs to continue."""
        raise NotImplementedError

    def _load_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- persistence -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        fit_shape = None if self.fit_shape is None else list(self.fit_shape)
        state = {"fitted": self.fitted, "fit_shape": fit_shape, **self._state()}
        if self.fitted and self._labels is not None:
            state["labels"] = self._labels
        if self.cluster_count is not None:
            state["cluster_count"] = {"n_clusters": self.cluster_count.n_clusters, "low": self.cluster_count.low,
                                      "high": self.cluster_count.high, "eigenvalues": torch.as_tensor(self.cluster_count.eigenvalues)}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.fitted = bool(state.get("fitted", False))
        self.fit_shape = None if state.get("fit_shape") is None else tuple(state["fit_shape"])
        self._labels = state.get("labels")
        if state.get("cluster_count") is not None:
            from deepclust_cli.ops.cluster_count import ClusterCountEstimate

            stored = state["cluster_count"]
            self.cluster_count = ClusterCountEstimate(int(stored["n_clusters"]), stored["eigenvalues"].numpy(), int(stored["low"]), int(stored["high"]))
            self._set_cluster_count(self.cluster_count.n_clusters)
        self._load_state(state)

    def describe(self) -> dict[str, Any]:
        """Everything needed to rebuild this method: name, parameters, state."""
        return {"name": self.name, "params": self.params, "state": self.state_dict()}

    def save(self, path: Union[str, Path]) -> None:
        save_checkpoint(path, {"method": self.describe()})

    @classmethod
    def load(cls: Type[M], path: Union[str, Path], device: Union[str, torch.device] = "cpu") -> M:
        """Rebuild a method saved by ``save`` or by a CLI session (``checkpoints/last.ckpt``)."""
        stored = load_checkpoint(path).get("method") or {}
        if cls is not ClusteringMethod and stored.get("name") != cls.name:
            raise CheckpointError(f"{path}: holds method '{stored.get('name')}', not '{cls.name}'")
        method_class = METHODS.get(stored["name"]) if cls is ClusteringMethod else cls
        params = {k: v for k, v in stored["params"].items() if k != "name"}
        method = method_class(device=device, **params)
        method.load_state_dict(stored["state"])
        return method


def _as_rows(x: Any) -> torch.Tensor:
    """Samples as float rows, for lazily decoded images too (their first ``MAX_SAMPLES`` at most)."""
    if isinstance(x, torch.Tensor):
        return x.flatten(1).float()
    from deepclust_cli.ops.cluster_count import MAX_SAMPLES

    return x.load(torch.arange(min(len(x), MAX_SAMPLES))).flatten(1).float()


def _shape_of(x: Any) -> tuple[int, ...]:
    """Samples × the shape of one sample, for tensors and for lazily decoded images alike."""
    if isinstance(x, torch.Tensor):
        return tuple(x.shape)
    return (len(x), *x.load(torch.arange(1)).shape[1:])


def _labels_tensor(y: ArrayLike) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)


def params_of(config: MethodConfig) -> dict[str, Any]:
    """A config's fields as plain values (enums as their names), fit for a checkpoint."""
    return OmegaConf.to_container(OmegaConf.structured(config), enum_to_str=True)  # type: ignore[return-value]

