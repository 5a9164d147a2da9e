"""GeoCluster's tree over geometric objects: nodes in breadth-first order, a student network per
internal node that routes a query point to a child, and the leaves' objects searched exhaustively.

A query descends level by level keeping a beam of the ``b`` most probable nodes (scores are sums
of the students' log-probabilities along the path; a leaf reached early is carried along), then
the objects of the reached leaves are compared by the object metric. Everything is batched over
the queries; the only loop below the level loop is one per distinct student.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from deepclust_cli.methods.geocluster.students import StackedMLP
from deepclust_cli.ops.geometry import ObjectFamily

QUERY_CHUNK = 8192


@dataclass
class Descent:
    """Where a batch of queries went: the beam after each level (Q × b node ids, −1 = empty) and
    the objects finally chosen (Q × k distances and indices, ascending)."""

    beams: list[torch.Tensor]
    distances: torch.Tensor
    indices: torch.Tensor


@dataclass
class ObjectTree:
    """Nodes ``0..M−1`` in breadth-first order (node 0 is the root).

    ``children[m]`` holds up to ``n_children`` child ids (−1 for none); ``low/high[m]`` is the box
    the node's student reads its input in; ``object_node[i]`` is the deepest node holding object
    ``i`` (its leaf once the tree is built); ``student_row[m]`` is node ``m``'s row in
    ``students[depth[m]]`` (−1 for leaves). Depths below ``built_depth`` are final.
    """

    objects: torch.Tensor
    family: ObjectFamily
    n_children: int
    depth: torch.Tensor
    parent: torch.Tensor
    children: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor
    object_node: torch.Tensor
    student_row: torch.Tensor
    students: list[StackedMLP] = field(default_factory=list)
    built_depth: int = 0
    _table: Optional[torch.Tensor] = field(default=None, init=False, repr=False)  # leaf_table(), cached

    @classmethod
    def root(cls, objects: torch.Tensor, family: ObjectFamily, n_children: int, low: torch.Tensor, high: torch.Tensor) -> "ObjectTree":
        device = objects.device
        return cls(
            objects=objects,
            family=family,
            n_children=n_children,
            depth=torch.zeros(1, dtype=torch.long, device=device),
            parent=torch.full((1,), -1, dtype=torch.long, device=device),
            children=torch.full((1, n_children), -1, dtype=torch.long, device=device),
            low=low[None].clone(),
            high=high[None].clone(),
            object_node=torch.zeros(len(objects), dtype=torch.long, device=device),
            student_row=torch.full((1,), -1, dtype=torch.long, device=device),
        )

    # -- structure -----------------------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        return len(self.depth)

    @property
    def is_leaf(self) -> torch.Tensor:
        return self.children[:, 0] < 0

    def nodes_at(self, depth: int) -> torch.Tensor:
        return torch.nonzero(self.depth == depth).flatten()

    def counts(self) -> torch.Tensor:
        """Objects per node, counting only the deepest node holding each (so leaves' counts)."""
        return torch.bincount(self.object_node, minlength=self.n_nodes)

    def objects_by_node(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Object indices grouped by their deepest node: ``order[starts[m] : starts[m] + counts[m]]``
        are node ``m``'s objects (ascending within a node)."""
        order = torch.argsort(self.object_node, stable=True)
        counts = self.counts()
        return order, torch.cumsum(counts, 0) - counts, counts

    def add_children(
        self, parents: torch.Tensor, child_of_object: torch.Tensor, objects_of: list[torch.Tensor], boxes: list[tuple[torch.Tensor, torch.Tensor]]
    ) -> None:
        """Give each node in ``parents`` a child per distinct value of ``child_of_object`` over its
        objects ``objects_of[i]`` (child slots numbered as the teacher's centers, empty ones
        skipped); ``boxes[i]`` is the (low, high) box of each of its children, n_children × dim."""
        device = self.depth.device
        first = self.n_nodes
        new_depth, new_parent, new_low, new_high = [], [], [], []
        next_id = first
        for parent, objects, (low, high) in zip(parents.tolist(), objects_of, boxes):
            slots = child_of_object[objects]
            for slot in torch.unique(slots).tolist():
                self.children[parent, slot] = next_id
                self.object_node[objects[slots == slot]] = next_id
                new_parent.append(parent)
                new_depth.append(int(self.depth[parent]) + 1)
                new_low.append(low[slot])
                new_high.append(high[slot])
                next_id += 1
        added = next_id - first
        self._table = None
        if not added:
            return
        self.depth = torch.cat([self.depth, torch.tensor(new_depth, device=device)])
        self.parent = torch.cat([self.parent, torch.tensor(new_parent, device=device)])
        self.children = torch.cat([self.children, torch.full((added, self.n_children), -1, dtype=torch.long, device=device)])
        self.low = torch.cat([self.low, torch.stack(new_low)])
        self.high = torch.cat([self.high, torch.stack(new_high)])
        self.student_row = torch.cat([self.student_row, torch.full((added,), -1, dtype=torch.long, device=device)])

    def ancestors_at(self, depth: int) -> torch.Tensor:
        """For each object, the node at ``depth`` on its path (its leaf when that is shallower)."""
        node = self.object_node.clone()
        while True:
            deeper = self.depth[node] > depth
            if not deeper.any():
                return node
            node = torch.where(deeper, self.parent[node], node)

    def normalized(self, points: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """Points in their node's box coordinates: ``(p − center) / (largest half side)``."""
        center = (self.low[nodes] + self.high[nodes]) / 2
        half = ((self.high[nodes] - self.low[nodes]).amax(dim=1, keepdim=True) / 2).clamp_min(1e-12)
        return (points - center) / half

    # -- queries -------------------------------------------------------------------------------
    @torch.no_grad()
    def descend(self, points: torch.Tensor, beam: int, k: int = 1) -> Descent:
        """The ``k`` nearest objects the tree finds for each point, with the beams on the way."""
        parts = [self._descend_chunk(points[start : start + QUERY_CHUNK], beam, k) for start in range(0, len(points), QUERY_CHUNK)]
        levels = len(parts[0].beams)
        return Descent(
            beams=[torch.cat([part.beams[level] for part in parts]) for level in range(levels)],
            distances=torch.cat([part.distances for part in parts]),
            indices=torch.cat([part.indices for part in parts]),
        )

    def _descend_chunk(self, points: torch.Tensor, beam: int, k: int) -> Descent:
        n = len(points)
        nodes = torch.zeros(n, 1, dtype=torch.long, device=points.device)
        scores = torch.zeros(n, 1, device=points.device)
        beams = []
        for depth in range(len(self.students)):
            valid = nodes >= 0
            safe = nodes.clamp_min(0)
            internal = valid & (self.student_row[safe] >= 0)
            if not internal.any():
                break
            width = nodes.shape[1]
            candidate_nodes = torch.full((n, width, self.n_children + 1), -1, dtype=torch.long, device=points.device)
            candidate_scores = torch.full((n, width, self.n_children + 1), -torch.inf, device=points.device)
            carried = valid & ~internal
            candidate_nodes[..., 0] = torch.where(carried, nodes, -1)
            candidate_scores[..., 0] = torch.where(carried, scores, -torch.inf)
            query, slot = torch.nonzero(internal, as_tuple=True)
            node = nodes[query, slot]
            logits = self.students[depth].forward_rows(self.normalized(points[query], node), self.student_row[node])
            kids = self.children[node]
            log_probabilities = torch.log_softmax(logits.masked_fill(kids < 0, -torch.inf), dim=1)
            candidate_nodes[query, slot, 1:] = kids
            candidate_scores[query, slot, 1:] = scores[query, slot, None] + log_probabilities
            flat_scores = candidate_scores.flatten(1)
            keep = min(beam, flat_scores.shape[1])
            scores, picked = flat_scores.topk(keep, dim=1)
            nodes = torch.where(torch.isfinite(scores), candidate_nodes.flatten(1).gather(1, picked), -1)
            beams.append(nodes)
        distances, indices = self._search_leaves(points, nodes, k)
        return Descent(beams, distances, indices)

    def leaf_table(self) -> torch.Tensor:
        """Objects of each node as rows padded with −1 (M × largest leaf)."""
        order, starts, counts = self.objects_by_node()
        position = torch.arange(len(order), device=order.device) - starts[self.object_node[order]]
        table = torch.full((self.n_nodes, max(int(counts.max()), 1)), -1, dtype=torch.long, device=order.device)
        table[self.object_node[order], position] = order
        return table

    def _search_leaves(self, points: torch.Tensor, leaves: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._table is None:
            self._table = self.leaf_table()
        candidates = torch.where((leaves >= 0)[..., None], self._table[leaves.clamp_min(0)], -1).flatten(1)
        distances = self.family.distance(points[:, None], self.objects[candidates.clamp_min(0)])
        distances = distances.masked_fill(candidates < 0, torch.inf)
        k = min(k, distances.shape[1])
        best, position = distances.topk(k, dim=1, largest=False)
        return best, candidates.gather(1, position)

    # -- state ---------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "n_children": self.n_children,
            "built_depth": self.built_depth,
            **{name: getattr(self, name).cpu() for name in ("depth", "parent", "children", "low", "high", "object_node", "student_row")},
            "students": [
                {"shape": [student.count, *[w.shape[1] for w in student.weights], student.weights[-1].shape[2]],
                 "weights": {key: value.cpu() for key, value in student.state_dict().items()}}
                for student in self.students
            ],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], objects: torch.Tensor, family: ObjectFamily) -> "ObjectTree":
        device = objects.device
        tensors = {name: state[name].to(device) for name in ("depth", "parent", "children", "low", "high", "object_node", "student_row")}
        tree = cls(objects=objects, family=family, n_children=int(state["n_children"]), built_depth=int(state["built_depth"]), **tensors)
        for stored in state["students"]:
            count, in_dim, *hidden, out_dim = stored["shape"]
            student = StackedMLP(count, in_dim, hidden, out_dim, torch.Generator())
            student.load_state_dict(stored["weights"])
            tree.students.append(student.to(device))
        return tree
