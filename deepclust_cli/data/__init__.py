"""The datasets by name. Each is a schema in ``data/config.py`` (a plain dataclass) and a loader in
its family's module; listing it here registers the schema for the CLI without importing torch, and
the loader is imported when a run loads the data. ``load_dataset`` is the entry point::

    from deepclust_cli.data import load_dataset
    from deepclust_cli.data.config import BlobsConfig
    data = load_dataset(BlobsConfig(name="blobs", n_samples=500), "data")
"""

from typing import Any

from deepclust_cli.data.config import (
    OBJECT_TYPES,
    REFERENCE_OBJECTS,
    BlobsConfig,
    CirclesConfig,
    DatasetConfig,
    FeaturesConfig,
    GeneratedConfig,
    GeneratedObjectsConfig,
    ImageFolderConfig,
    ImagesConfig,
    ObjectsConfig,
    ReferenceObjectsConfig,
    ReutersConfig,
    STL10Config,
    VisionConfig,
)
from deepclust_cli.registry import Registry

DATASETS: Registry = Registry("dataset")  # name → loader(config, data_dir, seed) -> Dataset
DATASETS.add("twomoons", "deepclust_cli.data.toy:load_twomoons", GeneratedConfig)
DATASETS.add("circles", "deepclust_cli.data.toy:load_circles", CirclesConfig)
DATASETS.add("blobs", "deepclust_cli.data.toy:load_blobs", BlobsConfig)
DATASETS.add("digits", "deepclust_cli.data.toy:load_digits", DatasetConfig)
for _name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "cifar100_20", "svhn"):
    DATASETS.add(_name, f"deepclust_cli.data.vision:load_{_name}", VisionConfig)
DATASETS.add("stl10", "deepclust_cli.data.vision:load_stl10", STL10Config)
DATASETS.add("imagenet", "deepclust_cli.data.imagefolder:load_imagenet", ImageFolderConfig)
DATASETS.add("images", "deepclust_cli.data.imagefolder:load_images", ImagesConfig)
DATASETS.add("reuters", "deepclust_cli.data.text:load_reuters", ReutersConfig)
DATASETS.add("features", "deepclust_cli.data.tabular:load_features", FeaturesConfig)
for _name in OBJECT_TYPES:
    DATASETS.add(_name, "deepclust_cli.data.objects:load_generated", GeneratedObjectsConfig)
DATASETS.add("objects", "deepclust_cli.data.objects:load_objects", ObjectsConfig)
for _name in REFERENCE_OBJECTS:
    DATASETS.add(_name, "deepclust_cli.data.objects:load_reference_objects", ReferenceObjectsConfig)


def __getattr__(name: str) -> Any:
    """``load_dataset``, ``Dataset`` and ``Split`` import torch, so they load on first use (PEP 562)."""
    if name in ("load_dataset", "Dataset", "Split"):
        from deepclust_cli.data import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DATASETS", "DatasetConfig", "load_dataset", "Dataset", "Split"]
