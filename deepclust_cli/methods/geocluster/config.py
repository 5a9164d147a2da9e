"""GeoCluster's config schema: the tree, the teachers, the students, the descent, the evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

from deepclust_cli.data.config import OBJECT_TYPES
from deepclust_cli.errors import require
from deepclust_cli.methods.config import MethodConfig


@dataclass
class EnergySettings:
    """The energy teacher's knobs (distances are divided by the node's box size first)."""

    steps: int = 100
    lr: float = 0.01  # Adam, in units of the node's box size
    temperature: float = 0.05  # of the softmin fit term and the soft assignment
    box_weight: float = 1.0
    balance_weight: float = 0.1
    repulsion_weight: float = 0.1


@dataclass
class GeoClusterConfig(MethodConfig):
    """``n_clusters`` is the number of children per node."""

    n_clusters: Optional[int] = 8
    object_type: Optional[str] = None  # squares, cuboids, segments2d, segments3d, ellipses (from the dataset)
    threshold: int = 64  # a node with at most this many objects is a leaf
    max_depth: int = 16
    teacher: str = "kmeans"  # kmeans (k-means++ and object-aware Lloyd steps) or energy
    lloyd_steps: int = 30
    energy: EnergySettings = field(default_factory=EnergySettings)
    student_hidden: List[int] = field(default_factory=lambda: [64, 64])
    student_samples: int = 8192  # training points per node
    boundary_fraction: float = 0.5  # of them, those nearest the boundaries between children
    student_steps: int = 400
    student_batch: int = 512  # points per node per step
    student_lr: float = 3e-3
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
        require(self.n_clusters >= 2, f"n_clusters (children per node) must be >= 2, got {self.n_clusters}")
        require(self.threshold >= 1, f"threshold must be >= 1, got {self.threshold}")
        require(self.max_depth >= 1, f"max_depth must be >= 1, got {self.max_depth}")
        require(self.teacher in ("kmeans", "energy"), f"teacher must be kmeans or energy, got {self.teacher!r}")
        require(self.lloyd_steps >= 0, f"lloyd_steps must be >= 0, got {self.lloyd_steps}")
        require(min(self.student_hidden, default=1) >= 1, f"student_hidden must be positive widths, got {self.student_hidden}")
        require(self.student_samples >= 2, f"student_samples must be >= 2, got {self.student_samples}")
        require(0 <= self.boundary_fraction <= 1, f"boundary_fraction must be in [0, 1], got {self.boundary_fraction}")
        require(self.student_steps >= 0, f"student_steps must be >= 0, got {self.student_steps}")
        require(self.student_batch >= 1, f"student_batch must be >= 1, got {self.student_batch}")
        require(self.student_lr > 0, f"student_lr must be > 0, got {self.student_lr}")
        require(self.beam >= 1, f"beam must be >= 1, got {self.beam}")
        require(self.topk >= 1, f"topk must be >= 1, got {self.topk}")
        require(self.n_queries >= 1, f"n_queries must be >= 1, got {self.n_queries}")
        require(self.query_seed >= 0, f"query_seed must be >= 0, got {self.query_seed}")
        require(self.query_margin >= 0, f"query_margin must be >= 0, got {self.query_margin}")
        require(self.plot_resolution >= 2, f"plot_resolution must be >= 2, got {self.plot_resolution}")
