"""SpectralNet (Shaham, Stanton, Li, Nadler, Basri & Kluger, ICLR 2018).

A network learns a map whose outputs on a batch approximate the leading eigenvectors of the
batch's graph Laplacian; k-means on those outputs gives the clusters, and the map embeds unseen
points. Three stages, each optional but the last:

1. an autoencoder, whose codes become the input of the later nets;
2. a Siamese net trained to pull kNN pairs together and push random pairs apart, whose outputs
   are the space the affinities are measured in;
3. the spectral net: an MLP followed by an orthonormalization layer, trained by alternating an
   orthogonalization step (recompute the layer from one batch) and a gradient step on
   ``Σ_ij W_ij ‖y_i − y_j‖² / (2m)`` for another batch.

``predict`` assigns points to k-means centers fitted once on the training embedding and kept in
the state, so labels are the same on every call and defined for unseen points.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import torch
from torch import nn

from deepclust_cli import plots
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.engine.seeds import epoch_generator, passes_for
from deepclust_cli.errors import DataError
from deepclust_cli.methods.autoencoder import pretrain_autoencoder
from deepclust_cli.methods.base import ClusteringMethod, EvalSet
from deepclust_cli.methods.spectralnet.config import SiameseStage, SpectralNetConfig
from deepclust_cli.methods.spectralnet.network import SpectralNetwork
from deepclust_cli.methods.stage import Stage, run_minibatch_stage, validation_split
from deepclust_cli.nets.autoencoder import Autoencoder
from deepclust_cli.nets.mlp import apply_in_batches, mlp
from deepclust_cli.ops.kmeans import assign, kmeans
from deepclust_cli.ops.neighbors import gaussian_knn_weights, knn


def spectral_loss(weights: torch.Tensor, indices: torch.Tensor, y: torch.Tensor, normalized: bool = False) -> torch.Tensor:
    """``Σ_ij S_ij ‖y_i − y_j‖² / (2m) = trace(Yᵀ L Y) / m`` for the symmetric affinity
    ``S = (W + Wᵀ)/2`` and ``L = D − S``, where ``W`` holds each point's kNN ``weights`` at ``indices``.

    Because ``‖y_i − y_j‖²`` is symmetric, ``Σ_ij S_ij ‖y_i − y_j‖² = Σ_ij W_ij ‖y_i − y_j‖²``: the
    sum runs over each point's own neighbor list, O(m·k) work with no m × m matrix.
    ``normalized``: the same with ``y_i / √d_i`` (``d = S·1``), i.e. ``trace(Yᵀ L_sym Y) / m`` with
    ``L_sym = I − D^-½ S D^-½`` (the reference's ``is_normalized``).
    """
    if normalized:
        degree = (weights.sum(dim=1) + torch.zeros_like(weights[:, 0]).index_add_(0, indices.reshape(-1), weights.reshape(-1))) / 2
        y = y / degree.clamp_min(torch.finfo(y.dtype).tiny).sqrt().unsqueeze(1)
    # index_select, not y[indices]: the latter's backward adds into y's gradient with parallel
    # atomics on CPU, which made runs with the same seed differ in the last bits, then in labels.
    differences = y.unsqueeze(1) - y.index_select(0, indices.reshape(-1)).view(*indices.shape, y.shape[1])
    return (weights * differences.square().sum(dim=2)).sum() / (2 * len(y))


def contrastive_loss(first: torch.Tensor, second: torch.Tensor, positive: torch.Tensor, margin: float) -> torch.Tensor:
    """Hadsell et al. (2006): ``y·d² + (1 − y)·max(margin − d, 0)²`` averaged over pairs, d = ‖f(a) − f(b)‖."""
    distance = (first - second).square().sum(dim=1).clamp_min(1e-12).sqrt()
    return torch.where(positive, distance.square(), (margin - distance).clamp_min(0).square()).mean()


SAMPLED_CLASH_CHUNK = 1 << 16  # anchors per clash test: bounds the chunk × n_neighbors comparison


def sampled_pairs(points: torch.Tensor, neighbors: torch.Tensor, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` Siamese anchors drawn from ``points`` (indices; without replacement, reshuffled
    passes when ``count`` exceeds them), each with one positive — a uniformly drawn one of its
    ``neighbors`` (the n × k kNN table) — and one negative uniform over all ``n`` points, redrawn
    once if it hit the anchor or its neighbors. The reference's sampling: one positive and one
    negative pair per point (KlugerLab/SpectralNet ``src/core/pairs.py``
    ``create_pairs_from_unlabeled_data``; shaham-lab/SpectralNet ``_siamesenet_trainer.py``
    ``_get_approx_nn_pairs``). Returns ``count × 3`` rows ``(anchor, positive, negative)``;
    O(count) memory besides the table."""
    n, k = neighbors.shape
    device = neighbors.device
    passes = -(-count // len(points))
    order = torch.cat([torch.randperm(len(points), generator=generator) for _ in range(passes)])[:count]
    anchors = points[order.to(points.device)].to(device)
    positives = neighbors[anchors, torch.randint(k, (count,), generator=generator).to(device)]
    negatives = torch.randint(n, (count,), generator=generator).to(device)
    redraw = torch.randint(n, (count,), generator=generator).to(device)
    clash = torch.cat([
        (chunk_negatives.unsqueeze(1) == neighbors[chunk_anchors]).any(dim=1) | (chunk_negatives == chunk_anchors)
        for chunk_anchors, chunk_negatives in zip(anchors.split(SAMPLED_CLASH_CHUNK), negatives.split(SAMPLED_CLASH_CHUNK), strict=True)
    ])
    # A second clash is as likely as the first (~k/n) and just stays a weak negative, as in _siamese_pairs.
    negatives = torch.where(clash, redraw, negatives)
    return torch.stack([anchors, positives, negatives], dim=1)


class SpectralNet(ClusteringMethod):
    """SpectralNet: optional autoencoder → optional Siamese net → spectral net → k-means."""

    name = "spectralnet"
    Config = SpectralNetConfig
    data_parallel = True
    config: SpectralNetConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.in_dim: Optional[int] = None
        self.nets: dict[str, nn.Module] = {}
        self.stages: dict[str, Stage] = {}
        self.stage_states: dict[str, dict[str, Any]] = {}  # loaded from a checkpoint, applied when fit resumes
        self.centers: Optional[torch.Tensor] = None

    # -- building ----------------------------------------------------------------------------
    def _build_nets(self, in_dim: int) -> None:
        """Fresh networks, initialized from the method's seed without touching the global generator."""
        config = self.config
        self.in_dim = in_dim
        self.nets = {}
        code_dim = in_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            if config.ae.enabled:
                self.nets["ae"] = Autoencoder(in_dim, config.ae.hidden, config.ae.code_dim)
                code_dim = config.ae.code_dim
            if config.siamese.enabled:
                self.nets["siamese"] = mlp(code_dim, [*config.siamese.hidden, config.siamese.output_dim], activation="relu")
            self.nets["spectral"] = SpectralNetwork(
                code_dim, config.spectral.hidden, config.embedding_dim, config.spectral.orthonorm, config.spectral.ridge
            )
        for net in self.nets.values():
            net.to(self.device)
        self.stages = {}
        self.centers = None

    def _stage_parameters(self) -> dict[str, list[nn.Parameter]]:
        """What each training stage optimizes: one stage per network."""
        return {name: list(net.parameters()) for name, net in self.nets.items()}

    def _build_stages(self, context: Context) -> None:
        """The training stages, continuing from loaded stage states when there are any."""
        stage_configs = {"ae": self.config.ae, "siamese": self.config.siamese, "spectral": self.config.spectral}
        self.stages = {name: Stage(name, parameters, stage_configs[name], context) for name, parameters in self._stage_parameters().items()}
        for name, state in self.stage_states.items():
            self.stages[name].load_state_dict(state)
        self.stage_states = {}

    # -- training ----------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        if not resuming:
            self._build_nets(x.shape[1])
            self.stage_states = {}
        self._build_stages(context)
        train, valid = self._split(len(x))

        def checkpoint(stage: str) -> Callable[[], None]:
            return lambda: context.checkpoint(self, self.stages[stage].loop.where())

        if "ae" in self.nets:
            pretrain_autoencoder(self.stages["ae"], self.nets["ae"], x, train, valid, checkpoint("ae"), self.config.seed)
        codes = self._codes(x)
        if "siamese" in self.nets:
            self._train_siamese(codes, train, valid, checkpoint("siamese"))
        affinity_space = self._affinity_space(x, codes)
        self._train_spectral(codes, affinity_space, train, valid, context, checkpoint("spectral"))

        embedding = self._cluster_space(apply_in_batches(self.nets["spectral"], codes))
        context.require_finite(embedding, f"{self.name}: the trained embedding")
        self.centers = kmeans(embedding, self.config.n_clusters, n_init=self.config.n_init, seed=self.config.seed).centers.cpu()
        self._labels = assign(embedding, self.centers.to(embedding.device))[0].cpu()
        path = context.plot_path("training_curves")
        if path is not None:
            plots.training_curves({name: stage.loop.history for name, stage in self.stages.items()}, path)

    def _split(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training and validation rows, shared by the stages (the validation loss drives their schedules)."""
        train, valid = validation_split(n, self.config.validation_fraction, self.config.seed, self.device)
        if len(train) <= self.config.embedding_dim:
            raise DataError(f"spectralnet: {n} samples leave too few to train a {self.config.embedding_dim}-d embedding")
        return train, valid

    def _train_siamese(self, codes: torch.Tensor, train: torch.Tensor, valid: torch.Tensor, checkpoint: Callable[[], None]) -> None:
        net, stage, config = self.nets["siamese"], self.stages["siamese"], self.config.siamese
        context = stage.context

        def pair_loss(anchors: torch.Tensor, partners: torch.Tensor, positive: torch.Tensor) -> torch.Tensor:
            # Each anchor is embedded once for all its pairs (a row of partners).
            with context.autocast():
                embedded = net(codes[anchors]).float()
                others = net(codes[partners.reshape(-1)]).float()
            embedded = embedded.repeat_interleave(partners.shape[1], dim=0)
            return contrastive_loss(embedded, others, positive.reshape(-1), config.margin)

        seed = self.config.seed
        if config.pairs_per_epoch is None:
            partners, positive = self._siamese_pairs(codes, config)

            def loss_of(rows: torch.Tensor) -> torch.Tensor:
                return pair_loss(rows, partners[rows], positive[rows])

            run_minibatch_stage(stage, net, train, valid, loss_of, checkpoint, seed, rows_per_batch=max(1, config.batch_size // partners.shape[1]))
            return

        _, neighbors = knn(codes, config.n_neighbors, backend=config.knn_backend, seed=seed)
        neighbors = neighbors.to(codes.device)
        one_of_each = torch.tensor([[True, False]], device=codes.device)

        def triple_loss(triples: torch.Tensor) -> torch.Tensor:
            return pair_loss(triples[:, 0], triples[:, 1:], one_of_each.expand(len(triples), 2))

        def sample(epoch: int, stream: int) -> torch.Tensor:
            return sampled_pairs(train, neighbors, config.pairs_per_epoch // 2, epoch_generator(seed, "siamese-pairs", epoch, stream))

        # One fixed draw for validation, each held-out point once, so epochs' validation losses compare.
        valid_triples = sampled_pairs(valid, neighbors, len(valid), epoch_generator(seed, "siamese-valid-pairs", 0))
        run_minibatch_stage(stage, net, train, valid_triples, triple_loss, checkpoint, seed, rows_per_batch=max(1, config.batch_size // 2), sample=sample)

    def _siamese_pairs(self, codes: torch.Tensor, config: SiameseStage) -> tuple[torch.Tensor, torch.Tensor]:
        """Per point: its ``n_neighbors`` nearest neighbors (positive) and as many random points
        outside that set (negative). Returns partner indices and the positive mask, both n×2k."""
        n, k = len(codes), config.n_neighbors
        _, neighbors = knn(codes, k, backend=config.knn_backend, seed=self.config.seed)
        generator = epoch_generator(self.config.seed, "siamese-negatives", 0)
        negatives = torch.randint(n, (n, k), generator=generator).to(codes.device)
        clash = (negatives.unsqueeze(2) == neighbors.unsqueeze(1)).any(dim=2) | (negatives == torch.arange(n, device=codes.device).unsqueeze(1))
        # Redraw the few clashes once; a second clash is as likely as the first (~k/n) and just stays a weak negative.
        redraw = torch.randint(n, (n, k), generator=generator).to(codes.device)
        negatives = torch.where(clash, redraw, negatives)
        partners = torch.cat([neighbors, negatives], dim=1)
        positive = torch.zeros_like(partners, dtype=torch.bool)
        positive[:, :k] = True
        return partners, positive

    def _train_spectral(
        self,
        codes: torch.Tensor,
        affinity_space: torch.Tensor,
        train: torch.Tensor,
        valid: torch.Tensor,
        context: Context,
        checkpoint: Callable[[], None],
    ) -> None:
        net, stage, config = self.nets["spectral"], self.stages["spectral"], self.config.spectral
        world = context.world
        neighbor_table = self._sparse_neighbors(affinity_space, train) if config.sparse else None
        deficient = 0

        def batch_rows(order: torch.Tensor) -> list[torch.Tensor]:
            """Index batches into ``train``: plain batches, or in sparse mode seeds plus their neighbors.

            A last batch under half the size is dropped (its points come up in other epochs'
            shuffles): a few dozen points make a meaningless kNN graph and an unstable
            orthonormalization.
            """
            per_batch = config.batch_size if neighbor_table is None else max(1, config.batch_size // (1 + config.sparse_neighbors))
            chunks = list(order.split(per_batch))
            if len(chunks) > 1 and len(chunks[-1]) < per_batch / 2:
                chunks.pop()
            if neighbor_table is None:
                return chunks
            return [torch.cat([seeds, neighbor_table[seeds].reshape(-1)]) for seeds in chunks]

        def shuffled(epoch: int, stream: int) -> torch.Tensor:
            return torch.randperm(len(train), generator=epoch_generator(self.config.seed, "spectral", epoch, stream)).to(self.device)

        passes = passes_for(config.min_batches, len(batch_rows(torch.arange(len(train)))))

        def train_epoch(epoch: int) -> dict[str, float]:
            nonlocal deficient
            # Pass p shuffles with streams 2p (gradient batches) and 2p + 1 (orthonormalization batches).
            pairs = [pair for p in range(passes) for pair in zip(batch_rows(shuffled(epoch, 2 * p)), batch_rows(shuffled(epoch, 2 * p + 1)))]
            totals: dict[str, torch.Tensor] = {}
            count = 0
            for grad_rows, orth_rows in context.limit_batches(pairs):
                net.eval()
                with torch.set_grad_enabled(config.orthonorm_gradient), context.autocast():
                    # Each rank runs its shard; the orthonormalization sees the whole batch.
                    raw = world.gather(net.body(codes[train[world.shard(orth_rows)]]), len(orth_rows))
                    weights, rank_deficient = net.fit_orthonorm(raw)
                deficient += rank_deficient
                net.train()
                objective, terms = self._spectral_batch_terms(codes, affinity_space, train[grad_rows], context, weights, world)
                stage.optimizer.step(objective, batch_loss=terms["loss"])
                for key, value in terms.items():
                    totals[key] = totals.get(key, 0) + value.detach() * len(grad_rows)
                count += len(grad_rows)
            return {key: float(total) / max(count, 1) for key, total in totals.items()}

        def validate() -> float:
            net.eval()
            total, count = torch.zeros((), device=self.device), 0
            with torch.no_grad():
                for rows in valid.split(config.batch_size):
                    if len(rows) >= 2:
                        total += self._spectral_batch_terms(codes, affinity_space, rows, context)[1]["loss"] * len(rows)
                        count += len(rows)
            return float(total) / max(count, 1)

        stage.run(train_epoch, validate, checkpoint)
        if deficient:
            context.warn(
                f"spectral: {deficient} batch outputs were rank-deficient (fewer than {self.config.embedding_dim} "
                f"independent directions); they were orthonormalized with ridge {config.ridge:g}"
            )

    def _spectral_batch_terms(
        self,
        codes: torch.Tensor,
        affinity_space: torch.Tensor,
        rows: torch.Tensor,
        context: Context,
        weights: Optional[torch.Tensor] = None,
        world: World = SINGLE,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The objective this rank differentiates for the batch ``rows``, and the batch's terms
        to report (``"loss"`` and any others, equal on every rank). Here both are the spectral
        loss of the batch's outputs, orthonormalized by ``weights`` (the kept W when None): each
        rank computes its shard's outputs and the loss of the gathered batch. Subclasses add terms."""
        spectral = self._shard_spectral_loss(codes, affinity_space, rows, context, weights, world)[2]
        return spectral, {"loss": spectral}

    def _shard_spectral_loss(
        self,
        codes: torch.Tensor,
        affinity_space: torch.Tensor,
        rows: torch.Tensor,
        context: Context,
        weights: Optional[torch.Tensor],
        world: World,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(shard, raw, spectral)``: this rank's rows of the batch, their outputs Ỹ, and the
        spectral loss of the whole batch's gathered outputs (gradient flows into ``raw`` only)."""
        shard = world.shard(rows)
        raw = self._spectral_raw(codes[shard], context)
        return shard, raw, self._spectral_batch_loss(world.gather(raw, len(rows)), affinity_space[rows], weights)

    def _spectral_raw(self, inputs: torch.Tensor, context: Context) -> torch.Tensor:
        """Ỹ: the spectral net's outputs before the orthonormalization layer."""
        with context.autocast():
            return self.nets["spectral"].body(inputs)

    def _spectral_batch_loss(self, raw: torch.Tensor, affinity_points: torch.Tensor, weights: Optional[torch.Tensor]) -> torch.Tensor:
        """The spectral loss of a batch's raw outputs and the Gaussian kNN graph of its points."""
        config, net = self.config, self.nets["spectral"]
        outputs = raw.float() @ (net.orthonorm_weights if weights is None else weights)
        affinities, indices = gaussian_knn_weights(
            affinity_points, config.n_neighbors, config.scale_k, config.scale == "local", config.scale_rule
        )
        return spectral_loss(affinities, indices, outputs, normalized=config.laplacian == "normalized")

    def _sparse_neighbors(self, affinity_space: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
        """For sparse batches: each training point's ``sparse_neighbors`` nearest training points
        (``knn``'s ``auto`` back end: exact, or HNSW for large n), as positions in ``train``."""
        config = self.config.spectral
        _, table = knn(affinity_space[train], config.sparse_neighbors, backend="auto", seed=self.config.seed)
        return table.to(self.device)

    # -- embedding and prediction ------------------------------------------------------------
    def _codes(self, x: torch.Tensor) -> torch.Tensor:
        return apply_in_batches(self.nets["ae"].encoder, x) if "ae" in self.nets else x

    def _affinity_space(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Where affinities are measured: Siamese outputs, AE codes or the raw input."""
        choice = self.config.affinity_input
        if choice == "auto":
            choice = "siamese" if "siamese" in self.nets else "code" if "ae" in self.nets else "raw"
        if choice == "siamese":
            return apply_in_batches(self.nets["siamese"], codes)
        return codes if choice == "code" else x

    def _cluster_space(self, embedding: torch.Tensor) -> torch.Tensor:
        """Where k-means runs: the embedding, or its rows scaled to unit length for the normalized Laplacian."""
        if self.config.laplacian == "normalized":
            return torch.nn.functional.normalize(embedding, dim=1)
        return embedding

    def _predict_and_embed(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        space = self._cluster_space(apply_in_batches(self.nets["spectral"], self._codes(x)))
        return assign(space, self.centers.to(space.device))[0], space

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._predict_and_embed(x)[0]

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if not self.nets:
            return {}
        stages = {name: stage.state_dict() for name, stage in self.stages.items()} or self.stage_states
        state: dict[str, Any] = {
            "in_dim": self.in_dim,
            "nets": {name: {k: v.cpu() for k, v in net.state_dict().items()} for name, net in self.nets.items()},
            "stages": stages,
        }
        if self.centers is not None:
            state["centers"] = self.centers.cpu()
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        if "nets" not in state:
            return
        self._build_nets(int(state["in_dim"]))
        for name, net in self.nets.items():
            net.load_state_dict(state["nets"][name])
        self.stage_states = dict(state["stages"])
        self.centers = state["centers"].float() if "centers" in state else None
