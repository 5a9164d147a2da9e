"""The user's own feature vectors: a ``.npy`` array (memory-mapped), an ``.npz`` archive or a
``.csv`` table (header optional, its names kept), with optional labels.

Labels may be any values (class names, integers); they are numbered 0..K-1 in sorted order
(numerically when they are all numbers, so ``10`` comes after ``9``), and test labels use the
train labels' numbering. Relative paths are read from the current directory.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from deepclust_cli.data.base import Dataset, Split, sample_index
from deepclust_cli.data.config import FeaturesConfig
from deepclust_cli.data.vision import check_class_count
from deepclust_cli.errors import DataError


def existing_file(path_text: str, what: str) -> Path:
    path = Path(path_text).expanduser()
    if not path.is_file():
        raise DataError(f"{what} file not found: {path}")
    return path


def load_npy(path: Path, mmap: bool = False) -> np.ndarray:
    """An ``.npy`` array; with ``mmap``, memory-mapped copy-on-write, so a large file is paged in
    as it is read rather than loaded whole."""
    try:
        array = np.load(path, allow_pickle=False, mmap_mode="c" if mmap else None)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(
            f"{path}: not a readable .npy array without pickled objects ({' '.join(str(error).split())})"
        ) from error
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: holds an .npz archive, not a single .npy array")
    return array


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _label_column_index(path: Path, first_row: list[str], label_column: str) -> tuple[int, bool]:
    """(column index, whether the first row is a header) for a CSV with labels in ``label_column``."""
    if label_column in first_row:
        return first_row.index(label_column), True
    try:
        index = int(label_column)
    except ValueError:
        raise DataError(f"{path}: no column named '{label_column}' in the header {first_row}") from None
    if not -len(first_row) <= index < len(first_row):
        raise DataError(f"{path}: label_column {index} is outside the {len(first_row)} columns")
    index %= len(first_row)
    features = first_row[:index] + first_row[index + 1 :]
    return index, not all(_is_number(cell) for cell in features)


def _read_csv(path: Path, delimiter: str, label_column: Optional[str]) -> tuple[np.ndarray, Optional[np.ndarray], Optional[list[str]]]:
    """Features (and the label column's values as text) from a CSV whose header is optional.

    The first row is a header when one of its feature cells is not a number.
    """
    with path.open(newline="", encoding="utf-8-sig") as file:
        first_row = next(csv.reader(file, delimiter=delimiter), None)
    if not first_row:
        raise DataError(f"{path}: empty CSV file")
    if label_column is None:
        label_index, has_header = None, not all(_is_number(cell) for cell in first_row)
    else:
        label_index, has_header = _label_column_index(path, first_row, label_column)
    feature_columns = [column for column in range(len(first_row)) if column != label_index]
    if not feature_columns:
        raise DataError(f"{path}: no feature columns besides the label column")
    csv_format = dict(delimiter=delimiter, skiprows=int(has_header), quotechar='"', encoding="utf-8-sig")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # an empty table is reported below instead
            features = np.loadtxt(path, usecols=feature_columns, dtype=np.float32, ndmin=2, **csv_format)
            labels = None
            if label_index is not None:
                labels = np.loadtxt(path, usecols=[label_index], dtype=str, ndmin=1, **csv_format)
    except ValueError as error:
        raise DataError(f"{path}: {' '.join(str(error).split())}") from error
    if len(features) == 0:
        raise DataError(f"{path}: no data rows")
    names = [first_row[column].strip() for column in feature_columns] if has_header else None
    return features, labels, names


NPZ_FEATURE_KEYS = ("x", "X", "data", "features")


def _read_npz(path: Path, key: Optional[str], label_column: Optional[str]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """The features array of an ``.npz`` (``key``, else its only array or one named as in
    ``NPZ_FEATURE_KEYS``), and the array ``label_column`` names."""
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: not a readable .npz archive ({' '.join(str(error).split())})") from error
    with archive:
        names = list(archive.files)
        name = key
        if name is None:
            others = [n for n in names if n != label_column]
            name = others[0] if len(others) == 1 else next((n for n in NPZ_FEATURE_KEYS if n in names), None)
        if name not in names:
            raise DataError(f"{path}: holds arrays {names}; name the features with dataset.key=<one of them>")
        if label_column is not None and label_column not in names:
            raise DataError(f"{path}: no array named '{label_column}' for the labels; it holds {names}")
        features = archive[name]
        labels = None if label_column is None else archive[label_column]
    if labels is not None and labels.ndim != 1:
        raise DataError(f"{path}: labels '{label_column}' must be a 1-D array, got shape {labels.shape}")
    return features, labels


def read_features(
    path: Path, delimiter: str, label_column: Optional[str], key: Optional[str] = None
) -> tuple[np.ndarray, Optional[np.ndarray], Optional[list[str]]]:
    """A samples × features matrix of numbers, the label column's values when one is named, and
    the feature names of a CSV header (None without one). An ``.npy`` is memory-mapped in its own
    dtype: :func:`load_features` reads (and converts to float32) only the rows it keeps."""
    if path.suffix == ".csv":
        return _read_csv(path, delimiter, label_column)
    if path.suffix == ".npz":
        array, labels = _read_npz(path, key, label_column)
    else:
        array, labels = load_npy(path, mmap=True), None
    if array.ndim != 2:
        raise DataError(f"{path}: features must be a 2-D array (samples × features), got shape {array.shape}")
    if array.dtype.kind not in "buif":
        raise DataError(f"{path}: features must be numbers, got dtype {array.dtype}")
    if labels is not None and len(labels) != len(array):
        raise DataError(f"{path}: {len(labels)} labels for {len(array)} rows")
    return array, labels, None


def read_labels(path: Path, delimiter: str) -> np.ndarray:
    """Labels from a 1-D ``.npy`` array, or a ``.csv``/``.txt`` file holding one label per row."""
    if path.suffix == ".npy":
        labels = load_npy(path)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels[:, 0]
        if labels.ndim != 1:
            raise DataError(f"{path}: labels must be a 1-D array, got shape {labels.shape}")
        return labels
    with path.open(newline="", encoding="utf-8-sig") as file:
        lines = [line for line in file.read().splitlines() if line.strip()]
    if path.suffix == ".txt":
        return np.asarray([line.strip() for line in lines], dtype=str)
    rows = list(csv.reader(lines, delimiter=delimiter))
    widths = {len(row) for row in rows}
    if widths - {1}:
        raise DataError(f"{path}: a labels file holds one label per row, found rows of {max(widths)} columns")
    return np.asarray([row[0].strip() for row in rows], dtype=str)


def _typed(labels: np.ndarray) -> np.ndarray:
    """Labels written as text become numbers when they all are, so that they sort numerically."""
    if labels.dtype.kind not in "US":
        return labels
    labels = np.char.strip(labels.astype(str))
    for dtype in (np.int64, np.float64):
        try:
            return labels.astype(dtype)
        except ValueError:
            continue
    return labels


def number_labels(
    train: np.ndarray, test: Optional[np.ndarray], train_path: Path, test_path: Optional[Path]
) -> tuple[torch.Tensor, Optional[torch.Tensor], np.ndarray]:
    """(train ids, test ids, classes): labels numbered 0..K-1 in the sorted order of the train labels."""
    classes, train_ids = np.unique(_typed(train), return_inverse=True)
    if test is None:
        return torch.from_numpy(train_ids.astype(np.int64)), None, classes
    test = _typed(test)
    if (test.dtype.kind in "US") != (classes.dtype.kind in "US"):
        raise DataError(f"{test_path}: label {test[0].item()!r} does not occur in the training labels of {train_path}")
    positions = np.searchsorted(classes, test).clip(max=len(classes) - 1)
    unknown = classes[positions] != test
    if unknown.any():
        raise DataError(
            f"{test_path}: label {test[unknown][0].item()!r} does not occur in the training labels of {train_path}"
        )
    return torch.from_numpy(train_ids.astype(np.int64)), torch.from_numpy(positions.astype(np.int64)), classes


def _labels_for(
    features: np.ndarray, features_path: Path, labels_file: Optional[str], column: Optional[np.ndarray], delimiter: str
) -> tuple[Optional[np.ndarray], Path]:
    """Raw labels for ``features`` (from a labels file or the label column) and where they came from."""
    if labels_file is None:
        return column, features_path
    labels_path = existing_file(labels_file, "labels")
    labels = read_labels(labels_path, delimiter)
    if len(labels) != len(features):
        raise DataError(f"{labels_path}: {len(labels)} labels for the {len(features)} rows of {features_path}")
    return labels, labels_path


def load_features(config: FeaturesConfig, data_dir: Path, seed: int) -> Dataset:
    """Feature vectors from the user's files; ``n_classes`` from the labels when there are any."""
    train_path = existing_file(config.path, "features")
    train_x, train_column, feature_names = read_features(train_path, config.delimiter, config.label_column, config.key)
    train_labels, train_labels_path = _labels_for(train_x, train_path, config.labels, train_column, config.delimiter)
    test_x = test_labels = test_labels_path = None
    if config.test_path is not None:
        test_path = existing_file(config.test_path, "test features")
        test_x, test_column, _ = read_features(test_path, config.delimiter, config.label_column, config.key)
        if test_x.shape[1] != train_x.shape[1]:
            raise DataError(f"{test_path}: {test_x.shape[1]} features per row, but {train_path} has {train_x.shape[1]}")
        test_labels, test_labels_path = _labels_for(
            test_x, test_path, config.test_labels, test_column, config.delimiter
        )

    train_y = test_y = class_names = None
    n_classes = config.n_classes
    if train_labels is not None:
        train_y, test_y, classes = number_labels(train_labels, test_labels, train_labels_path, test_labels_path)
        n_classes = check_class_count(config, len(classes))
        class_names = [str(name) for name in classes.tolist()]
    generator = torch.Generator().manual_seed(seed)  # the rows load_dataset's subsample would keep, drawn here
    train = _kept_rows(train_x, train_y, config.max_samples, generator)
    test = None if test_x is None else _kept_rows(test_x, test_y, config.max_samples, generator)
    return Dataset(config.name, train, test, n_classes=n_classes, kind="vectors", class_names=class_names, feature_names=feature_names)


def _kept_rows(x: np.ndarray, y: Optional[torch.Tensor], max_samples: Optional[int], generator: torch.Generator) -> Split:
    """A float32 split of ``x`` cut to ``max_samples`` seeded rows before it is converted, so that
    a memory-mapped file larger than memory is read only at the rows kept."""
    index = None if max_samples is None else sample_index(len(x), max_samples, generator)
    if index is not None:
        x, y = x[index.numpy()], None if y is None else y[index]
    return Split(torch.from_numpy(x if x.dtype == np.float32 else x.astype(np.float32)), y, rows=index)
