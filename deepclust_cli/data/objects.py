"""Sets of geometric objects for GeoCluster: generated (``squares``, ``cuboids``, ``segments2d``,
``segments3d``, ``ellipses``) or read from the user's ``.npy`` (``objects``).

A split holds one object per row in its family's parameter layout (:mod:`deepclust_cli.ops.geometry`);
there are no labels. Generation is seeded by ``dataset.seed`` (not the run's seed), so sweeping the
run's seed measures the method on fixed objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import GeneratedObjectsConfig, ObjectsConfig
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
