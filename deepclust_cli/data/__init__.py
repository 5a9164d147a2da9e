"""Datasets by name: ``load_dataset(config, data_dir, seed)``; each family registers itself on import."""

from deepclust_cli.data import geometry, imagefolder, tabular, text, toy, vision  # noqa: F401  (register their datasets)
from deepclust_cli.data.base import DATASETS, Dataset, DatasetConfig, FileDatasetConfig, Split, SplitMode, load_dataset

__all__ = ["DATASETS", "Dataset", "DatasetConfig", "FileDatasetConfig", "Split", "SplitMode", "load_dataset"]
