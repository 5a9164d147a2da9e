"""Sets of geometric objects for GeoCluster: generated (``squares``, ``cuboids``, ``segments2d``,
``segments3d``, ``ellipses``) or read from the user's ``.npy`` (``objects``).

A split holds one object per row in its family's parameter layout (:mod:`deepclust_cli.ops.geometry`);
there are no labels. Generation is seeded by ``dataset.seed`` (not the run's seed), so sweeping the
run's seed measures the method on fixed objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import MISSING

from deepclust_cli.ops import geometry
from deepclust_cli.data.base import DATASETS, Dataset, DatasetConfig, Split
from deepclust_cli.data.tabular import existing_file, load_npy
from deepclust_cli.errors import DataError, require


@dataclass
class ObjectsConfig(DatasetConfig):
    """Objects of ``object_type`` read from the ``.npy`` file ``path`` (N × the family's parameters)."""

    object_type: str = MISSING
    path: str = MISSING

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.object_type in geometry.FAMILIES,
            f"object_type must be one of {', '.join(geometry.FAMILIES)}, got {self.object_type!r}",
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
        require(self.n_objects >= 1, f"n_objects must be >= 1, got {self.n_objects}")
        require(self.extent > 0, f"extent must be > 0, got {self.extent}")
        require(0 < self.size_min <= self.size_max, f"need 0 < size_min <= size_max, got {self.size_min}, {self.size_max}")


def object_set(name: str, objects: torch.Tensor, object_type: str, where: str) -> Dataset:
    """A dataset of ``objects`` after checking their width and values against ``object_type``."""
    family = geometry.family(object_type)
    if objects.ndim != 2 or objects.shape[1] != family.n_params:
        raise DataError(
            f"{where}: {object_type} need {family.n_params} numbers per object ({family.layout}), got shape {tuple(objects.shape)}"
        )
    bad = int((~torch.isfinite(objects)).sum())
    if bad:
        raise DataError(f"{where}: {bad} NaN or inf values among the objects")
    problem = family.invalid(objects)
    if problem:
        raise DataError(f"{where}: {problem}")
    return Dataset(name, Split(objects.float().contiguous()), kind="objects")


def _register_generated(object_type: str) -> None:
    def load(config: GeneratedObjectsConfig, data_dir: Path, seed: int) -> Dataset:
        require(config.object_type == object_type, f"dataset {object_type} holds {object_type}, not {config.object_type}")
        generator = torch.Generator().manual_seed(config.seed)
        objects = geometry.family(object_type).generate(
            config.n_objects, config.extent, config.size_min, config.size_max, generator
        )
        return object_set(object_type, objects, object_type, f"dataset '{object_type}'")

    load.__doc__ = f"{object_type} generated from ``dataset.seed``."
    DATASETS.register(object_type, schema=GeneratedObjectsConfig)(load)


for _name in geometry.FAMILIES:
    _register_generated(_name)


@DATASETS.register("objects", schema=ObjectsConfig)
def load_objects(config: ObjectsConfig, data_dir: Path, seed: int) -> Dataset:
    """The user's objects: a float ``.npy`` array, one object per row."""
    path = existing_file(config.path, "objects")
    array = load_npy(path)
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: holds {array.dtype} values, not numbers")
    return object_set("objects", torch.from_numpy(array.astype(np.float32)), config.object_type, str(path))
