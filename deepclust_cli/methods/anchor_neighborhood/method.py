"""AND: Anchor Neighbourhood Discovery (Huang, Dong, Gong & Zhu, ICML 2019).

Unsupervised representation learning by a curriculum of rounds. A backbone maps each augmented
image to a unit vector ``f_i``; a memory bank keeps a momentum average ``m_i`` of every sample's
features and serves as the weights of a softmax over all N samples
(:mod:`deepclust_cli.methods.anchor_neighborhood.memory_bank`). Round 0 is pure instance discrimination. Before round r the
bank's own softmax ``softmax(m_i·Mᵀ/T)`` ranks samples by entropy: the ``anchor_fractions[r]``
lowest become *anchors*, each paired with its ``neighborhood_size`` nearest other samples ``N_i``
(the reference's ``ANs_size``), and the loss ``−log(p_ii + Σ_{j∈N_i} p_ij)`` lets an anchor share its
class with them (section 3.2). Network and optimizer carry over between rounds; the step schedule
restarts.

Evaluation: weighted kNN (k = 200, T = 0.1, :func:`~deepclust_cli.ops.metrics.knn_predict`) of the
held-out features against two sets of training features. ``knn_acc_bank`` votes with the memory bank
as training left it — the reference's rule (``lib/protocols.py`` ``kNN`` with
``recompute_memory=False``, run after every epoch in ``main.py``), whose best epoch is the published
figure: ``knn_acc_bank_best`` with its round and epoch, and ``best.ckpt`` with ``best_by=knn_acc_bank``.
``knn_acc`` votes with the training images' features recomputed under the test transform after the
last epoch. k-means on the evaluated features → ``acc``/``nmi``/``ari``; ``predict`` assigns to
k-means centers fitted on the training features at the end of ``fit``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, List, Optional, Union

import numpy as np
import torch
from torch import nn

from deepclust_cli import plots
from deepclust_cli.config import OptimizerName
from deepclust_cli.data.base import LazyImages, Split, decoded
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.distributed import SINGLE, World
from deepclust_cli.engine.loop import Loop, Pass
from deepclust_cli.engine.optim import Optimizer, step_lr
from deepclust_cli.engine.seeds import epoch_generator
from deepclust_cli.errors import DataError
from deepclust_cli.methods.anchor_neighborhood.augment import BatchAugment
from deepclust_cli.methods.anchor_neighborhood.config import ANDConfig
from deepclust_cli.methods.anchor_neighborhood.memory_bank import MemoryBank, neighborhood_loss, select_anchors
from deepclust_cli.methods.base import ArrayLike, Assignment, ClusteringMethod, EvalSet
from deepclust_cli.nets.backbones import build_backbone
from deepclust_cli.ops.kmeans import assign, kmeans
from deepclust_cli.ops.metrics import clustering_metrics, knn_acc

Images = Union[torch.Tensor, LazyImages]
FEATURE_BATCH = 1024  # images per forward pass when extracting features (no gradients kept)


class AND(ClusteringMethod):
    """Anchor Neighbourhood Discovery on images ``N×C×H×W`` (uint8, or float in [0, 1])."""

    name = "and"
    Config = ANDConfig
    scores_held_out = True
    data_parallel = True
    config: ANDConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.augment = BatchAugment(self.config.augment, self.config.mean, self.config.std)
        self.image_shape: Optional[tuple[int, ...]] = None
        self.net: Optional[nn.Module] = None
        self.bank: Optional[MemoryBank] = None
        self.anchor = torch.zeros(0, dtype=torch.bool)  # per sample: is it an anchor this round
        self.neighbors = torch.zeros(0, 1, dtype=torch.long)  # per sample: its neighborhood_size neighbors (itself if not an anchor)
        self.optimizer: Optional[Optimizer] = None  # built by fit, which has the trainer's settings
        self.loop: Optional[Loop] = None  # the rounds × epochs, built by fit
        self.loop_state: Optional[dict[str, Any]] = None  # the loop's and optimizer's states from a checkpoint, until fit applies them
        self.optimizer_state: Optional[dict[str, Any]] = None
        self.centers: Optional[torch.Tensor] = None

    # -- input -------------------------------------------------------------------------------
    def prepare(self, split: Split, num_workers: int = 0) -> Images:
        """The split's images as they are: uint8 tensors, or a lazy source decoded per batch (by
        ``trainer.num_workers`` processes while training)."""
        if not split.is_lazy and split.x.ndim != 4:
            raise DataError(f"and: needs images (N×C×H×W), but this dataset holds {split.x.ndim}-D vectors; use an image dataset")
        return split.x

    def _check_input(self, x: Union[ArrayLike, LazyImages]) -> Images:
        if not isinstance(x, (torch.Tensor, np.ndarray)):
            if len(x) == 0:
                raise DataError("and: got no images")
            return x
        images = torch.as_tensor(x)
        if images.ndim != 4:
            raise DataError(f"and: expected images N×C×H×W, got shape {tuple(images.shape)}")
        if len(images) == 0:
            raise DataError("and: got no images")
        if images.dtype != torch.uint8:
            images = images.float()
            if not bool(torch.isfinite(images).all()):
                raise DataError("and: the images hold NaN or inf values")
        if self.config.mean and images.shape[1] != len(self.config.mean):
            raise DataError(
                f"and: images have {images.shape[1]} channels but mean/std give {len(self.config.mean)}; "
                "set method.mean and method.std for these images"
            )
        return images

    # -- building ----------------------------------------------------------------------------
    def _build(self, image_shape: tuple[int, ...], n_samples: int) -> None:
        """Network and bank, initialised from the method's seed."""
        config = self.config
        self.image_shape = tuple(image_shape)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = build_backbone(config.backbone, image_shape[0], config.embedding_dim).to(self.device)
        if self.device.type == "cuda" and config.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net
        self.bank = MemoryBank(
            n_samples,
            config.embedding_dim,
            momentum=config.bank_momentum,
            temperature=config.temperature,
            generator=epoch_generator(config.seed, "bank", 0),
            device=self.device,
        )
        self.anchor = torch.zeros(n_samples, dtype=torch.bool, device=self.device)
        self.neighbors = self._own_index(n_samples)
        self.loop_state, self.optimizer_state, self.centers = None, None, None

    # -- training ----------------------------------------------------------------------------
    def _fit(self, x: Images, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        config = self.config
        if config.neighborhood_size >= len(x) and any(config.anchor_fractions):
            raise DataError(f"and: neighborhood_size={config.neighborhood_size} needs more than {config.neighborhood_size} training images, got {len(x)}")
        if not resuming:
            self._build(_image_shape(x), len(x))
        if context.world.parallel and self.device.type == "cuda":
            # One batch's statistics over all ranks, as in a one-GPU run (CUDA only in torch).
            self.net = nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
        # The reference's SGD with Nesterov momentum unless trainer.optimizer names another family.
        self.optimizer = Optimizer(self.net.parameters(), context, lr=config.lr, weight_decay=config.weight_decay, reference=OptimizerName.sgd, name="and")
        loop = self.loop = Loop("and", config.epochs, context, rounds=len(config.anchor_fractions))
        if self.loop_state is not None:
            loop.load_state_dict(self.loop_state)
            self.optimizer.load_state_dict(self.optimizer_state)
        self.loop_state = self.optimizer_state = None
        source = _Source(x, self.device, context.trainer.num_workers)
        labels = None if y is None else y.to(self.device)
        context.log(
            f"and: {config.backbone}, {len(x)} images {self.image_shape}, {loop.rounds} rounds × {loop.length} epochs"
            + (f", continuing at round {loop.round} epoch {loop.pass_in_round}" if loop.position else "")
        )

        def run_pass() -> Pass:
            mined = self._mine_anchors(context, labels, loop.round) if loop.pass_in_round == 0 else {}
            lr = self._lr(loop.pass_in_round)
            loss = self._train_epoch(source, context, loop.round, loop.pass_in_round, lr)
            epoch = loop.pass_in_round + 1
            round_ends = epoch == loop.length
            evaluated = eval_set is not None and (round_ends or bool(config.eval_every and epoch % config.eval_every == 0))
            metrics = self._evaluate_during_training(eval_set, x, labels, context, loop.round, epoch) if evaluated else {}
            # Every rank decides to save alike (saving is collective); only rank 0 has the score.
            return Pass(loss, {"lr": lr, **mined, **metrics}, save=evaluated or round_ends, score=metrics.get(config.best_by))

        loop.run(run_pass, lambda score: context.checkpoint(self, loop.where(), score=score))
        features = self._features(source, context.world)
        self.centers = kmeans(features, config.n_clusters, n_init=config.n_init, seed=config.seed).centers.cpu()
        self._labels = assign(features, self.centers.to(features.device))[0].cpu()
        path = context.plot_path("rounds")
        if path is not None:
            plots.round_curves(loop.history, loop.length, path)

    def _own_index(self, n: int) -> torch.Tensor:
        """``n × neighborhood_size`` rows holding each sample's own index (no neighbors)."""
        return torch.arange(n, device=self.device).unsqueeze(1).expand(n, self.config.neighborhood_size).contiguous()

    def _mine_anchors(self, context: Context, labels: Optional[torch.Tensor], round_: int) -> dict[str, float]:
        """Before a round: the lowest-entropy samples become anchors with their ``neighborhood_size``
        nearest other samples; returns the anchor count and, with labels, their neighborhood
        consistency (the share of anchor–neighbor pairs of one class, as the reference's)."""
        fraction = self.config.anchor_fractions[round_]
        n = len(self.bank)
        if fraction == 0:
            self.anchor = torch.zeros(n, dtype=torch.bool, device=self.device)
            self.neighbors = self._own_index(n)
            context.log(f"and: round {round_}: instance discrimination (no anchors)")
            return {}
        started = time.perf_counter()
        entropy, nearest = self.bank.entropy_and_nearest(self.config.bank_chunk_bytes, k=self.config.neighborhood_size)
        self.anchor = select_anchors(entropy, fraction)
        self.neighbors = torch.where(self.anchor.unsqueeze(1), nearest, self._own_index(n))
        count = int(self.anchor.sum())
        mined = {"anchors": float(count)}
        message = f"and: round {round_}: {count} anchors ({fraction:.0%}) mined in {time.perf_counter() - started:.1f} s"
        if labels is not None and count:
            pairs = labels[self.anchor].unsqueeze(1) == labels[self.neighbors[self.anchor]]
            mined["anchor_consistency"] = float(pairs.float().mean())
            message += f", neighborhood consistency {mined['anchor_consistency']:.4f}"
        context.log(message)
        return mined

    def _train_epoch(self, source: "_Source", context: Context, round_: int, epoch: int, lr: float) -> float:
        """Epoch ``epoch`` of round ``round_`` at learning rate ``lr``: returns the mean loss.

        Data parallel: each rank loads and augments its shard of every batch (the augmentation
        drawn for the whole batch, so the views do not depend on the number of ranks), weighs its
        shard's mean loss by the shard's share, and the gradients are summed over ranks; every
        rank then updates its copy of the bank with the whole batch's gathered features.
        """
        config, net, world = self.config, self.net, context.world
        self.optimizer.set_lr(lr)
        generator = epoch_generator(config.seed, f"and-round{round_}", epoch)
        order = torch.randperm(len(self.bank), generator=generator)
        chunks = list(order.split(config.batch_size))
        if len(chunks) > 1 and len(chunks[-1]) < 2 * world.size:
            chunks.pop()  # batch norm cannot normalize a shard of one; the samples come up next epoch
        chunks = list(context.limit_batches(chunks))
        net.train()
        total = torch.zeros((), device=self.device)
        for index, images in zip(chunks, source.batches([world.shard(chunk) for chunk in chunks])):
            start, stop = world.shard_bounds(len(index))
            params = self.augment.sample(len(index), images.shape[2], images.shape[3], generator)
            inputs = self._layout(self.augment.apply(images, params[start:stop]))
            index = index.to(self.device)
            shard = index[start:stop]
            with context.autocast():
                features = net(inputs)
            loss = neighborhood_loss(self.bank.logits(features), shard, self.neighbors[shard], self.anchor[shard])
            loss = loss * (len(shard) / len(index))
            self.optimizer.step(loss)
            self.bank.update(index, world.gather(features.detach(), len(index)))
            total += loss.detach() * len(index)
        return float(world.sum(total)) / sum(len(chunk) for chunk in chunks)

    def _lr(self, epoch: int) -> float:
        """The step schedule within a round (it restarts every round)."""
        return step_lr(self.config.lr, epoch, self.config.milestones, self.config.lr_decay)

    def _evaluate_during_training(
        self, eval_set: EvalSet, train_images: Images, labels: Optional[torch.Tensor], context: Context, round_: int, epoch: int
    ) -> dict[str, float]:
        """The held-out features scored after an epoch: ``knn_acc_bank`` (kNN against the bank, the
        reference's per-epoch rule), ``knn_acc`` only when ``best_by`` asks for it (it recomputes
        every training feature), and k-means ``acc``/``nmi``/``ari``; ``best_by`` picks best.ckpt.
        Rank 0 alone scores: the others return {}."""
        held_out, held_out_labels = eval_set
        if held_out_labels is None:
            return {}
        workers = context.trainer.num_workers
        features = self._features(_Source(held_out, self.device, workers), context.world)
        recomputed = None
        if labels is not None and self.config.best_by == "knn_acc":
            recomputed = self._features(_Source(train_images, self.device, workers), context.world)
        if not context.world.is_main:
            return {}
        metrics = clustering_metrics(held_out_labels.cpu().numpy(), self._clusters(features).cpu().numpy())
        if labels is not None:
            metrics["knn_acc_bank"] = self._knn_acc(self.bank.features, labels, features, held_out_labels)
        if recomputed is not None:
            metrics["knn_acc"] = self._knn_acc(recomputed, labels, features, held_out_labels)
        context.log(f"and: round {round_} epoch {epoch}: " + "  ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
        return metrics

    # -- features and evaluation -------------------------------------------------------------
    def _layout(self, images: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and self.config.channels_last:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    @torch.no_grad()
    def _features(self, source: "_Source", world: World = SINGLE) -> torch.Tensor:
        """Unit features of every image under the test transform; across data-parallel ranks
        each computes a contiguous share and all receive the whole."""
        was_training = self.net.training
        world.broadcast_buffers(self.net)
        self.net.eval()
        start, stop = world.shard_bounds(len(source))
        chunks = list(torch.arange(start, stop).split(FEATURE_BATCH))
        try:
            parts = [torch.zeros(0, self.config.embedding_dim, device=self.device)]
            for images in source.batches(chunks):
                parts.append(self.net(self._layout(self.augment.test(images))).float())
            return world.gather(torch.cat(parts), len(source))
        finally:
            self.net.train(was_training)

    def _knn_acc(self, train: torch.Tensor, train_labels: torch.Tensor, test: torch.Tensor, test_labels: torch.Tensor) -> float:
        return knn_acc(train, train_labels, test, test_labels, k=self.config.knn_neighbors, temperature=self.config.knn_temperature, device=self.device)

    def _clusters(self, features: torch.Tensor) -> torch.Tensor:
        """k-means with ``n_clusters`` centers fitted on ``features`` themselves (the paper's readout)."""
        return kmeans(features, self.config.n_clusters, n_init=self.config.n_init, seed=self.config.seed).labels

    def _evaluate(self, split: Split, context: Context, reference: Optional[Split], out_of_sample: bool) -> tuple[Optional[Assignment], dict[str, Any]]:
        """k-means with ``n_clusters`` centers fitted on ``split``'s features (the paper's readout;
        with ``out_of_sample``, the centers fitted at the end of training instead), ``knn_acc`` of
        ``split`` against ``reference`` (the training split, its features recomputed with the test
        transform), and from the evaluations during training (a finished checkpoint keeps no bank,
        and neither net nor bank changed since): ``knn_acc_bank`` of the last epoch and
        ``knn_acc_bank_best`` with its round (from 0) and epoch in the round (from 1)."""
        images = self._check_input(self.prepare(split))
        features = self._features(_Source(images, self.device, context.trainer.num_workers), context.world)
        reference_features = None
        if split.y is not None and reference is not None and reference is not split and reference.y is not None:
            reference_images = self._check_input(self.prepare(reference))
            reference_features = self._features(_Source(reference_images, self.device, context.trainer.num_workers), context.world)
        if not context.world.is_main:
            return None, {}  # the other ranks only helped compute the features
        clusters = assign(features, self.centers.to(features.device))[0] if out_of_sample else self._clusters(features)
        own: dict[str, Any] = {}
        if reference_features is not None:
            reference_labels, labels = reference.y.to(self.device), split.y.to(self.device)
            own["knn_acc"] = self._knn_acc(reference_features, reference_labels, features, labels)
            own.update(self._bank_scores())
        return Assignment(clusters, features), own

    def _bank_scores(self) -> dict[str, float]:
        """The last and the highest ``knn_acc_bank`` of training's evaluations, the highest with its
        round and epoch (the first of equal scores: the one best.ckpt keeps)."""
        history = self.loop.history if self.loop is not None else (self.loop_state or {}).get("history", {})
        series = history.get("knn_acc_bank", [])
        if not series:
            return {}
        position, value = max(series, key=lambda pair: (pair[1], -pair[0]))
        length = self.loop.length if self.loop is not None else int((self.loop_state or {}).get("epochs_per_round", self.config.epochs))
        position = int(position) - 1
        return {"knn_acc_bank": float(series[-1][1]), "knn_acc_bank_best": float(value), "knn_acc_bank_best_round": float(position // length), "knn_acc_bank_best_epoch": float(position % length + 1)}

    def _predict_and_embed(self, x: Images) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(_Source(x, self.device, 0))
        return assign(features, self.centers.to(features.device))[0], features

    def _predict(self, x: Images) -> torch.Tensor:
        return self._predict_and_embed(x)[0]

    # -- state -------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        state: dict[str, Any] = {
            "image_shape": list(self.image_shape),
            "net": {k: v.cpu() for k, v in self.net.state_dict().items()},
            "loop": {**self.loop.state_dict(), "epochs_per_round": self.loop.length} if self.loop is not None else self.loop_state,
        }
        if self.centers is None:  # what only training needs
            state["optimizer"] = self.optimizer.state_dict() if self.optimizer is not None else self.optimizer_state
            state["bank"] = self.bank.state_dict()
            state["anchor"] = self.anchor.cpu()
            state["neighbors"] = self.neighbors.cpu()
            state["n_samples"] = len(self.bank)
        else:
            state["centers"] = self.centers
        return state

    def _load_state(self, state: dict[str, Any]) -> None:
        if "net" not in state:
            return
        self._build(tuple(state["image_shape"]), int(state.get("n_samples", 1)))
        self.net.load_state_dict(state["net"])
        self.loop_state = state["loop"]
        if "centers" in state:
            self.centers = state["centers"].float()
            return
        self.optimizer_state = state["optimizer"]
        self.bank.load_state_dict(state["bank"])
        self.anchor = state["anchor"].to(self.device)
        self.neighbors = state["neighbors"].to(self.device).reshape(len(self.bank), -1)  # 1-D in older checkpoints


def _image_shape(images: Images) -> tuple[int, ...]:
    if isinstance(images, torch.Tensor):
        return tuple(images.shape[1:])
    return tuple(images.load(torch.arange(1)).shape[1:])


class _Source:
    """Batches of images on the device: sliced from a tensor (moved to the device once when it
    is small enough), or decoded from a lazy source by ``num_workers`` background processes."""

    def __init__(self, images: Images, device: torch.device, num_workers: int) -> None:
        self.device = device
        self.num_workers = num_workers
        if isinstance(images, torch.Tensor) and device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            if images.numel() * images.element_size() < free // 4:
                images = images.to(device)
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, chunks: List[torch.Tensor]) -> Iterator[torch.Tensor]:
        if isinstance(self.images, torch.Tensor):
            for index in chunks:
                yield self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
            return
        for images in decoded(self.images, chunks, self.num_workers, pin_memory=self.device.type == "cuda"):
            yield images.to(self.device, non_blocking=True)
