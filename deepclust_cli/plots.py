"""PNG figures written into a session's ``plots/`` folder.

matplotlib is imported on the first plot, not at start-up, and always with the file-only Agg
back end: servers and clusters have no display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from deepclust_cli.engine.atomic import atomic_write
from deepclust_cli.metrics import cluster_to_class, contingency

ANNOTATE_UP_TO = 20  # cells get their counts printed while the table is at most this wide


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot

    return matplotlib.pyplot


def save(figure: Any, path: Path) -> None:
    atomic_write(path, lambda f: figure.savefig(f, format="png", dpi=120, bbox_inches="tight"))
    pyplot().close(figure)


def confusion_matrix(y_true: Any, y_pred: Any, path: Path, title: str = "") -> None:
    """Classes (rows) against clusters (columns), columns ordered by the Hungarian matching so a
    perfect clustering is diagonal; colour is the share of each class, text the count."""
    table, classes, clusters = contingency(y_true, y_pred)
    mapping = cluster_to_class(y_true, y_pred)
    class_rank = {value: rank for rank, value in enumerate(classes.tolist())}
    order = sorted(
        range(len(clusters)),
        key=lambda j: (class_rank.get(mapping.get(clusters[j].item()), len(classes)), j),
    )
    table = table[:, order]
    shares = table / np.maximum(table.sum(axis=1, keepdims=True), 1)
    size = min(max(4.0, 0.45 * max(table.shape) + 2), 16.0)
    figure, axes = pyplot().subplots(figsize=(size * 1.1, size))
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1, aspect="auto", interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of class")
    if max(table.shape) <= ANNOTATE_UP_TO:
        for (row, col), count in np.ndenumerate(table):
            if count:
                colour = "white" if shares[row, col] > 0.5 else "black"
                axes.text(col, row, str(count), ha="center", va="center", fontsize=8, color=colour)
        axes.set_xticks(range(table.shape[1]), [str(v) for v in clusters[order].tolist()])
        axes.set_yticks(range(table.shape[0]), [str(v) for v in classes.tolist()])
    axes.set_xlabel("cluster (ordered by matched class)")
    axes.set_ylabel("class")
    axes.set_title(title)
    save(figure, path)
