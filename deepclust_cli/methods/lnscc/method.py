"""LNSCC: Locally Normalized Soft Contrastive Clustering (Ma & Kim, IJCAI 2022).

End to end: a residual MLP embeds the input features into ``dim`` dimensions so that the edges
of a locally normalized kNN graph become close pairs and random pairs stay apart, then a
DEC-style phase pulls the embedding into ``n_clusters`` groups around trainable centers.

1. **Features** (``features.source``): the raw vectors/pixels, the codes of an autoencoder trained
   first (SpectralNet's AE stage), or a torchvision backbone loaded from ``features.weights``;
   optionally projected onto their ``features.pca`` leading principal components first.
2. **Graph** (:mod:`deepclust_cli.methods.lnscc.fuzzy_graph`): kNN (k = 30); per point ρ_i (nearest distance)
   and σ_i with ``Σ_j exp(−max(0, d_ij − ρ_i)/σ_i) = log2 k``; fuzzy union ``W + Wᵀ − W∘Wᵀ``;
   edges under max/200 dropped. Training edges are *sampled* ∝ weight, never expanded.
3. **Soft contrastive loss**: ``q(d) = 1/(1 + a·d^(2b))`` with (a, b) fitted for ``min_dist``;
   ``−log q`` on sampled edges, ``−log(1 − q)`` on ``negative_sample_rate`` shuffled pairs per edge.
4. **Clustering phase** (from epoch ``clustering_epoch``): centers from the k-means restart whose
   cluster sizes are closest to uniform (restarts within ``balance_tolerance`` of it: the one
   cutting the least graph weight), then, ``clustering_delay`` epochs later,
   ``+ kl_weight·KL(P‖Q) + balance_weight·KL(q̄‖uniform)`` with the Student-t assignment
   ``q_ik ∝ (1 + ‖z_i − μ_k‖²)⁻¹`` and target ``p_ik ∝ q_ik²/f_k``.
   The label of a point is ``argmax_k q_ik``, for seen and unseen points alike.

``formulation=reference`` trains as the reference code does (xma24/lnscc, ``lnscc_train.py``),
which differs from the paper's equations and from ours in four places:

- the loss is parametric UMAP's cross-entropy with ``log q`` as the logit — ``log(1 + q) − log q``
  for an edge, ``log(1 + q)`` for a negative — averaged over edges and negatives together
  (:func:`reference_soft_contrastive_loss`);
- the balance term is ``MSE(q̄, 1/K)`` instead of ``KL(q̄‖uniform)``;
- the most balanced restart minimizes ``KL(uniform‖sizes/n)`` instead of ``KL(sizes/n‖uniform)``;
- each residual block is ``h → 2h → h`` with two LayerNorms and the activation after the sum, with
  Kaiming-normal weights (:class:`~deepclust_cli.methods.lnscc.network.ReferenceResidual`).

The reference's other settings are keys of their own: 10 negatives per edge
(``negative_sample_rate``), 20 k-means restarts (``n_init``), balance alone (``balance_tolerance=0``),
the clustering terms from 1.5× the seeding iteration (``clustering_delay`` = half of
``clustering_epoch``), [512, 256] with dropout 0.3 to 2-D (``hidden``, ``dropout``, ``embedding_dim``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from deepclust_cli import plots
from deepclust_cli.data.base import Split
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.loop import Loop, Pass
from deepclust_cli.engine.optim import Optimizer
from deepclust_cli.engine.seeds import epoch_generator
from deepclust_cli.errors import DataError, require
from deepclust_cli.methods.autoencoder import pretrain_autoencoder
from deepclust_cli.methods.base import Assignment, ClusteringMethod, EvalSet
from deepclust_cli.methods.lnscc.config import LNSCCConfig
from deepclust_cli.methods.lnscc.fuzzy_graph import Graph, fit_ab, fuzzy_knn_graph, sample_edges
from deepclust_cli.methods.lnscc.network import ResidualMLP
from deepclust_cli.methods.lnscc.projection import PrincipalProjection
from deepclust_cli.methods.stage import Stage, validation_split
from deepclust_cli.nets.autoencoder import Autoencoder
from deepclust_cli.nets.mlp import apply_in_batches
from deepclust_cli.ops.kmeans import kmeans
from deepclust_cli.ops.neighbors import knn


def student_t_assignment(z: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """``q_ik = (1 + ‖z_i − μ_k‖²)⁻¹ / Σ_l (1 + ‖z_i − μ_l‖²)⁻¹`` (DEC, Xie et al. 2016, eq. 1)."""
    kernel = 1.0 / (1.0 + torch.cdist(z, centers).square())
    return kernel / kernel.sum(dim=1, keepdim=True)


def target_distribution(q: torch.Tensor) -> torch.Tensor:
    """``p_ik = (q_ik² / f_k) / Σ_l (q_il² / f_l)`` with ``f_k = Σ_i q_ik`` (DEC, eq. 3)."""
    weight = q.square() / q.sum(dim=0)
    return weight / weight.sum(dim=1, keepdim=True)


def clustering_terms(q: torch.Tensor, reference: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """``KL(P‖Q)`` averaged over points (P held fixed) and the balance term of the mean assignment
    ``q̄``, 0 when clusters are used equally: ``KL(q̄‖uniform)``, or with ``reference``
    ``mean_k (q̄_k − 1/K)²`` (the reference's ``MSELoss(q_mean, desired)``)."""
    p = target_distribution(q).detach()
    tiny = torch.finfo(q.dtype).tiny
    kl = (p * (p.clamp_min(tiny).log() - q.clamp_min(tiny).log())).sum(dim=1).mean()
    mean = q.mean(dim=0)
    if reference:
        return kl, (mean - 1.0 / len(mean)).square().mean()
    balance = (mean * (mean.clamp_min(tiny) * len(mean)).log()).sum()
    return kl, balance


def _scaled_distance(first: torch.Tensor, second: torch.Tensor, a: float, b: float) -> torch.Tensor:
    """``a·d^(2b)`` of each row pair, so that ``q(d) = 1/(1 + a·d^(2b))``; the epsilon keeps d^(2b)'s gradient finite at 0."""
    return a * ((first - second).square().sum(dim=1) + 1e-8).pow(b)


def soft_contrastive_loss(
    heads: torch.Tensor, tails: torch.Tensor, negatives: torch.Tensor, a: float, b: float, negative_weight: float
) -> torch.Tensor:
    """``mean(−log q(‖z_h − z_t‖)) + negative_weight · mean(−log(1 − q(‖z_h − z_n‖)))`` with
    ``q(d) = 1/(1 + a·d^(2b))``; ``negatives`` holds, for each head repeated ``rate`` times, a tail of
    another sampled edge."""
    rate = len(negatives) // len(heads)
    eps = 1e-4
    attract = -(1.0 / (1.0 + _scaled_distance(heads, tails, a, b))).clamp(eps, 1.0).log()
    repel = -(1.0 - 1.0 / (1.0 + _scaled_distance(heads.repeat_interleave(rate, dim=0), negatives, a, b))).clamp(eps, 1.0).log()
    return attract.mean() + negative_weight * repel.mean()


def reference_soft_contrastive_loss(
    heads: torch.Tensor, tails: torch.Tensor, negatives: torch.Tensor, a: float, b: float, negative_weight: float
) -> torch.Tensor:
    """The reference's loss (parametric UMAP's cross-entropy with the logit ``log q``): with
    ``σ(log q) = q/(1 + q)``, ``−log σ(log q) = log(1 + q) − log q`` for each edge and
    ``negative_weight · (log σ(log q) − log q)`` negated, ``= negative_weight · log(1 + q)``, for each
    negative; one mean over all ``(1 + rate)·B`` pairs."""
    rate = len(negatives) // len(heads)
    log_q_edges = -torch.log1p(_scaled_distance(heads, tails, a, b))
    log_q_negatives = -torch.log1p(_scaled_distance(heads.repeat_interleave(rate, dim=0), negatives, a, b))
    attract = -nn.functional.logsigmoid(log_q_edges)
    repel = -(nn.functional.logsigmoid(log_q_negatives) - log_q_negatives) * negative_weight
    return torch.cat([attract, repel]).mean()


@dataclass
class CenterSeed:
    """The clustering phase's starting centers and, for every k-means restart, its cluster-size
    ``KL(sizes/n ‖ 1/k)`` and the share of graph weight its clusters cut."""

    centers: torch.Tensor
    chosen: int
    balance: list[float]
    cut: list[float]


def balanced_kmeans_centers(
    z: torch.Tensor, k: int, restarts: int, seed: int, graph: Graph, tolerance: float = 0.0, reference: bool = False
) -> CenterSeed:
    """Of ``restarts`` single k-means runs, the one whose cluster sizes are closest to uniform
    (smallest ``KL(sizes/n ‖ 1/k)``; with ``reference`` the reference's direction,
    ``KL(1/k ‖ sizes/n)`` with 1e-10 added to both) — the reference's guard against one cluster swallowing two.
    Runs within ``tolerance`` of the most balanced are equally balanced; among them the one that
    cuts the least weight of ``graph`` wins: two touching classes can be cut across or along
    equally balanced, and the cut along breaks less of the graph (README, Results: MNIST's 4 and 9)."""
    results, balance, cut = [], [], []
    total = graph.weights.sum()
    for restart in range(restarts):
        result = kmeans(z, k, n_init=1, seed=seed * 1000 + restart)
        share = torch.bincount(result.labels, minlength=k).double() / len(z)
        results.append(result.centers)
        if reference:
            balance.append(float((((1.0 / k + 1e-10) / (share + 1e-10)).log() / k).sum()))
        else:
            balance.append(float((share * (share.clamp_min(1e-12) * k).log()).sum()))
        labels = result.labels.to(graph.rows.device)
        cut.append(float(graph.weights[labels[graph.rows] != labels[graph.cols]].sum() / total))
    chosen = choose_restart(balance, cut, tolerance)
    return CenterSeed(results[chosen], chosen, balance, cut)


def choose_restart(balance: list[float], cut: list[float], tolerance: float) -> int:
    """The restart with the least ``cut`` among those whose ``balance`` is within ``tolerance`` of
    the smallest (ties: the more balanced, then the first)."""
    candidates = [r for r in range(len(balance)) if balance[r] <= min(balance) + tolerance]
    return min(candidates, key=lambda r: (cut[r], balance[r], r))


class LNSCC(ClusteringMethod):
    """LNSCC on feature vectors (or images through a user-supplied backbone)."""

    name = "lnscc"
    Config = LNSCCConfig
    config: LNSCCConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.in_dim: Optional[int] = None
        self.net: Optional[ResidualMLP] = None
        self.projection: Optional[PrincipalProjection] = None
        self.autoencoder: Optional[Autoencoder] = None
        self.centers: Optional[nn.Parameter] = None
        # Built by fit, which has the trainer's settings; a checkpoint's states wait for it here.
        self.ae_stage: Optional[Stage] = None
        self.optimizer: Optional[Optimizer] = None
        self.loop: Optional[Loop] = None
        self.pending: dict[str, Any] = {}

    def prepare(self, split: Split, num_workers: int = 0) -> torch.Tensor:
        """Raw vectors, or — with ``features.source=backbone`` — the backbone's features of the images."""
        if self.config.features.source != "backbone":
            return split.vectors(num_workers)
        images = split.images(num_workers)
        if images.ndim != 4:
            raise DataError("lnscc: features.source=backbone needs an image dataset (N×C×H×W)")
        from deepclust_cli.nets.backbones import pretrained_features  # torchvision: 3-4 s to import, only for this source

        features = self.config.features
        return pretrained_features(images, features.backbone, Path(features.weights), features.image_size, features.mean, features.std, self.device)

    # -- building ----------------------------------------------------------------------------
    def _build(self, in_dim: int) -> None:
        config = self.config
        self.in_dim = in_dim
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            code_dim = in_dim
            if config.features.pca is not None:
                require(config.features.pca <= in_dim, f"features.pca={config.features.pca} exceeds the {in_dim} input dimensions")
                self.projection = PrincipalProjection(in_dim, config.features.pca).to(self.device)
                code_dim = config.features.pca
            if config.features.source == "ae":
                self.autoencoder = Autoencoder(code_dim, config.features.ae.hidden, config.features.ae.code_dim).to(self.device)
                code_dim = config.features.ae.code_dim
            reference = config.formulation == "reference"
            self.net = ResidualMLP(code_dim, config.hidden, config.embedding_dim, config.dropout, reference=reference).to(self.device)
        self.centers, self.pending = None, {}

    # -- training ----------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        config = self.config
        if not resuming:
            self._build(x.shape[1])
            if self.projection is not None:
                self.projection.fit(x)
        inputs = self._project(x)
        codes = self._pretrain_autoencoder(inputs, context) if self.autoencoder is not None else inputs
        distances, indices = knn(codes, config.n_neighbors, backend=config.knn_backend, seed=config.seed, progress="lnscc: kNN")
        graph = fuzzy_knn_graph(distances, indices, config.prune_fraction)
        context.log(f"lnscc: {config.n_neighbors}-NN fuzzy graph of {len(x)} points: {len(graph.weights) // 2} edges after pruning")
        a, b = fit_ab(config.min_dist, config.spread)
        edges_per_epoch = config.edges_per_epoch or len(graph.weights) // 2
        self.optimizer = Optimizer(self.net.parameters(), context, lr=config.lr, name="lnscc")
        if self.centers is not None:
            self.optimizer.add_parameters([self.centers])
        loop = self.loop = Loop("lnscc", config.epochs, context)
        if "loop" in self.pending:
            loop.load_state_dict(self.pending["loop"])
            self.optimizer.load_state_dict(self.pending["optimizer"])
        self.pending = {}
        # Under trainer.max_epochs the clustering phase keeps its share of the shortened schedule.
        clustering_epoch = round(config.clustering_epoch * loop.length / config.epochs)
        terms_epoch = clustering_epoch + round(config.clustering_delay * loop.length / config.epochs)

        def run_pass() -> Pass:
            if loop.position == clustering_epoch and self.centers is None:
                self._start_clustering_phase(codes, graph, context, loop.position)
            if loop.position == terms_epoch and config.clustering_delay:
                context.log(f"lnscc: clustering terms from epoch {terms_epoch} ({config.clustering_delay} epochs after seeding)")
            with_terms = self.centers is not None and loop.position >= terms_epoch
            loss = self._train_epoch(codes, graph, edges_per_epoch, a, b, context, loop.position, with_terms)
            epoch = loop.position + 1
            if config.plot_every and (epoch % config.plot_every == 0 or epoch == loop.total):
                self._plot_frame(codes, y, context, epoch)
            return Pass(loss)

        loop.run(run_pass, lambda score: context.checkpoint(self, loop.where()))
        if self.centers is None:  # clustering_epoch == epochs: centers from the final embedding
            self._start_clustering_phase(codes, graph, context, loop.position)
        path = context.plot_path("embedding")
        if path is not None and config.plot_every:
            plots.frames_to_gif(sorted(path.parent.glob("frames/embedding_*.png")), path.with_suffix(".gif"))

    def _pretrain_autoencoder(self, x: torch.Tensor, context: Context) -> torch.Tensor:
        """Train (or finish training) the autoencoder on ``x``; returns the codes of all of ``x``."""
        stage = self.ae_stage = Stage("ae", self.autoencoder.parameters(), self.config.features.ae, context)
        if "ae_stage" in self.pending:
            stage.load_state_dict(self.pending.pop("ae_stage"))
        train, valid = validation_split(len(x), self.config.validation_fraction, self.config.seed, self.device)
        return pretrain_autoencoder(stage, self.autoencoder, x, train, valid, lambda: context.checkpoint(self, stage.loop.where()), self.config.seed)

    def _train_epoch(
        self, codes: torch.Tensor, graph: Graph, edges: int, a: float, b: float, context: Context, epoch: int, with_terms: bool
    ) -> float:
        config, net = self.config, self.net
        reference = config.formulation == "reference"
        contrastive = reference_soft_contrastive_loss if reference else soft_contrastive_loss
        generator = epoch_generator(config.seed, "lnscc", epoch)
        heads, tails = sample_edges(graph, edges, generator)
        net.train()
        total, count = torch.zeros((), device=self.device), 0
        for start in context.limit_batches(range(0, edges, config.batch_size)):
            head, tail = heads[start : start + config.batch_size], tails[start : start + config.batch_size]
            if len(head) < 2:
                continue
            # Negatives: each head against the tails of other sampled edges, shuffled.
            shuffle = torch.randint(len(tail), (len(head) * config.negative_sample_rate,), generator=generator).to(self.device)
            with context.autocast():
                z = net(codes[torch.cat([head, tail])]).float()
            z_head, z_tail = z[: len(head)], z[len(head) :]
            loss = contrastive(z_head, z_tail, z_tail[shuffle], a, b, config.negative_weight)
            if with_terms:
                kl, balance = clustering_terms(student_t_assignment(z, self.centers), reference)
                loss = loss + config.kl_weight * kl + config.balance_weight * balance
            self.optimizer.step(loss)
            total += loss.detach() * len(head)
            count += len(head)
        return float(total) / max(count, 1)

    def _start_clustering_phase(self, codes: torch.Tensor, graph: Graph, context: Context, epoch: int) -> None:
        config = self.config
        z = apply_in_batches(self.net, codes)
        reference = config.formulation == "reference"
        seed = balanced_kmeans_centers(z, config.n_clusters, config.n_init, config.seed, graph, config.balance_tolerance, reference)
        self.centers = nn.Parameter(seed.centers.to(self.device))
        self.optimizer.add_parameters([self.centers])
        context.log(
            f"lnscc: clustering phase from epoch {epoch}: centers from k-means run {seed.chosen + 1} of {len(seed.balance)} "
            f"(cluster-size KL to uniform {seed.balance[seed.chosen]:.4f}, graph weight cut {seed.cut[seed.chosen]:.4f}; "
            f"all runs: KL {min(seed.balance):.4f}-{max(seed.balance):.4f}, cut {min(seed.cut):.4f}-{max(seed.cut):.4f})"
        )

    def _plot_frame(self, codes: torch.Tensor, y: Optional[torch.Tensor], context: Context, epoch: int) -> None:
        path = context.plot_path(f"frames/embedding_{epoch:04d}")
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        z = apply_in_batches(self.net, codes)
        if self.centers is not None:
            clusters = student_t_assignment(z, self.centers.detach()).argmax(dim=1)
        else:
            clusters = kmeans(z, self.config.n_clusters, n_init=1, seed=self.config.seed).labels
        classes = None if y is None else y.cpu().numpy()
        plots.embedding(z.cpu(), clusters.cpu().numpy(), classes, path, title=f"lnscc, epoch {epoch}")

    # -- prediction --------------------------------------------------------------------------
    def _project(self, x: torch.Tensor) -> torch.Tensor:
        return apply_in_batches(self.projection, x) if self.projection is not None else x

    def _assign(self, x: torch.Tensor) -> Assignment:
        """``argmax_k q_ik`` of the Student-t assignment, with ``max_k q_ik`` as the confidence."""
        inputs = self._project(x)
        codes = apply_in_batches(self.autoencoder.encoder, inputs) if self.autoencoder is not None else inputs
        z = apply_in_batches(self.net, codes)
        confidence, clusters = student_t_assignment(z, self.centers.detach()).max(dim=1)
        return Assignment(clusters, z, confidence)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._assign(x).clusters

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        state: dict[str, Any] = {
            "in_dim": self.in_dim,
            "net": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "loop": self.loop.state_dict() if self.loop is not None else self.pending.get("loop"),
            "optimizer": self.optimizer.state_dict() if self.optimizer is not None else self.pending.get("optimizer"),
        }
        if self.projection is not None:
            state["projection"] = {k: v.cpu() for k, v in self.projection.state_dict().items()}
        if self.autoencoder is not None:
            state["autoencoder"] = {k: v.cpu() for k, v in self.autoencoder.state_dict().items()}
            state["ae_stage"] = self.ae_stage.state_dict() if self.ae_stage is not None else self.pending.get("ae_stage")
        if self.centers is not None:
            state["centers"] = self.centers.detach().cpu()
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        if "net" not in state:
            return
        self._build(int(state["in_dim"]))
        self.net.load_state_dict(state["net"])
        if self.projection is not None:
            self.projection.load_state_dict(state["projection"])
        if self.autoencoder is not None:
            self.autoencoder.load_state_dict(state["autoencoder"])
        if "centers" in state:
            self.centers = nn.Parameter(state["centers"].to(self.device))
        self.pending = {key: state[key] for key in ("loop", "optimizer", "ae_stage") if state.get(key) is not None}
