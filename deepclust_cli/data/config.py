"""Every dataset's config schema: plain dataclasses that import no torch, so the CLI validates a
dataset's settings before any loader runs. The loaders live beside their family (toy, vision,
imagefolder, text, tabular, objects); ``data/__init__.py`` names the loader of each dataset."""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass, field
from typing import List, Optional, Sequence

from omegaconf import MISSING

from deepclust_cli.errors import require, require_seed

# The geometric object families (ops/geometry.py holds their metrics; a test keeps the two lists equal).
OBJECT_TYPES = ("squares", "cuboids", "segments2d", "segments3d", "ellipses")
OBJECT_METRICS = {"squares": ("frame", "world", "corners")}  # families with a choice of metric (ops/geometry.py METRICS)
REFERENCE_OBJECTS = {"reference_squares": "squares", "reference_cuboids": "cuboids"}  # GeoCluster's own files
SUBSET_FILES = {"10k": "reuters10k.npz", "full": "reuters.npz"}  # Reuters subsets and their files under reuters/


class SplitMode(enum.Enum):
    """Which samples a method fits on and which it is scored on.

    ``all``: train and test concatenated, fitted and scored together (the deep-clustering
    convention, e.g. MNIST 70k). ``train_test``: fit on train, score on test (the
    representation-learning convention, e.g. AND's weighted kNN).
    """

    all = "all"
    train_test = "train_test"


@dataclass
class DatasetConfig:
    """Fields every dataset accepts; families extend it."""

    name: str = MISSING
    n_classes: Optional[int] = None
    split: SplitMode = SplitMode.all
    max_samples: Optional[int] = None

    def __post_init__(self) -> None:
        require(self.n_classes is None or self.n_classes >= 1, f"n_classes must be >= 1, got {self.n_classes}")
        require(self.max_samples is None or self.max_samples >= 1, f"max_samples must be >= 1, got {self.max_samples}")


@dataclass
class FileDatasetConfig(DatasetConfig):
    """A dataset read from files: under ``root`` when given, else under the run's ``data_dir``."""

    root: Optional[str] = None
    download: bool = False


def check_channel_stats(mean: Sequence[float], std: Sequence[float]) -> None:
    """Validate per-channel ``mean``/``std`` in [0, 1] units; both empty means "not known"."""
    require(len(mean) == len(std), f"mean has {len(mean)} values but std has {len(std)}")
    require(all(0.0 <= value <= 1.0 for value in mean), f"mean values must be in [0, 1] units, got {list(mean)}")
    require(all(value > 0.0 for value in std), f"std values must be > 0, got {list(std)}")


# -- generated points ----------------------------------------------------------------------------
@dataclass
class GeneratedConfig(DatasetConfig):
    """``n_samples`` points to fit on, plus ``n_test`` held-out points from the same distribution."""

    n_samples: int = 10000
    n_test: int = 0
    noise: float = 0.05
    standardize: bool = False  # z-score each coordinate with the fitted points' mean and std (the held-out ones too)
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_samples >= 2, f"n_samples must be >= 2, got {self.n_samples}")
        require(self.n_test >= 0, f"n_test must be >= 0, got {self.n_test}")
        require(self.noise >= 0, f"noise must be >= 0, got {self.noise}")
        require_seed(self.seed)
        points, memory = self.n_samples + self.n_test, _physical_memory()
        need = points * getattr(self, "n_features", 2) * GENERATION_BYTES_PER_VALUE
        require(
            need <= memory,
            f"{points} points need about {need / 2**30:.1f} GiB to generate, more than this machine's "
            f"{memory / 2**30:.1f} GiB; use fewer (n_samples, n_test)",
        )


GENERATION_BYTES_PER_VALUE = 24  # the float64 draw, its shuffled copy and the float32 tensor


def _physical_memory() -> float:
    """This machine's memory in bytes (infinite where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


@dataclass
class CirclesConfig(GeneratedConfig):
    factor: float = 0.5  # inner radius / outer radius

    def __post_init__(self) -> None:
        super().__post_init__()
        require(0 < self.factor < 1, f"factor must be in (0, 1), got {self.factor}")


@dataclass
class BlobsConfig(GeneratedConfig):
    n_classes: int = 5
    noise: float = 0.0  # the spread is cluster_std
    n_features: int = 2
    cluster_std: float = 0.5
    center_box: float = 10.0  # centers uniform in [-center_box, center_box] per coordinate
    min_separation: float = 10.0  # center distances of at least this many cluster_std
    anisotropy: float = 1.0  # a component's longest axis over its shortest (1: isotropic); each is rotated at random

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.n_features >= 1, f"n_features must be >= 1, got {self.n_features}")
        require(self.cluster_std > 0, f"cluster_std must be > 0, got {self.cluster_std}")
        require(self.center_box > 0, f"center_box must be > 0, got {self.center_box}")
        require(self.min_separation >= 0, f"min_separation must be >= 0, got {self.min_separation}")
        require(self.anisotropy >= 1, f"anisotropy must be >= 1 (the longest axis over the shortest), got {self.anisotropy}")


# -- image benchmarks and image folders -----------------------------------------------------------
@dataclass
class VisionConfig(FileDatasetConfig):
    """An image benchmark. ``mean``/``std``: per-channel statistics in [0, 1] units; empty: unknown."""

    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_channel_stats(self.mean, self.std)


@dataclass
class STL10Config(VisionConfig):
    """STL-10; ``unlabeled`` appends the 100,000 unlabelled images to the train split.

    Those images have no class, so the train split's labels become ``None`` while the test
    split keeps its 8,000 labels: pair it with ``dataset.split=train_test`` to be scored.
    """

    unlabeled: bool = False


@dataclass
class ImageFolderConfig(FileDatasetConfig):
    """Images in ``<folder>/<train_dir|test_dir>/<class>/<image>``; ``test_dir: null`` for no test split."""

    image_size: int = 224
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)
    train_dir: str = "train"
    test_dir: Optional[str] = "val"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.image_size >= 1, f"image_size must be >= 1, got {self.image_size}")
        check_channel_stats(self.mean, self.std)


@dataclass
class ImagesConfig(DatasetConfig):
    """Your own images in the folder ``path``: directly inside it (unlabelled), or in class
    subfolders ``path/<class>/<image>`` (labelled by them); resized to ``image_size`` squares."""

    path: str = MISSING
    image_size: int = 64
    mean: List[float] = field(default_factory=list)
    std: List[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.image_size >= 1, f"image_size must be >= 1, got {self.image_size}")
        check_channel_stats(self.mean, self.std)


# -- text and your own vectors --------------------------------------------------------------------
@dataclass
class ReutersConfig(FileDatasetConfig):
    """``subset``: ``10k`` (DEC's 10,000 documents) or ``full`` (every single-category document)."""

    subset: str = "10k"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(self.subset in SUBSET_FILES, f"subset must be one of {', '.join(SUBSET_FILES)}, got '{self.subset}'")


FEATURE_SUFFIXES = (".npy", ".npz", ".csv")
LABEL_SUFFIXES = (".npy", ".csv", ".txt")


@dataclass
class FeaturesConfig(DatasetConfig):
    """Features in ``path`` (rows are samples), labels in ``labels`` or in a CSV column.

    ``label_column`` names a column of the CSV ``path`` (its header name, or its 0-based index,
    negative counting from the end) that holds labels and is not a feature; the test CSV must
    then hold the same column. ``test_path``/``test_labels`` give a held-out split.
    """

    path: str = MISSING
    labels: Optional[str] = None
    label_column: Optional[str] = None
    test_path: Optional[str] = None
    test_labels: Optional[str] = None
    delimiter: str = ","
    key: Optional[str] = None  # the features' array in an .npz (None: its only array, or x / X / data / features)
    standardize: bool = False  # z-score each feature with the fitted split's mean and std (kept in the checkpoint)

    def __post_init__(self) -> None:
        super().__post_init__()
        for key in ("path", "test_path"):
            value = getattr(self, key)
            require(
                value is None or value.endswith(FEATURE_SUFFIXES), f"{key} must be a .npy, .npz or .csv file, got '{value}'"
            )
        for key in ("labels", "test_labels"):
            value = getattr(self, key)
            require(
                value is None or value.endswith(LABEL_SUFFIXES),
                f"{key} must be a .npy, .csv or .txt file, got '{value}'",
            )
        require(self.labels is None or self.label_column is None, "give labels or label_column, not both")
        require(self.label_column is None or self.path.endswith((".csv", ".npz")), "label_column needs a .csv path (a column) or an .npz (an array)")
        require(self.test_labels is None or self.test_path is not None, "test_labels needs test_path")
        require(
            self.test_labels is None or self.labels is not None or self.label_column is not None,
            "test_labels needs training labels (labels or label_column) to number its classes",
        )
        require(len(self.delimiter) == 1, f"delimiter must be one character, got '{self.delimiter}'")


# -- geometric objects (GeoCluster) ----------------------------------------------------------------
@dataclass
class ObjectsConfig(DatasetConfig):
    """Objects of ``object_type`` read from the ``.npy`` file ``path`` (N × the family's parameters)."""

    object_type: str = MISSING
    path: str = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.object_type in OBJECT_TYPES,
            f"object_type must be one of {', '.join(OBJECT_TYPES)}, got {self.object_type!r}",
        )
        require(self.path.endswith(".npy"), f"path must be a .npy file, got '{self.path}'")


@dataclass
class GeneratedObjectsConfig(DatasetConfig):
    """``n_objects`` objects placed uniformly in ``[0, extent]^dim``, sizes (side, length, size
    along each axis or semi-axis) uniform in ``[size_min, size_max]``."""

    object_type: str = MISSING
    n_objects: int = 10000
    extent: float = 100.0
    size_min: float = 0.1
    size_max: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.name not in OBJECT_TYPES or self.object_type == self.name,
            f"dataset {self.name} holds {self.name}, not {self.object_type}; use dataset={self.object_type}",
        )
        require(self.n_objects >= 1, f"n_objects must be >= 1, got {self.n_objects}")
        require(self.extent > 0, f"extent must be > 0, got {self.extent}")
        require(0 < self.size_min <= self.size_max, f"need 0 < size_min <= size_max, got {self.size_min}, {self.size_max}")


@dataclass
class ReferenceObjectsConfig(DatasetConfig):
    """One of the GeoCluster reference repository's object files (PRigas96/GeoCluster, ``data/``),
    ``file`` under ``root`` (default ``<data_dir>/geocluster``): squares as ``x, y, side, rotation``
    with the rotation in degrees, cuboids as ``x, y, z, w, h, d, rx, ry, rz`` (centre, full sizes,
    three rotations, which must be 0: our cuboids are axis-aligned)."""

    object_type: str = MISSING
    file: str = MISSING
    root: Optional[str] = None

    def __post_init__(self) -> None:
        super().__post_init__()
        expected = REFERENCE_OBJECTS.get(self.name)
        require(expected is not None, f"reference object sets are {', '.join(REFERENCE_OBJECTS)}, got {self.name!r}")
        require(self.object_type == expected, f"dataset {self.name} holds {expected}, not {self.object_type}")
        require(self.file.endswith(".npy"), f"file must be a .npy file, got '{self.file}'")
