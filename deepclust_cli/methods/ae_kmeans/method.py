"""Autoencoder + k-means, the baseline SpectralNetAE's authors report beside it (the "AutoEncoder"
column of Arthedon/SpectralNetAutoEncoder's README table: MNIST ACC 80.2 / NMI 73.4): does the
spectral term beat the plain codes?

1. An autoencoder (:class:`~deepclust_cli.nets.autoencoder.Autoencoder`, the one SpectralNet
   pretrains with: ReLU encoder to a linear ``code_dim``-d code, mirrored decoder) trained on
   ``MSE(x, x̂)`` by the shared AE stage, its LR schedule driven by a held-out validation share;
2. k-means (k-means++ seeds, best of ``n_init`` restarts) on the codes of all samples.

``predict`` encodes new samples and assigns each to its nearest stored center.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from deepclust_cli.engine.context import Context
from deepclust_cli.methods.ae_kmeans.config import AEKMeansConfig
from deepclust_cli.methods.autoencoder import pretrain_autoencoder
from deepclust_cli.methods.base import ClusteringMethod, EvalSet
from deepclust_cli.methods.stage import Stage, validation_split
from deepclust_cli.nets.autoencoder import Autoencoder
from deepclust_cli.nets.mlp import apply_in_batches
from deepclust_cli.ops.kmeans import assign, kmeans


class AEKMeans(ClusteringMethod):
    """k-means on the codes of an autoencoder trained on the input."""

    name = "ae_kmeans"
    Config = AEKMeansConfig
    config: AEKMeansConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.in_dim: Optional[int] = None
        self.autoencoder: Optional[Autoencoder] = None
        self.stage: Optional[Stage] = None
        self.stage_state: Optional[dict[str, Any]] = None  # a checkpoint's AE stage, until fit continues it
        self.centers: Optional[torch.Tensor] = None

    def _build(self, in_dim: int) -> None:
        """A fresh autoencoder, initialized from the method's seed without touching the global generator."""
        self.in_dim = in_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.seed)
            self.autoencoder = Autoencoder(in_dim, self.config.ae.hidden, self.config.ae.code_dim).to(self.device)
        self.centers = None

    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        config = self.config
        if not resuming or self.autoencoder is None:
            self._build(x.shape[1])
            self.stage_state = None
        stage = self.stage = Stage("ae", self.autoencoder.parameters(), config.ae, context)
        if self.stage_state is not None:
            stage.load_state_dict(self.stage_state)
        self.stage_state = None
        train, valid = validation_split(len(x), config.validation_fraction, config.seed, self.device)
        codes = pretrain_autoencoder(stage, self.autoencoder, x, train, valid, lambda: context.checkpoint(self, stage.loop.where()), config.seed)
        context.require_finite(codes, f"{self.name}: the autoencoder's codes")
        self.centers = kmeans(codes, config.n_clusters, n_init=config.n_init, seed=config.seed).centers.cpu()
        self._labels = assign(codes, self.centers.to(codes.device))[0].cpu()

    def _predict_and_embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        codes = apply_in_batches(self.autoencoder.encoder, x)
        return assign(codes, self.centers.to(codes.device))[0], codes

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._predict_and_embed(x)[0]

    def _state(self) -> dict[str, Any]:
        if self.autoencoder is None:
            return {}
        stage = self.stage.state_dict() if self.stage is not None else self.stage_state
        state: dict[str, Any] = {"in_dim": self.in_dim, "autoencoder": {k: v.cpu() for k, v in self.autoencoder.state_dict().items()}, "stage": stage}
        if self.centers is not None:
            state["centers"] = self.centers.cpu()
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        if "autoencoder" not in state:
            return
        self._build(int(state["in_dim"]))
        self.autoencoder.load_state_dict(state["autoencoder"])
        self.stage_state = state["stage"]
        self.centers = state["centers"].float() if "centers" in state else None
