"""Image benchmarks read from their release files: MNIST, Fashion-MNIST, CIFAR-10/100, SVHN, STL-10.

Files lie in torchvision's layout under the run's ``data_dir`` (or ``dataset.root``), so
``dataset.download=true`` lets torchvision's downloader fill exactly the folder read here. Parsing
is our own: torchvision's classes verify md5 sums of the complete release files, and reading the
formats directly keeps every loader a few vectorized numpy calls.

This module also holds the helpers the other file-based families share: where a dataset's files
are, what to say when they are absent, and the checks on class counts and channel statistics.
"""

from __future__ import annotations

import codecs
import gzip
import pickle
import zlib
from pathlib import Path
from typing import Any, Callable, List, Optional, Protocol, Sequence

import numpy as np
import scipy.io
import torch

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import DatasetConfig, FileDatasetConfig, STL10Config, VisionConfig
from deepclust_cli.errors import DataError, require

DOWNLOAD_REMEDY = "put the files there or set dataset.download=true"


# --- shared by the file-based families -------------------------------------------------------


def check_class_count(config: DatasetConfig, found: int, where: str = "") -> int:
    """``found``, after checking that a configured ``dataset.n_classes`` agrees with it."""
    if config.n_classes is not None and config.n_classes != found:
        raise DataError(
            f"dataset '{config.name}' has {found} classes{where} but dataset.n_classes={config.n_classes}; "
            f"set dataset.n_classes={found} or null"
        )
    return found


def to_labels(values: np.ndarray, n_classes: int, path: Path) -> torch.Tensor:
    """Integer labels as an int64 tensor, refusing values outside 0..n_classes-1."""
    labels = np.asarray(values).astype(np.int64, copy=False).reshape(-1)
    outside = (labels < 0) | (labels >= n_classes)
    if outside.any():
        raise DataError(f"{path}: labels must lie in 0..{n_classes - 1}, found {int(labels[outside][0])}")
    return torch.from_numpy(np.ascontiguousarray(labels))


def base_folder(config: FileDatasetConfig, data_dir: Path) -> Path:
    """The top of the torchvision layout: ``dataset.root`` when set, else the run's data_dir."""
    return data_dir if config.root is None else Path(config.root).expanduser()


def files_folder(
    config: FileDatasetConfig,
    data_dir: Path,
    layout: str,
    required: Sequence[str],
    present: Callable[[Path], bool] = Path.exists,
) -> Path:
    """The folder holding a dataset's files: ``<data_dir>/<layout>``, torchvision's layout.

    ``dataset.root`` takes data_dir's place, as torchvision's own ``root=`` argument does. A root
    that directly holds every required file is read as it is, so users may also point it straight
    at the files' own folder.
    """
    base = base_folder(config, data_dir)
    if config.root is not None and all(present(base / name) for name in required):
        return base
    return base / layout


def fetch_files(
    config: FileDatasetConfig,
    data_dir: Path,
    layout: str,
    required: Sequence[str],
    download: Callable[[Path], Any],
    present: Callable[[Path], bool] = Path.exists,
) -> Path:
    """:func:`files_folder`, after ``download(torchvision_root)`` when files are absent and allowed."""
    folder = files_folder(config, data_dir, layout, required, present)
    missing = [name for name in required if not present(folder / name)]
    if not missing:
        return folder
    if not config.download:
        raise DataError(f"dataset '{config.name}' not found: expected {folder / missing[0]}; {DOWNLOAD_REMEDY}")
    root = base_folder(config, data_dir)
    try:
        download(root)
    except (OSError, RuntimeError) as error:  # network failures and torchvision's checksum errors
        raise DataError(
            f"dataset '{config.name}': torchvision's download into {root} failed ({_one_line(error)})"
        ) from error
    missing = [name for name in required if not present(folder / name)]
    if missing:
        raise DataError(f"dataset '{config.name}': {folder / missing[0]} is still absent after torchvision's download")
    return folder


class ImageStatsConfig(Protocol):
    """What :func:`image_dataset` reads from an image family's config."""

    name: str
    mean: List[float]
    std: List[float]


def image_dataset(
    config: ImageStatsConfig,
    train: Split,
    test: Optional[Split],
    n_classes: int,
    channels: int,
    class_names: Optional[list[str]] = None,
) -> Dataset:
    """Wrap image splits, taking ``mean``/``std`` from the config (``None`` when it gives none)."""
    require(
        not config.mean or len(config.mean) == channels,
        f"dataset.mean has {len(config.mean)} values but '{config.name}' images have {channels} channels",
    )
    return Dataset(
        config.name,
        train,
        test,
        n_classes=n_classes,
        kind="images",
        mean=tuple(float(value) for value in config.mean) or None,
        std=tuple(float(value) for value in config.std) or None,
        class_names=class_names,
    )


def _torchvision_datasets() -> Any:
    """torchvision's dataset classes, imported only to download (the import costs seconds)."""
    import torchvision.datasets

    return torchvision.datasets


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --- MNIST and Fashion-MNIST: IDX files ------------------------------------------------------

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UNSIGNED_BYTE = 0x08
_IDX_SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (MNIST's format), plain or gzip-compressed.

    The header is a big-endian uint32 magic number ``0x00 0x00 0x08 <ndim>`` (2049 for a label
    vector, 2051 for an image stack) followed by one big-endian uint32 per dimension; the values
    follow as bytes in C order.
    """
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(f"{path}: not a readable gzip file ({_one_line(error)})") from error
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    expected_magic = (_IDX_UNSIGNED_BYTE << 8) | ndim
    if magic != expected_magic:
        raise DataError(
            f"{path}: wrong magic number {magic} (an IDX file of {ndim}-D bytes starts with {expected_magic})"
        )
    shape = tuple(int(size) for size in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    n_values = int(np.prod(shape))
    if len(raw) - header_size != n_values:
        raise DataError(
            f"{path}: header promises shape {shape} ({n_values} bytes) but {len(raw) - header_size} bytes follow"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header_size).reshape(shape)


def _idx_file(path: Path) -> Path:
    """``path``, or its ``.gz`` twin when only that exists (torchvision keeps both after a download)."""
    return path if path.exists() else path.with_name(path.name + ".gz")


def _idx_present(path: Path) -> bool:
    return _idx_file(path).exists()


def _read_idx_split(folder: Path, images_name: str, labels_name: str) -> Split:
    images_path, labels_path = _idx_file(folder / images_name), _idx_file(folder / labels_name)
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(images)} images in {images_path.name}")
    return Split(torch.from_numpy(images[:, None]), to_labels(labels, 10, labels_path))


def _load_idx_digits(config: VisionConfig, data_dir: Path, folder_name: str, torchvision_class: str) -> Dataset:
    required = [name for pair in _IDX_SPLITS.values() for name in pair]
    folder = fetch_files(
        config,
        data_dir,
        f"{folder_name}/raw",
        required,
        lambda root: getattr(_torchvision_datasets(), torchvision_class)(root, train=True, download=True),
        present=_idx_present,
    )
    train = _read_idx_split(folder, *_IDX_SPLITS["train"])
    test = _read_idx_split(folder, *_IDX_SPLITS["test"])
    return image_dataset(config, train, test, check_class_count(config, 10), channels=1)


def load_mnist(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """MNIST: 60,000 + 10,000 grey 28×28 digits from ``<data_dir>/MNIST/raw``."""
    return _load_idx_digits(config, data_dir, "MNIST", "MNIST")


def load_fashion_mnist(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """Fashion-MNIST: 60,000 + 10,000 grey 28×28 clothing images from ``<data_dir>/FashionMNIST/raw``."""
    return _load_idx_digits(config, data_dir, "FashionMNIST", "FashionMNIST")


# --- CIFAR-10 and CIFAR-100: pickled batches -------------------------------------------------


def _numpy_pickle_globals() -> dict[tuple[str, str], Any]:
    """The globals a pickled numpy array refers to, under numpy 1.x and 2.x module names."""
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.int64(0).__reduce__()[0]
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]  # protocol 5 rebuilds arrays through _frombuffer
    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for function in (reconstruct, scalar, frombuffer):
        submodule = function.__module__.split(".")[-1]
        for package in ("numpy.core", "numpy._core"):
            allowed[(f"{package}.{submodule}", function.__name__)] = function
    # Python 3 writes bytes at protocols 0-2 as _codecs.encode(text, "latin1").
    allowed[("_codecs", "encode")] = codecs.encode
    return allowed


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles containers, numbers, strings and numpy arrays, and refuses every other global.

    A pickle can call any importable function while it loads; data files have no business
    doing that, so only the few callables that rebuild numpy arrays are resolvable.
    """

    _allowed = _numpy_pickle_globals()

    def find_class(self, module: str, name: str) -> Any:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: data files may only hold numpy arrays"
            ) from None


def read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×32×32 uint8) and labels from one CIFAR "python version" batch.

    A batch is a pickled dict: ``data``, an N×3072 uint8 array whose rows hold the red, green and
    blue 32×32 planes one after the other, each row-major; and an integer list per labelling,
    ``labels`` (CIFAR-10) or ``fine_labels`` and ``coarse_labels`` (CIFAR-100). The official
    files come from Python 2, so their keys load as bytes; both bytes and str keys are accepted.
    """
    try:
        with path.open("rb") as file:
            batch = _ArrayUnpickler(file, encoding="latin1").load()
    except Exception as error:  # malformed pickles fail in many ways; each means "not a batch"
        raise DataError(f"{path}: not a readable CIFAR batch ({_one_line(error)})") from error
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR batch (holds a {type(batch).__name__}, not a dict)")
    entries = {key.decode("latin1") if isinstance(key, bytes) else key: value for key, value in batch.items()}
    for key in ("data", label_key):
        if key not in entries:
            raise DataError(f"{path}: CIFAR batch without a '{key}' entry (has {sorted(map(str, entries))})")
    data = entries["data"]
    if not (
        isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3 * 32 * 32
    ):
        shape = getattr(data, "shape", None)
        raise DataError(f"{path}: 'data' must be an N×3072 uint8 array, got {type(data).__name__} of shape {shape}")
    try:
        labels = np.asarray(entries[label_key], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise DataError(f"{path}: '{label_key}' is not a list of integers ({_one_line(error)})") from error
    if len(labels) != len(data):
        raise DataError(f"{path}: {len(labels)} '{label_key}' for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), labels


def _read_cifar_split(folder: Path, batch_names: Sequence[str], label_key: str, n_classes: int) -> Split:
    images, labels = [], []
    for name in batch_names:
        batch_images, batch_labels = read_cifar_batch(folder / name, label_key)
        images.append(batch_images)
        labels.append(to_labels(batch_labels, n_classes, folder / name))
    return Split(torch.from_numpy(np.concatenate(images)), torch.cat(labels))


def load_cifar10(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """CIFAR-10: 50,000 + 10,000 colour 32×32 images from ``<data_dir>/cifar-10-batches-py``."""
    train_batches = [f"data_batch_{number}" for number in range(1, 6)]
    folder = fetch_files(
        config,
        data_dir,
        "cifar-10-batches-py",
        [*train_batches, "test_batch"],
        lambda root: _torchvision_datasets().CIFAR10(root, train=True, download=True),
    )
    n_classes = check_class_count(config, 10)
    train = _read_cifar_split(folder, train_batches, "labels", n_classes)
    test = _read_cifar_split(folder, ["test_batch"], "labels", n_classes)
    return image_dataset(config, train, test, n_classes, channels=3)


def _load_cifar100(config: VisionConfig, data_dir: Path, label_key: str, n_classes: int) -> Dataset:
    folder = fetch_files(
        config,
        data_dir,
        "cifar-100-python",
        ["train", "test"],
        lambda root: _torchvision_datasets().CIFAR100(root, train=True, download=True),
    )
    n_classes = check_class_count(config, n_classes)
    train = _read_cifar_split(folder, ["train"], label_key, n_classes)
    test = _read_cifar_split(folder, ["test"], label_key, n_classes)
    return image_dataset(config, train, test, n_classes, channels=3)


def load_cifar100(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """CIFAR-100 with its 100 fine labels, from ``<data_dir>/cifar-100-python``."""
    return _load_cifar100(config, data_dir, "fine_labels", 100)


def load_cifar100_20(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """CIFAR-100 images labelled with the 20 coarse superclasses, the usual deep-clustering target."""
    return _load_cifar100(config, data_dir, "coarse_labels", 20)


# --- SVHN: MATLAB files ----------------------------------------------------------------------


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×32×32 uint8) and labels 0..9 from one SVHN ``*_32x32.mat`` file.

    The file holds ``X``, an H×W×C×N uint8 array, and ``y``, an N×1 array of labels 1..10 in
    which 10 stands for the digit 0.
    """
    try:
        contents = scipy.io.loadmat(path, variable_names=("X", "y"))
    except Exception as error:  # scipy raises many types for damaged files
        raise DataError(f"{path}: not a readable MATLAB file ({_one_line(error)})") from error
    images, labels = contents.get("X"), contents.get("y")
    if images is None or labels is None:
        raise DataError(f"{path}: SVHN file without 'X' and 'y' variables")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[2] != 3:
        raise DataError(f"{path}: 'X' must be an H×W×3×N uint8 array, got {images.dtype} of shape {images.shape}")
    labels = labels.astype(np.int64).reshape(-1)
    if len(labels) != images.shape[3]:
        raise DataError(f"{path}: {len(labels)} labels in 'y' for {images.shape[3]} images in 'X'")
    if ((labels < 1) | (labels > 10)).any():
        raise DataError(f"{path}: SVHN labels must lie in 1..10, found {int(labels[(labels < 1) | (labels > 10)][0])}")
    return np.ascontiguousarray(images.transpose(3, 2, 0, 1)), labels % 10


def load_svhn(config: VisionConfig, data_dir: Path, seed: int) -> Dataset:
    """SVHN: 73,257 + 26,032 colour 32×32 house-number digits from ``<data_dir>/SVHN``."""

    def download(root: Path) -> None:
        for split in ("train", "test"):
            _torchvision_datasets().SVHN(root / "SVHN", split=split, download=True)

    folder = fetch_files(config, data_dir, "SVHN", ["train_32x32.mat", "test_32x32.mat"], download)
    n_classes = check_class_count(config, 10)
    splits = []
    for split in ("train", "test"):
        path = folder / f"{split}_32x32.mat"
        images, labels = read_svhn_mat(path)
        splits.append(Split(torch.from_numpy(images), to_labels(labels, n_classes, path)))
    return image_dataset(config, splits[0], splits[1], n_classes, channels=3)


# --- STL-10: raw binaries --------------------------------------------------------------------

_STL10_IMAGE_BYTES = 3 * 96 * 96


def read_stl10_images(path: Path) -> np.ndarray:
    """Images (N×3×96×96 uint8) from an STL-10 ``*_X.bin`` file.

    The file is headerless bytes, 3×96×96 per image: three colour planes, each stored
    column-major (MATLAB order), hence the swap of the last two axes.
    """
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _STL10_IMAGE_BYTES:
        raise DataError(f"{path}: {raw.size} bytes is not a whole number of 3×96×96 images")
    return np.ascontiguousarray(raw.reshape(-1, 3, 96, 96).transpose(0, 1, 3, 2))


def read_stl10_labels(path: Path, n_images: int) -> torch.Tensor:
    """Labels 0..9 from an STL-10 ``*_y.bin`` file: one byte 1..10 per image."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != n_images:
        raise DataError(f"{path}: {len(labels)} labels for {n_images} images")
    return to_labels(labels, 10, path)


def load_stl10(config: STL10Config, data_dir: Path, seed: int) -> Dataset:
    """STL-10: 5,000 + 8,000 labelled colour 96×96 images (+ 100,000 unlabelled on request)."""
    required = ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"]
    if config.unlabeled:
        required.append("unlabeled_X.bin")
    folder = fetch_files(
        config,
        data_dir,
        "stl10_binary",
        required,
        lambda root: _torchvision_datasets().STL10(root, split="train", download=True),
    )
    n_classes = check_class_count(config, 10)
    splits = []
    for split in ("train", "test"):
        images = read_stl10_images(folder / f"{split}_X.bin")
        splits.append(Split(torch.from_numpy(images), read_stl10_labels(folder / f"{split}_y.bin", len(images))))
    train, test = splits
    if config.unlabeled:
        unlabeled = torch.from_numpy(read_stl10_images(folder / "unlabeled_X.bin"))
        train = Split(torch.cat([train.x, unlabeled]))
    return image_dataset(config, train, test, n_classes, channels=3)
