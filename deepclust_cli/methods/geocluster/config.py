"""GeoCluster's config schema: the tree, the teachers, the students, the descent, the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.data.config import OBJECT_METRICS, OBJECT_TYPES
from deepclust_cli.errors import require
from deepclust_cli.methods.config import MethodConfig


@dataclass
class EnergyConfig:
    """The energy teacher's knobs (distances are divided by the node's box size first)."""

    steps: int = 100
    lr: float = 0.01  # in units of the node's box size
    temperature: float = 0.05  # of the softmin fit term and the soft assignment
    box_weight: float = 1.0
    balance_weight: float = 0.1
    repulsion_weight: float = 0.1


@dataclass
class StudentConfig:
    """Each split node's router: an MLP of ``hidden`` widths trained for ``steps`` steps of
    ``batch_size`` points per node at ``lr``, on ``samples`` points drawn in the node's box and
    around its objects, ``boundary_fraction`` of them nearest the boundaries between children."""

    hidden: List[int] = field(default_factory=lambda: [64, 64])
    samples: int = 8192
    boundary_fraction: float = 0.5
    steps: int = 400
    batch_size: int = 512
    lr: float = 3e-3

    def __post_init__(self) -> None:
        require(min(self.hidden, default=1) >= 1, f"student.hidden must be positive widths, got {self.hidden}")
        require(self.samples >= 2, f"student.samples must be >= 2, got {self.samples}")
        require(0 <= self.boundary_fraction <= 1, f"student.boundary_fraction must be in [0, 1], got {self.boundary_fraction}")
        require(self.steps >= 0, f"student.steps must be >= 0, got {self.steps}")
        require(self.batch_size >= 1, f"student.batch_size must be >= 1, got {self.batch_size}")
        require(self.lr > 0, f"student.lr must be > 0, got {self.lr}")


@dataclass
class GeoClusterConfig(MethodConfig):
    """A tree over the objects: ``branching`` children per node until a node holds at most
    ``threshold`` objects; its leaves are the clusters a query point is assigned to."""

    object_type: Optional[str] = None  # squares, cuboids, segments2d, segments3d, ellipses (from the dataset)
    metric: Optional[str] = None  # None: the family's own; squares: frame (L∞ in its frame), world (L∞ in world coordinates) or corners (the reference's)
    branching: int = 8  # children per node
    threshold: int = 64  # a node with at most this many objects is a leaf
    max_depth: int = 16
    teacher: str = "kmeans"  # kmeans (k-means++ and object-aware Lloyd steps) or energy
    lloyd_steps: int = 30
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    student: StudentConfig = field(default_factory=StudentConfig)
    beam: int = 8  # nodes kept per level while descending
    topk: int = 10  # nn_topk_acc: recall of the true k nearest objects
    n_queries: int = 10000  # fresh uniform query points the evaluation draws
    query_seed: int = 0  # which draw of them: change it to score a saved tree on other queries
    query_margin: float = 0.05  # queries fill the objects' box widened by this fraction per side
    plot_resolution: int = 400  # grid points per side of the partition plot (2-D objects)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.object_type is not None,
            "geocluster needs geometric objects: use dataset=squares, cuboids, segments2d, segments3d, ellipses or objects",
        )
        require(self.object_type in OBJECT_TYPES, f"object_type must be one of {', '.join(OBJECT_TYPES)}, got {self.object_type!r}")
        choices = OBJECT_METRICS.get(self.object_type, ())
        require(
            self.metric is None or self.metric in choices,
            f"metric {self.metric!r} is not one of {self.object_type}'s: "
            + (", ".join(choices) if choices else f"{self.object_type} have only their own metric (metric=null)"),
        )
        require(self.branching >= 2, f"branching (children per node) must be >= 2, got {self.branching}")
        require(self.threshold >= 1, f"threshold must be >= 1, got {self.threshold}")
        require(self.max_depth >= 1, f"max_depth must be >= 1, got {self.max_depth}")
        require(self.teacher in ("kmeans", "energy"), f"teacher must be kmeans or energy, got {self.teacher!r}")
        require(self.lloyd_steps >= 0, f"lloyd_steps must be >= 0, got {self.lloyd_steps}")
        require(self.beam >= 1, f"beam must be >= 1, got {self.beam}")
        require(self.topk >= 1, f"topk must be >= 1, got {self.topk}")
        require(self.n_queries >= 1, f"n_queries must be >= 1, got {self.n_queries}")
        require(self.query_seed >= 0, f"query_seed must be >= 0, got {self.query_seed}")
        require(self.query_margin >= 0, f"query_margin must be >= 0, got {self.query_margin}")
        require(self.plot_resolution >= 2, f"plot_resolution must be >= 2, got {self.plot_resolution}")
