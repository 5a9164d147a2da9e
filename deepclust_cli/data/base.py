"""The in-memory form every loader returns, and the config fields all datasets share.

Vectors are float32 tensors ``N×D``; images are uint8 tensors ``N×C×H×W`` (or, for image folders
too large for memory, an :class:`ImageFiles`-like lazy source with the same ``subset``/``concat``
interface). Labels are int64 tensors or ``None``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, Optional, Protocol, Union

import numpy as np
import torch

from deepclust_cli.data.config import DatasetConfig, SplitMode
from deepclust_cli.errors import DataError


class LazyImages(Protocol):
    """Images decoded on demand (image folders too large to hold in memory)."""

    def __len__(self) -> int: ...
    def subset(self, index: torch.Tensor) -> "LazyImages": ...
    def concat(self, other: "LazyImages") -> "LazyImages": ...
    def load(self, index: torch.Tensor) -> torch.Tensor: ...


DECODE_CHUNK = 256  # images a worker decodes at a time


def decoded(images: LazyImages, chunks: list[torch.Tensor], num_workers: int, pin_memory: bool = False) -> Iterator[torch.Tensor]:
    """The images at each index chunk, in order, decoded by ``num_workers`` background processes
    (none: in this process)."""
    if num_workers == 0:
        yield from (images.load(chunk) for chunk in chunks)
        return
    loader = torch.utils.data.DataLoader(chunks, batch_size=None, collate_fn=images.load, num_workers=num_workers, pin_memory=pin_memory)
    yield from loader


@dataclass
class Split:
    """One part of a dataset: samples ``x``, optional integer labels ``y``, and where each sample
    came from — ``rows`` (its row or position in the source, default ``0..N−1``) and, once a train
    and a test split are joined, ``parts`` (``"train"`` or ``"test"`` per sample)."""

    x: Union[torch.Tensor, LazyImages]
    y: Optional[torch.Tensor] = None
    rows: Optional[torch.Tensor] = None
    parts: Optional[np.ndarray] = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.y is not None and len(self.y) != len(self.x):
            raise DataError(f"{len(self.x)} samples but {len(self.y)} labels")

    def source_rows(self) -> torch.Tensor:
        return torch.arange(len(self.x)) if self.rows is None else self.rows

    def identity(self) -> dict[str, np.ndarray]:
        """Columns that name each sample in its source: ``split`` (joined splits only), ``index``
        (the row in the input file or the position in the dataset), ``path`` (images read from files)."""
        columns: dict[str, np.ndarray] = {}
        if self.parts is not None:
            columns["split"] = self.parts
        columns["index"] = self.source_rows().numpy()
        paths = getattr(self.x, "paths", None)
        if paths is not None:
            columns["path"] = np.asarray(paths)
        return columns

    def __len__(self) -> int:
        return len(self.x)

    @property
    def is_lazy(self) -> bool:
        return not isinstance(self.x, torch.Tensor)

    def subset(self, index: torch.Tensor) -> "Split":
        x = self.x.subset(index) if self.is_lazy else self.x[index]
        parts = None if self.parts is None else self.parts[index.numpy()]
        return Split(x, None if self.y is None else self.y[index], self.source_rows()[index], parts)

    def concat(self, other: "Split", names: tuple[str, str] = ("train", "test")) -> "Split":
        """Both splits' samples, each marked with the name of the split it came from."""
        x = self.x.concat(other.x) if self.is_lazy else torch.cat([self.x, other.x])
        y = None if self.y is None or other.y is None else torch.cat([self.y, other.y])
        parts = np.concatenate([
            self.parts if self.parts is not None else np.full(len(self), names[0], dtype=object),
            other.parts if other.parts is not None else np.full(len(other), names[1], dtype=object),
        ])
        return Split(x, y, torch.cat([self.source_rows(), other.source_rows()]), parts)

    def images(self, num_workers: int = 0) -> torch.Tensor:
        """All samples as one tensor; a lazy source is decoded in full, by ``num_workers``
        background processes (``trainer.num_workers``)."""
        if not self.is_lazy:
            return self.x
        return torch.cat(list(decoded(self.x, list(torch.arange(len(self.x)).split(DECODE_CHUNK)), num_workers)))

    def vectors(self, num_workers: int = 0) -> torch.Tensor:
        """Samples as float32 rows: images flattened and scaled from [0, 255] to [0, 1]."""
        x = self.images(num_workers)
        if x.dtype == torch.uint8:
            return x.flatten(1).float().div_(255.0)
        return x.float().flatten(1)


@dataclass
class Dataset:
    """What a loader returns: named splits plus what methods need to know about them."""

    name: str
    train: Split
    test: Optional[Split] = None
    n_classes: Optional[int] = None
    kind: str = "vectors"  # "vectors" or "images"
    mean: Optional[tuple[float, ...]] = None  # per-channel image statistics in [0, 1] units
    std: Optional[tuple[float, ...]] = None
    class_names: Optional[list[str]] = field(default=None, repr=False)  # label id → the name in the user's files
    feature_names: Optional[list[str]] = field(default=None, repr=False)  # a CSV header's column names

    def describe(self) -> dict:
        """What the session's ``dataset.json`` keeps: sizes, feature names, label id → class name."""
        return {
            "name": self.name,
            "train": len(self.train),
            "test": None if self.test is None else len(self.test),
            "features": self.feature_names,
            "classes": self.class_names,
        }

    def partition(self, mode: SplitMode) -> tuple[Split, Split]:
        """(fit split, evaluation split) for the run's ``dataset.split`` mode."""
        if mode is SplitMode.all:
            whole = self.train if self.test is None else self.train.concat(self.test)
            return whole, whole
        if self.test is None:
            raise DataError(f"dataset '{self.name}' has no test split; set dataset.split=all")
        return self.train, self.test

    def subsample(self, max_samples: int, seed: int) -> "Dataset":
        """Keep a seeded random subset of at most ``max_samples`` samples in each split."""
        generator = torch.Generator().manual_seed(seed)

        def cut(split: Optional[Split]) -> Optional[Split]:
            index = None if split is None else sample_index(len(split), max_samples, generator)
            return split if index is None else split.subset(index)

        return replace(self, train=cut(self.train), test=cut(self.test))

    def check(self, standardize: Optional[bool] = None) -> None:
        """Refuse data no method can use: empty splits, NaN or inf values, and values so large
        that squared distances overflow float32: ``‖x − y‖² ≤ 4·D·max|x|²`` must stay below
        float32's largest number (k-means would report an infinite inertia and one cluster).
        ``standardize``: the dataset's ``standardize`` option (None: it has none). When on, the
        z-scored values are what the methods see, so size is not checked; when off, the message
        suggests it."""
        for split_name, split in (("train", self.train), ("test", self.test)):
            if split is None:
                continue
            if len(split) == 0:
                raise DataError(f"dataset '{self.name}': the {split_name} split is empty")
            if split.is_lazy or not split.x.is_floating_point() or split.x.numel() == 0:
                continue
            low, high = (float(v) for v in torch.aminmax(split.x))  # NaN propagates: one pass when all is well
            if not (math.isfinite(low) and math.isfinite(high)):
                bad = int((~torch.isfinite(split.x)).sum())
                raise DataError(f"dataset '{self.name}': {bad} NaN or inf values in the {split_name} split")
            if standardize:
                continue
            largest, dims = max(abs(low), abs(high)), split.x[0].numel()
            limit = math.sqrt(float(torch.finfo(torch.float32).max) / (4 * dims))
            if largest > limit:
                fix = "rescale the features" if standardize is None else "set dataset.standardize=true, or rescale the features"
                raise DataError(
                    f"dataset '{self.name}': values up to {largest:.3g} in the {split_name} split, beyond {limit:.3g}, where squared "
                    f"distances between {dims}-dimensional samples overflow float32; {fix}"
                )


def sample_index(n: int, max_samples: int, generator: torch.Generator) -> Optional[torch.Tensor]:
    """The sorted rows a seeded subsample of at most ``max_samples`` of ``n`` keeps (None: all of
    them). Splits drawn one after another from one ``generator`` give :meth:`Dataset.subsample`'s rows."""
    if n <= max_samples:
        return None
    return torch.randperm(n, generator=generator)[:max_samples].sort().values


Loader = Callable[[DatasetConfig, Path, int], Dataset]
"""``loader(config, data_dir, seed) -> Dataset``; the catalog in ``data/__init__.py`` names one per dataset."""


def load_dataset(config: DatasetConfig, data_dir: Union[str, Path], seed: int = 0) -> Dataset:
    """Load the dataset ``config.name`` names, cut it to ``max_samples`` and check its values."""
    from deepclust_cli.data import DATASETS

    data = DATASETS.get(config.name)(config, Path(data_dir), seed)
    if config.max_samples is not None:
        data = data.subsample(config.max_samples, seed)
    data.check(getattr(config, "standardize", None))
    return data


@dataclass
class Standardization:
    """``dataset.standardize``: ``(x − mean) / std`` per feature, with the fitted split's
    statistics (a constant feature keeps std 1); kept in the checkpoint so that ``--predict``
    and resumed runs transform new data the same way."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, split: Split) -> "Standardization":
        x = split.vectors().double()
        std = x.std(dim=0, unbiased=False)
        return cls(x.mean(dim=0).float(), torch.where(std > 0, std, torch.ones_like(std)).float())

    def apply(self, split: Split) -> Split:
        x = split.vectors()
        if x.shape[1] != len(self.mean):
            raise DataError(f"the data has {x.shape[1]} features, the stored standardization {len(self.mean)}")
        return replace(split, x=(x - self.mean) / self.std)

    def state_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std}

    @classmethod
    def from_state(cls, state: dict) -> "Standardization":
        return cls(state["mean"].float(), state["std"].float())

