"""Per-sample outputs of a session: which cluster each sample is in, and where.

``predictions/<split>.csv`` has one row per sample in the split's order: the sample's identity
(``split`` when a train and a test split were joined, ``index`` — its row in the input file or its
position in the dataset — and ``path`` for images read from files), ``cluster``, ``confidence``
where the method has soft assignments, and ``label`` when the data has labels (class names where
the dataset has them). ``<split>_embedding.npy`` holds the float32 space the clusters were assigned
in, rows in the same order; ``centers.npy`` the cluster centers in that space. Rows are written in
chunks, so a million samples cost bounded memory beyond the arrays themselves.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from deepclust_cli.engine.atomic import atomic_write

CHUNK_ROWS = 65_536


def write_table(path: Path, columns: dict[str, np.ndarray], float_format: str = "%.6g") -> None:
    """A CSV with a header row, ``columns`` written side by side in chunks of ``CHUNK_ROWS`` rows."""
    names = list(columns)
    length = len(next(iter(columns.values())))

    def cells(values: np.ndarray) -> list:
        return (np.char.mod(float_format, values) if values.dtype.kind == "f" else values).tolist()

    def write(file) -> None:
        text = io.TextIOWrapper(file, encoding="utf-8", newline="")
        writer = csv.writer(text)
        writer.writerow(names)
        for start in range(0, length, CHUNK_ROWS):
            chunk = [cells(np.asarray(columns[name][start : start + CHUNK_ROWS])) for name in names]
            writer.writerows(zip(*chunk))
        text.flush()
        text.detach()

    atomic_write(path, write)


def write_array(path: Path, array: torch.Tensor | np.ndarray) -> None:
    """``array`` as a float32 ``.npy``, copied ``CHUNK_ROWS`` rows at a time."""
    array = array if isinstance(array, torch.Tensor) else torch.as_tensor(np.asarray(array))

    def write(file) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": tuple(array.shape)}
        np.lib.format.write_array_header_1_0(file, header)
        for start in range(0, len(array), CHUNK_ROWS):
            file.write(array[start : start + CHUNK_ROWS].detach().to("cpu", torch.float32).contiguous().numpy().tobytes())

    atomic_write(path, write)


def label_column(labels: torch.Tensor, class_names: Optional[Sequence[str]]) -> np.ndarray:
    values = labels.cpu().numpy()
    return np.asarray(class_names, dtype=object)[values] if class_names else values


def write_predictions(
    folder: Path,
    split_name: str,
    identity: dict[str, np.ndarray],
    clusters: np.ndarray,
    *,
    confidence: Optional[np.ndarray] = None,
    labels: Optional[torch.Tensor] = None,
    class_names: Optional[Sequence[str]] = None,
    embedding: Optional[torch.Tensor] = None,
    centers: Optional[torch.Tensor] = None,
) -> Path:
    """Write ``<split_name>.csv`` (and the embedding and centers when given) into ``folder``;
    returns the CSV's path."""
    columns = dict(identity)
    columns["cluster"] = np.asarray(clusters)
    if confidence is not None:
        columns["confidence"] = np.asarray(confidence, dtype=np.float64)
    if labels is not None:
        columns["label"] = label_column(labels, class_names)
    path = folder / f"{split_name}.csv"
    write_table(path, columns)
    if embedding is not None:
        write_array(folder / f"{split_name}_embedding.npy", embedding)
    if centers is not None:
        write_array(folder / "centers.npy", centers)
    return path
