"""GeoCluster: a learned hierarchy that answers "which object is nearest to this point" faster than
brute force (SPEC "GeoCluster").

The tree grows breadth-first, one level per step, until a node holds at most ``threshold``
objects. For each node to split:

1. **Teacher** — ``branching`` centers placed under the object metric
   (:mod:`deepclust_cli.methods.geocluster.teachers`: k-means++ and object-aware Lloyd steps, or the energy
   model); each object goes to the child of its nearest center.
2. **Student** — an MLP routing a query point to the child holding its nearest object, trained on
   points sampled in the node's box and around its objects, labelled by brute force over the
   node's objects; ``student.boundary_fraction`` of the kept samples are those whose two best children
   are closest (the partition boundaries), the rest a uniform draw of the others. A level's
   students train together as one :class:`~deepclust_cli.methods.geocluster.students.StackedMLP`.

A query descends with a beam of the ``beam`` most probable nodes (``beam = 1`` is the original's
greedy descent) and brute force runs inside the reached leaves (:mod:`deepclust_cli.methods.geocluster.tree`).
The run's metrics compare it with exhaustive search on fresh uniform queries: exact-1NN accuracy
(end to end and per level), top-k recall, and queries per second of both on the same device.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from deepclust_cli import plots, predictions
from deepclust_cli.data.base import Split
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.loop import Loop, Pass
from deepclust_cli.engine.optim import Optimizer
from deepclust_cli.engine.seeds import epoch_generator
from deepclust_cli.errors import DataError
from deepclust_cli.methods.base import ArrayLike, ClusteringMethod, EvalSet
from deepclust_cli.methods.geocluster.config import GeoClusterConfig
from deepclust_cli.methods.geocluster.students import StackedMLP
from deepclust_cli.methods.geocluster.teachers import assign, energy_centers, kmeans_centers
from deepclust_cli.methods.geocluster.tree import ObjectTree
from deepclust_cli.ops.geometry import ObjectFamily, brute_force_nearest, distance_blocks, family

DISTANCE_TOLERANCE = 1e-5  # relative to the objects' box: answers this close to the nearest count as exact


def objects_box(objects: torch.Tensor, kind: ObjectFamily, margin: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The box around all ``objects``, widened by ``margin`` × its largest side on every side."""
    low, high = kind.bounds(objects)
    low, high = low.amin(dim=0), high.amax(dim=0)
    pad = margin * float((high - low).max().clamp_min(1e-6))
    return low - pad, high + pad


def uniform_in(low: torch.Tensor, high: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` points uniform in the box, drawn from a CPU generator (same draws on every device)."""
    return low + torch.rand(n, len(low), generator=generator).to(low.device) * (high - low)


class GeoCluster(ClusteringMethod):
    """``fit(objects)`` builds the tree; :meth:`kneighbors` returns each query point's nearest
    objects (indices into the fitted objects) as the tree finds them, and ``predict(points)`` the
    cluster of each point — the leaf holding its nearest object, one of ``n_leaves_``."""

    name = "geocluster"
    Config = GeoClusterConfig
    config: GeoClusterConfig

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.family = family(self.config.object_type, self.config.metric)
        self.tree: Optional[ObjectTree] = None
        self.loop: Optional[Loop] = None
        self._stored_tree: Optional[dict[str, Any]] = None  # a checkpoint's unfinished tree and loop, until fit continues them
        self.loop_state: Optional[dict[str, Any]] = None

    # -- building ------------------------------------------------------------------------------
    def _fit(self, x: torch.Tensor, y: Optional[torch.Tensor], context: Context, eval_set: Optional[EvalSet], resuming: bool) -> None:
        config, kind = self.config, self.family
        if x.shape[1] != kind.n_params:
            raise DataError(f"geocluster: {kind.name} need {kind.n_params} numbers per object ({kind.layout}), got {x.shape[1]}")
        problem = kind.invalid(x)
        if problem:
            raise DataError(f"geocluster: {problem}")
        loop = self.loop = Loop("geocluster", config.max_depth, context, unit="level")
        if resuming and self._stored_tree is not None:
            self.tree = ObjectTree.from_state(self._stored_tree, x, kind)
            loop.load_state_dict(self.loop_state)
            context.log(f"geocluster: resuming a tree built to depth {self.tree.built_depth} ({self.tree.n_nodes} nodes)")
        else:
            low, high = objects_box(x, kind, config.query_margin)
            self.tree = ObjectTree.root(x, kind, config.branching, low, high)
        self._stored_tree = self.loop_state = None
        tree = self.tree

        def nodes_to_split(depth: int) -> torch.Tensor:
            level = tree.nodes_at(depth)
            return level[tree.counts()[level] > config.threshold]

        def run_pass() -> Pass:
            depth = tree.built_depth
            started, nodes_before = time.perf_counter(), tree.n_nodes
            split, objects_of = self._split_nodes(nodes_to_split(depth), depth, context)
            loss, accuracy = self._train_students(split, objects_of, depth, context) if len(split) else (None, float("nan"))
            tree.built_depth = depth + 1
            leaves = int((tree.is_leaf & (tree.depth <= depth)).sum())
            context.log(
                f"geocluster: level {depth}: split {len(split)} of {len(tree.nodes_at(depth))} nodes into {tree.n_nodes - nodes_before} "
                f"children, {leaves} leaves so far; students' training accuracy {accuracy:.4f} ({time.perf_counter() - started:.1f} s)"
            )
            return Pass(loss, {"student_accuracy": accuracy, "nodes": float(tree.n_nodes)}, stop=len(nodes_to_split(depth + 1)) == 0)

        if len(nodes_to_split(tree.built_depth)) == 0:
            loop.done = True  # every node is a leaf already
        loop.run(run_pass, lambda score: context.checkpoint(self, loop.where()))
        self._labels = self._leaf_numbers()[tree.object_node].cpu()
        counts = tree.counts()
        context.log(
            f"geocluster: tree of {tree.n_nodes} nodes, depth {int(tree.depth.max())}, {int(tree.is_leaf.sum())} leaves "
            f"of at most {int(counts.max())} objects"
        )

    def _split_nodes(self, nodes: torch.Tensor, depth: int, context: Context) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Run the teacher on each node and add its children; returns the nodes actually split
        (a node whose objects all fall to one center stays a leaf) and their objects."""
        config, tree, kind = self.config, self.tree, self.family
        generator = epoch_generator(config.seed, "geocluster-teacher", depth)
        order, starts, counts = tree.objects_by_node()
        child_of_object = torch.full((len(tree.objects),), -1, dtype=torch.long, device=tree.objects.device)
        split, objects_of, boxes = [], [], []
        for node in nodes.tolist():
            objects = order[int(starts[node]) : int(starts[node] + counts[node])]
            mine = tree.objects[objects]
            if config.teacher == "energy":
                centers = energy_centers(mine, kind, config.branching, config.energy, generator, context)
            else:
                centers = kmeans_centers(mine, kind, config.branching, config.lloyd_steps, generator)
            slots = assign(mine, centers, kind)
            if len(torch.unique(slots)) < 2:
                continue
            child_of_object[objects] = slots
            split.append(node)
            objects_of.append(objects)
            boxes.append(self._child_boxes(mine, slots, node))
        split_nodes = torch.tensor(split, dtype=torch.long, device=tree.objects.device)
        tree.add_children(split_nodes, child_of_object, objects_of, boxes)
        return split_nodes, objects_of

    def _child_boxes(self, objects: torch.Tensor, slots: torch.Tensor, parent: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Each child's input box: its objects' box widened by half the typical object spacing."""
        tree, kind = self.tree, self.family
        low, high = kind.bounds(objects)
        k, dim = self.config.branching, low.shape[1]
        child_low = torch.full((k, dim), torch.inf, device=low.device).scatter_reduce(0, slots[:, None].expand(-1, dim), low, "amin")
        child_high = torch.full((k, dim), -torch.inf, device=low.device).scatter_reduce(0, slots[:, None].expand(-1, dim), high, "amax")
        sizes = torch.bincount(slots, minlength=k).clamp_min(1)[:, None]
        span = (child_high - child_low).amax(dim=1, keepdim=True).clamp_min(0)
        pad = span / sizes.pow(1 / dim) / 2 + 1e-6 * (tree.high[parent] - tree.low[parent]).max()
        empty = ~torch.isfinite(child_low)
        return torch.where(empty, tree.low[parent], child_low - pad), torch.where(empty, tree.high[parent], child_high + pad)

    # -- students ------------------------------------------------------------------------------
    def _node_samples(self, node: int, objects: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``student.samples`` training points for ``node`` and their labels (the child slot holding
        the nearest object): twice as many candidates — half uniform in the node's box, half
        uniform in the boxes of random objects widened to 3× — of which the ``student.boundary_fraction``
        with the smallest gap between the two best children are kept, and a random draw of the rest."""
        config, tree, kind = self.config, self.tree, self.family
        n = config.student.samples
        low, high = kind.bounds(tree.objects[objects])
        picked = torch.randint(len(objects), (n,), generator=generator).to(low.device)
        center, half = (low[picked] + high[picked]) / 2, (high[picked] - low[picked]) / 2
        spread = half.amax(dim=1, keepdim=True).clamp_min(1e-6 * float((tree.high[node] - tree.low[node]).max())) * 3
        near = center + (torch.rand(n, low.shape[1], generator=generator).to(low.device) * 2 - 1) * spread
        candidates = torch.cat([uniform_in(tree.low[node], tree.high[node], n, generator), near])
        existing = torch.nonzero(tree.children[node] >= 0).flatten()  # child slots in use, ascending ids
        minima = self._child_minima(candidates, tree.objects[objects], tree.object_node[objects], tree.children[node, existing])
        best_two = minima.topk(2, dim=1, largest=False)
        labels = existing[best_two.indices[:, 0]]
        n_boundary = int(round(config.student.boundary_fraction * n))
        by_gap = torch.argsort(best_two.values[:, 1] - best_two.values[:, 0])
        rest = by_gap[n_boundary:][torch.randperm(len(by_gap) - n_boundary, generator=generator).to(low.device)]
        keep = torch.cat([by_gap[:n_boundary], rest[: n - n_boundary]])
        return candidates[keep], labels[keep]

    def _child_minima(self, points: torch.Tensor, objects: torch.Tensor, holder: torch.Tensor, children: torch.Tensor) -> torch.Tensor:
        """Distance from each point to the nearest object of each child (P × children); ``holder``
        names each object's child. Objects are grouped by child so each minimum is one slice."""
        order = torch.argsort(holder)
        objects = objects[order]
        ends = torch.searchsorted(holder[order], children, right=True).tolist()
        starts = [0, *ends[:-1]]
        minima = [
            torch.stack([block[:, start:end].amin(dim=1) for start, end in zip(starts, ends)], dim=1)
            for block in distance_blocks(points, objects, self.family.distance)
        ]
        return torch.cat(minima)

    def _train_students(self, nodes: torch.Tensor, objects_of: list[torch.Tensor], depth: int, context: Context) -> tuple[float, float]:
        """Train the students of the level's split ``nodes`` together; returns their mean loss over
        the steps and their accuracy on their training points."""
        config, tree = self.config, self.tree
        generator = epoch_generator(config.seed, "geocluster-students", depth)
        samples = [self._node_samples(node, objects, generator) for node, objects in zip(nodes.tolist(), objects_of)]
        inputs = torch.stack([tree.normalized(points, torch.full((len(points),), node, device=points.device)) for (points, _), node in zip(samples, nodes.tolist())])
        labels = torch.stack([labels for _, labels in samples])
        missing = (tree.children[nodes] < 0)[:, None, :]
        student = StackedMLP(len(nodes), inputs.shape[2], config.student.hidden, config.branching, generator).to(inputs.device)
        optimizer = Optimizer(student.parameters(), context, lr=config.student.lr, name="geocluster")
        batch = min(config.student.batch_size, inputs.shape[1])
        total = torch.zeros((), device=inputs.device)
        steps = context.limit_batches(range(config.student.steps))
        with torch.enable_grad():
            for _ in steps:
                rows = torch.randint(inputs.shape[1], (len(nodes), batch), generator=generator).to(inputs.device)
                x = inputs.gather(1, rows[..., None].expand(-1, -1, inputs.shape[2]))
                with context.autocast():
                    logits = student(x).float().masked_fill(missing, -torch.inf)
                loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.gather(1, rows).flatten())
                optimizer.step(loss)
                total += loss.detach()
        with torch.no_grad():
            accuracy = float((student(inputs).masked_fill(missing, -torch.inf).argmax(dim=2) == labels).float().mean())
        student.requires_grad_(False)
        tree.student_row[nodes] = torch.arange(len(nodes), device=nodes.device)
        tree.students.append(student)
        return float(total) / max(len(steps), 1), accuracy

    # -- queries -------------------------------------------------------------------------------
    def _check_points(self, points: torch.Tensor) -> None:
        if points.shape[1] != self.family.dim:
            raise DataError(f"geocluster: query points must be {self.family.dim}-d for {self.family.name}, got {points.shape[1]}-d")

    def _check_fitted_input(self, x: ArrayLike) -> torch.Tensor:
        """Queries are points, not objects: they are narrower than the training rows by design."""
        return self._check_input(x)

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """The cluster of a query point: the leaf holding the nearest object the descent finds,
        numbered ``0..n_leaves − 1`` in breadth-first order (:meth:`kneighbors` gives the objects)."""
        self._check_points(x)
        return self._leaf_numbers()[self.tree.object_node[self.tree.descend(x, self.config.beam).indices[:, 0]]]

    def _leaf_numbers(self) -> torch.Tensor:
        """Each node's leaf number in breadth-first order (meaningful at the leaves)."""
        return torch.cumsum(self.tree.is_leaf.long(), dim=0) - 1

    @property
    def n_leaves_(self) -> int:
        """How many clusters :meth:`predict` assigns points to: the tree's leaves."""
        if self.tree is None:
            raise DataError("geocluster is not fitted yet: call fit(objects) or load a checkpoint first")
        return int(self.tree.is_leaf.sum())

    @property
    def n_clusters_(self) -> int:
        return self.n_leaves_

    def kneighbors(self, points: Any, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Distances and indices of the ``k`` nearest objects the tree finds for each point (inf and
        −1 where the reached leaves hold fewer than ``k`` objects)."""
        if not self.fitted:
            raise DataError("geocluster is not fitted yet: call fit(objects) or load a checkpoint first")
        points = self._check_input(points)
        self._check_points(points)
        found = self.tree.descend(points, self.config.beam, k)
        return found.distances.cpu().numpy(), found.indices.cpu().numpy()

    # -- evaluation ----------------------------------------------------------------------------
    def _evaluate(self, split: Split, context: Context, reference: Optional[Split], out_of_sample: bool) -> tuple[None, dict[str, float]]:
        """Fresh uniform queries in the objects' box: exact-1NN accuracy of the tree (end to end and
        after each level: the beam still holds a node with a nearest object), top-k recall, and
        queries per second of the tree and of exhaustive search on the same device. With
        ``out_of_sample``, ``split`` holds query points instead: the tree answers them and writes
        what it found. Clusters of objects have no labels to score, so nothing else is reported."""
        if out_of_sample:
            return None, self._answer(self._check_input(self.prepare(split)), context)
        config, tree, kind = self.config, self.tree, self.family
        objects = tree.objects
        low, high = objects_box(objects, kind, config.query_margin)
        queries = uniform_in(low, high, config.n_queries, epoch_generator(config.seed, "geocluster-queries", config.query_seed))
        tolerance = DISTANCE_TOLERANCE * float((high - low).max())
        tree.descend(queries[:256], config.beam)  # warm-up: first calls pay for allocation
        brute_force_nearest(queries[:256], objects, kind.distance)

        started = _synchronized_clock(objects.device)
        found = tree.descend(queries, config.beam)
        tree_seconds = _synchronized_clock(objects.device) - started
        started = _synchronized_clock(objects.device)
        truth, _ = brute_force_nearest(queries, objects, kind.distance)
        brute_seconds = _synchronized_clock(objects.device) - started

        k = min(config.topk, len(objects))
        true_k, true_indices = brute_force_nearest(queries, objects, kind.distance, k=k)
        found_k = tree.descend(queries, config.beam, k)
        recall = (found_k.distances <= true_k[:, -1:] + tolerance).float().sum(dim=1) / k
        metrics = {
            "nn_acc": float((found.distances[:, 0] <= truth[:, 0] + tolerance).float().mean()),
            "nn_topk_acc": float(recall.mean()),
            "qps": config.n_queries / max(tree_seconds, 1e-9),
            "qps_bruteforce": config.n_queries / max(brute_seconds, 1e-9),
        }
        metrics["speedup"] = metrics["qps"] / metrics["qps_bruteforce"]
        tied = true_k <= true_k[:, :1] + tolerance
        for level, beam in enumerate(found.beams, start=1):
            holders = tree.ancestors_at(level)[true_indices]
            held = (holders[:, :, None] == beam[:, None, :]) & tied[:, :, None]
            metrics[f"nn_acc_level_{level}"] = float(held.flatten(1).any(dim=1).float().mean())
            # The reference's per-layer figure: a query whose path ended in a leaf above this level counts as wrong.
            deep = held & (tree.depth[holders] == level)[:, :, None]
            metrics[f"nn_acc_reached_level_{level}"] = float(deep.flatten(1).any(dim=1).float().mean())
        metrics.update(self._tree_shape())
        folder = context.predictions_dir()
        if folder is not None:
            leaves = self._leaf_numbers()[tree.object_node[found.indices[:, 0]]]
            written = self._write_queries(folder, queries, found.indices[:, 0], found.distances[:, 0], leaves, true_indices[:, 0], truth[:, 0])
            context.log(f"geocluster: the object and leaf found for each query: {written}")
        context.log(
            f"geocluster: {config.n_queries} queries: tree {tree_seconds:.3f} s, brute force {brute_seconds:.3f} s "
            f"({metrics['speedup']:.1f}x), exact-1NN accuracy {metrics['nn_acc']:.4f}"
        )
        self._plot_partition(low, high, context)
        return None, metrics

    def _answer(self, points: torch.Tensor, context: Context) -> dict[str, float]:
        """The nearest object the tree finds for each of the user's query points."""
        self._check_points(points)
        started = _synchronized_clock(points.device)
        found = self.tree.descend(points, self.config.beam)
        seconds = _synchronized_clock(points.device) - started
        folder = context.predictions_dir()
        if folder is not None:
            leaves = self._leaf_numbers()[self.tree.object_node[found.indices[:, 0]]]
            written = self._write_queries(folder, points, found.indices[:, 0], found.distances[:, 0], leaves)
            context.log(f"geocluster: the object and leaf found for each of {len(points)} points: {written}")
        return {"qps": len(points) / max(seconds, 1e-9)}

    def _write_queries(
        self,
        folder: Path,
        queries: torch.Tensor,
        objects: torch.Tensor,
        distances: torch.Tensor,
        leaves: torch.Tensor,
        nearest: Optional[torch.Tensor] = None,
        nearest_distances: Optional[torch.Tensor] = None,
    ) -> Path:
        """``queries.csv``: each query point, the object the tree returned, its distance and leaf,
        and — where brute force ran — the exact nearest object and its distance; ``objects.csv``:
        each object's leaf (``labels_``)."""
        columns = {"index": np.arange(len(queries))}
        columns.update({f"q{d}": queries[:, d].cpu().numpy() for d in range(queries.shape[1])})
        columns.update({"object": objects.cpu().numpy(), "distance": distances.cpu().numpy(), "cluster": leaves.cpu().numpy()})
        if nearest is not None:
            columns.update({"nearest_object": nearest.cpu().numpy(), "nearest_distance": nearest_distances.cpu().numpy()})
        path = folder / "queries.csv"
        predictions.write_table(path, columns)
        leaf_of_object = self._leaf_numbers()[self.tree.object_node].cpu().numpy()
        predictions.write_table(folder / "objects.csv", {"index": np.arange(len(leaf_of_object)), "cluster": leaf_of_object})
        return path

    def _tree_shape(self) -> dict[str, float]:
        tree = self.tree
        counts = tree.counts()[tree.is_leaf]
        return {
            "tree_nodes": float(tree.n_nodes),
            "tree_depth": float(tree.depth.max()),
            "tree_leaves": float(tree.is_leaf.sum()),
            "leaf_objects_max": float(counts.max()),
            "leaf_objects_mean": float(counts.float().mean()),
        }

    def _plot_partition(self, low: torch.Tensor, high: torch.Tensor, context: Context) -> None:
        path = context.plot_path("partition")
        if path is None or self.family.dim != 2:
            return
        side = self.config.plot_resolution
        axes = [torch.linspace(float(low[d]), float(high[d]), side, device=low.device) for d in range(2)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="xy"), dim=-1).reshape(-1, 2)
        leaves = self.tree.descend(grid, beam=1).beams
        cells = (leaves[-1][:, 0] if leaves else torch.zeros(len(grid), dtype=torch.long)).reshape(side, side)
        plots.partition(
            cells.cpu().numpy(), (float(low[0]), float(high[0]), float(low[1]), float(high[1])),
            self.family.outline(self.tree.objects.cpu()).numpy(), path,
            title=f"geocluster: {int(self.tree.is_leaf.sum())} leaves over {len(self.tree.objects)} {self.family.name}",
        )

    # -- state ---------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        if self.tree is None:
            return {}
        loop = self.loop.state_dict() if self.loop is not None else self.loop_state
        return {"tree": self.tree.state(), "objects": self.tree.objects.cpu(), "loop": loop}

    def _load_state(self, state: dict[str, Any]) -> None:
        if "tree" not in state:
            return
        objects = state["objects"].to(self.device)
        self.loop_state = state["loop"]
        if self.fitted:
            self.tree = ObjectTree.from_state(state["tree"], objects, self.family)
        else:
            self._stored_tree = state["tree"]


def _synchronized_clock(device: torch.device) -> float:
    """``time.perf_counter()`` after the device's queued work has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
