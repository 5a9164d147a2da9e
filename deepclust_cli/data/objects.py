"""Sets of geometric objects for GeoCluster: generated (``squares``, ``cuboids``, ``segments2d``,
``segments3d``, ``ellipses``), read from the user's ``.npy`` (``objects``), or read from the
GeoCluster reference repository's own files (``reference_squares``, ``reference_cuboids``).

A split holds one object per row in its family's parameter layout (:mod:`deepclust_cli.ops.geometry`);
there are no labels. Generation is seeded by ``dataset.seed`` (not the run's seed), so sweeping the
run's seed measures the method on fixed objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import GeneratedObjectsConfig, ObjectsConfig, ReferenceObjectsConfig
from deepclust_cli.data.tabular import existing_file, load_npy
from deepclust_cli.errors import DataError
from deepclust_cli.ops import geometry


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


def load_generated(config: GeneratedObjectsConfig, data_dir: Path, seed: int) -> Dataset:
    """``config.n_objects`` objects of the dataset's own type, generated from ``dataset.seed``."""
    generator = torch.Generator().manual_seed(config.seed)
    objects = geometry.family(config.object_type).generate(config.n_objects, config.extent, config.size_min, config.size_max, generator)
    return object_set(config.name, objects, config.object_type, f"dataset '{config.name}'")


def load_objects(config: ObjectsConfig, data_dir: Path, seed: int) -> Dataset:
    """The user's objects: a float ``.npy`` array, one object per row."""
    path = existing_file(config.path, "objects")
    array = load_npy(path)
    if not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: holds {array.dtype} values, not numbers")
    return object_set("objects", torch.from_numpy(array.astype(np.float32)), config.object_type, str(path))


def load_reference_objects(config: ReferenceObjectsConfig, data_dir: Path, seed: int) -> Dataset:
    """A reference object file in our layout: squares' rotations from degrees to radians; cuboids'
    nine columns cut to the first six once their three rotations are checked to be 0."""
    folder = Path(config.root).expanduser() if config.root else Path(data_dir) / "geocluster"
    path = folder / config.file
    if not path.is_file():
        raise DataError(
            f"reference {config.object_type} file not found: {path}; copy {config.file} there from the GeoCluster "
            "repository's data/ folder, or set dataset.root to the folder holding it"
        )
    array = load_npy(path)
    columns = {"squares": 4, "cuboids": 9}[config.object_type]
    if array.ndim != 2 or array.shape[1] != columns or not np.issubdtype(array.dtype, np.number):
        raise DataError(f"{path}: reference {config.object_type} are {columns} numbers per row, got {array.dtype} of shape {array.shape}")
    array = array.astype(np.float64)
    if config.object_type == "squares":
        array[:, 3] = np.deg2rad(array[:, 3])
    else:
        rotated = int((array[:, 6:] != 0).any(axis=1).sum())
        if rotated:
            raise DataError(f"{path}: {rotated} cuboids are rotated; only axis-aligned cuboids (rotations 0) are supported")
        array = array[:, :6]
    return object_set(config.name, torch.from_numpy(array.astype(np.float32)), config.object_type, str(path))
