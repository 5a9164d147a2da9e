"""PNG figures written into a session's ``plots/`` folder.

matplotlib is imported on the first plot, not at start-up, and always with the file-only Agg
back end: servers and clusters have no display.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from deepclust_cli.engine.atomic import atomic_write
from deepclust_cli.ops.cluster_count import gap_ratios
from deepclust_cli.ops.metrics import cluster_to_class, contingency

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


MAX_SCATTER_POINTS = 20_000


def project_2d(points: Any, groups: Any = None, max_points: int = MAX_SCATTER_POINTS, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subsample of at most ``max_points`` rows and their 2-D coordinates: the points
    themselves when 2-D; when wider, the plane in which the ``groups`` (cluster labels) lie
    farthest apart, or the two leading principal components without groups. Returns (coordinates, rows).

    The cluster plane is spanned by the two leading principal directions of the size-weighted
    group means (the between-cluster scatter). Principal components show nothing in a whitened
    embedding — SpectralNet's outputs have identity covariance, so every direction has the same
    variance — while the cluster plane shows how the clusters separate. With fewer than three
    groups it has no second direction, and the principal components are used.
    """
    import torch

    points = torch.as_tensor(points).detach().float().cpu()
    rows = torch.arange(len(points))
    if len(points) > max_points:
        rows = torch.randperm(len(points), generator=torch.Generator().manual_seed(seed))[:max_points].sort().values
    sample = points[rows].reshape(len(rows), -1)
    if sample.shape[1] == 1:
        return torch.cat([sample, torch.zeros_like(sample)], dim=1).numpy(), rows.numpy()
    if sample.shape[1] == 2:
        return sample.numpy(), rows.numpy()
    centered = sample - sample.mean(dim=0)
    spread = centered
    if groups is not None:
        _, codes = np.unique(np.asarray(groups)[rows.numpy()], return_inverse=True)
        if codes.max(initial=0) >= 2:
            codes = torch.as_tensor(codes)
            sizes = torch.bincount(codes).float()
            means = torch.zeros(len(sizes), centered.shape[1]).index_add_(0, codes, centered) / sizes.unsqueeze(1)
            spread = means * sizes.sqrt().unsqueeze(1)
    _, _, directions = torch.linalg.svd(spread, full_matrices=False)
    return (centered @ directions[:2].T).numpy(), rows.numpy()


def matched_colours(clusters: np.ndarray, classes: Optional[np.ndarray]) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Colour numbers of each sample's cluster and class such that a cluster takes the colour of
    the class it is matched to (the Hungarian matching behind ACC; a surplus cluster its majority
    class's), so the two panels of :func:`embedding` compare at a glance."""
    cluster_values, cluster_codes = np.unique(clusters, return_inverse=True)
    if classes is None:
        return cluster_codes, None
    class_values, class_codes = np.unique(classes, return_inverse=True)
    to_class = cluster_to_class(classes, clusters)
    colour_of_cluster = np.searchsorted(class_values, [to_class[value] for value in cluster_values.tolist()])
    return colour_of_cluster[cluster_codes], class_codes


def embedding(points: Any, clusters: Any, classes: Any, path: Path, title: str = "") -> None:
    """Scatter of the embedding (in the clusters' plane when wider than 2-D, see ``project_2d``)
    coloured by cluster, and beside it by class, a cluster in the colour of its matched class."""
    coordinates, rows = project_2d(points, clusters)
    cluster_colours, class_colours = matched_colours(np.asarray(clusters)[rows], None if classes is None else np.asarray(classes)[rows])
    panels = [("clusters (matched to classes)" if classes is not None else "clusters", cluster_colours)]
    if class_colours is not None:
        panels.append(("classes", class_colours))
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False, layout="constrained")
    for axis, (label, colours) in zip(axes[0], panels):
        _scatter(axis, coordinates, colours, f"coloured by {label}", numbered=True)
    figure.suptitle(_wrapped(title + ("" if len(rows) == len(np.asarray(clusters)) else f" ({len(rows)} shown)"), len(panels)))
    save(figure, path)


def embeddings_side_by_side(panels: list[tuple[str, Any, Any, Any]], path: Path, title: str = "") -> None:
    """Several embeddings of the same samples, one panel each, coloured alike (by class): each
    ``(panel title, points, colours, clusters)`` is projected to 2-D on its own, in its clusters'
    plane (``project_2d``), on the same sampled rows."""
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5.5 * len(panels), 5), squeeze=False, layout="constrained")
    for axis, (label, points, colours, clusters) in zip(axes[0], panels):
        coordinates, rows = project_2d(points, clusters)
        _scatter(axis, coordinates, np.asarray(colours)[rows], label)
    figure.suptitle(_wrapped(title, len(panels)))
    save(figure, path)


def _wrapped(title: str, panels: int) -> str:
    """A figure title broken into lines that fit the figure's width (about 60 characters a panel)."""
    import textwrap

    return "\n".join(textwrap.wrap(title, width=60 * panels)) if title else ""


def _scatter(axis: Any, coordinates: np.ndarray, colours: np.ndarray, title: str, numbered: bool = False) -> None:
    """``colours``: any values (one colour per distinct value), or with ``numbered`` colour numbers
    into the 20-colour palette, so that two panels can share colours."""
    codes = np.asarray(colours) if numbered else np.unique(colours, return_inverse=True)[1]
    size = max(0.5, min(8.0, 4000 / len(coordinates)))
    axis.scatter(coordinates[:, 0], coordinates[:, 1], c=pyplot().get_cmap("tab20")(codes % 20), s=size, linewidths=0, rasterized=True)
    axis.set_title(title)
    axis.set_xticks([])
    axis.set_yticks([])


def training_curves(histories: dict[str, dict[str, list[list[float]]]], path: Path) -> None:
    """One panel per training stage: training and validation loss per epoch, the objective's terms
    (any other history key, e.g. SpectralNetAE's reconstruction) dashed, learning rate on a second
    axis. A history maps each value to its ``[epoch, value]`` pairs, as the engine's loop keeps it."""
    stages = [(name, {key: np.asarray(pairs, dtype=float).reshape(-1, 2).T for key, pairs in history.items()}) for name, history in histories.items() if history.get("loss")]
    if not stages:
        return
    figure, axes = pyplot().subplots(1, len(stages), figsize=(5 * len(stages), 3.8), squeeze=False)
    for axis, (name, series) in zip(axes[0], stages):
        axis.plot(*series["loss"], label="train")
        if "valid" in series:
            axis.plot(*series["valid"], label="validation")
        terms = {key: pairs for key, pairs in series.items() if key not in ("loss", "valid", "lr")}
        for key, (epochs, values) in terms.items():
            axis.plot(epochs, values, linestyle="--", label=key)
        losses = np.concatenate([values for key, (_, values) in series.items() if key != "lr"])
        if losses.min() > 0:
            axis.set_yscale("log")
        axis.set_xlabel("epoch")
        axis.set_ylabel("loss")
        axis.set_title(name)
        if "lr" in series:
            rate = axis.twinx()
            rate.plot(*series["lr"], color="grey", linestyle=":", label="lr")
            rate.set_yscale("log")
            rate.set_ylabel("learning rate")
        axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    save(figure, path)


def round_curves(history: dict[str, list[list[float]]], epochs_per_round: int, path: Path) -> None:
    """A curriculum's progress (AND): loss per epoch, held-out metrics (knn_acc_bank, acc) per evaluation,
    and the anchors' neighborhood consistency per round; dotted lines mark where rounds start."""
    panels = [
        ("loss", ["loss"]),
        ("held-out accuracy", [key for key in ("knn_acc_bank", "knn_acc", "acc", "nmi") if key in history]),
        ("anchor neighborhood consistency", ["anchor_consistency"] if "anchor_consistency" in history else []),
    ]
    panels = [(title, keys) for title, keys in panels if keys and all(history.get(key) for key in keys)]
    if not panels:
        return
    last_step = max(step for series in history.values() for step, _ in series)
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, (title, keys) in zip(axes[0], panels):
        for key in keys:
            steps, values = np.asarray(history[key], dtype=float).T
            axis.plot(steps, values, marker="o" if len(steps) < 30 else None, markersize=3, label=key)
        for start in range(epochs_per_round, int(last_step), epochs_per_round):
            axis.axvline(start, color="grey", linestyle=":", linewidth=0.8)
        axis.set_xlabel("epoch (all rounds)")
        axis.set_title(title)
        if len(keys) > 1:
            axis.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)


def frames_to_gif(frames: list[Path], path: Path, seconds_per_frame: float = 0.6) -> None:
    """PNG frames (in order) as one looping animated GIF; nothing when there are no frames."""
    if not frames:
        return
    from PIL import Image

    images = [Image.open(frame).convert("RGB") for frame in frames]
    size = images[0].size
    images = [image if image.size == size else image.resize(size) for image in images]
    atomic_write(
        path,
        lambda f: images[0].save(f, format="GIF", save_all=True, append_images=images[1:], duration=int(seconds_per_frame * 1000), loop=0),
    )


def partition(cells: np.ndarray, extent: tuple[float, float, float, float], outlines: np.ndarray, path: Path, title: str = "") -> None:
    """A plane partition (``cells``: grid of region ids, rows along y) in shuffled colours, with
    the objects' outlines (N × m × 2 polylines) drawn over it."""
    from matplotlib.collections import LineCollection

    _, codes = np.unique(cells, return_inverse=True)
    shuffled = np.random.default_rng(0).permutation(codes.max() + 1)[codes].reshape(cells.shape)
    figure, axes = pyplot().subplots(figsize=(8, 8))
    axes.imshow(shuffled, origin="lower", extent=extent, cmap="tab20", interpolation="nearest", alpha=0.55)
    axes.add_collection(LineCollection(outlines, colors="black", linewidths=0.4))
    axes.set_xlim(extent[0], extent[1])
    axes.set_ylim(extent[2], extent[3])
    axes.set_aspect("equal")
    axes.set_title(title)
    save(figure, path)


def eigengap(eigenvalues: np.ndarray, estimate: int, search_range: tuple[int, int], path: Path) -> None:
    """The smallest eigenvalues of the normalized Laplacian (left) and the gap ratios
    ``λ_{K+1} / λ_K`` the estimate maximizes over ``search_range`` (right)."""
    values = np.asarray(eigenvalues, dtype=float)
    index = np.arange(1, len(values) + 1)
    figure, (spectrum, gaps) = pyplot().subplots(1, 2, figsize=(10, 3.8))
    spectrum.plot(index, values, marker="o")
    spectrum.axvline(estimate + 0.5, color="tab:red", linestyle="--", label=f"estimate: {estimate}")
    spectrum.set_xlabel("index k")
    spectrum.set_ylabel("eigenvalue λ_k of L_sym")
    spectrum.legend(loc="upper left")
    low, high = search_range
    ratios = gap_ratios(values, low, high)
    gaps.bar(np.arange(low, high + 1), ratios, color=["tab:red" if k == estimate else "tab:blue" for k in range(low, high + 1)])
    gaps.set_yscale("log")
    gaps.set_xlabel("number of clusters K")
    gaps.set_ylabel("λ_{K+1} / λ_K")
    figure.suptitle("n_clusters=auto: the eigengap of the normalized Laplacian")
    figure.tight_layout()
    save(figure, path)


def cluster_gallery(images: np.ndarray, clusters: list[int], sizes: list[int], path: Path, title: str = "") -> None:
    """One row per cluster: its images nearest the cluster's center, left to right (``images``:
    ``rows × per_row × H × W × C`` uint8, blank where a cluster has fewer), labelled with the
    cluster's number and size."""
    rows, per_row = images.shape[:2]
    figure, axes = pyplot().subplots(rows, per_row, figsize=(per_row * 0.9 + 1.2, rows * 0.9 + 0.6), squeeze=False)
    for row in range(rows):
        for column in range(per_row):
            axis = axes[row][column]
            picture = images[row, column]
            axis.imshow(picture.squeeze(-1) if picture.shape[-1] == 1 else picture, cmap="gray" if picture.shape[-1] == 1 else None)
            axis.set_xticks([])
            axis.set_yticks([])
            for spine in axis.spines.values():
                spine.set_visible(False)
        axes[row][0].set_ylabel(f"{clusters[row]}\n({sizes[row]})", rotation=0, ha="right", va="center", fontsize=8)
    figure.suptitle(title or "the images nearest each cluster's center")
    figure.tight_layout()
    save(figure, path)


DECADES_FOR_LOG = 1  # a parameter whose nonzero magnitudes span this many decades gets a log axis


def axis_scale(values: list[float]) -> tuple[str, dict[str, float]]:
    """The x scale of a swept parameter: ``log`` when its nonzero magnitudes span DECADES_FOR_LOG
    decades, ``symlog`` (linear up to the smallest nonzero magnitude) when they also hold 0 or a
    negative value, else ``linear``; with the keyword arguments of ``Axes.set_xscale``."""
    nonzero = [abs(v) for v in values if v != 0]
    if len(nonzero) < 2 or max(nonzero) < min(nonzero) * 10**DECADES_FOR_LOG:
        return "linear", {}
    if all(v > 0 for v in values):
        return "log", {}
    return "symlog", {"linthresh": min(nonzero)}


def metric_against_parameters(panels: dict[str, dict[str, list[tuple[float, list[float]]]]], metric: str, path: Path, title: str = "") -> None:
    """One panel per swept parameter: ``metric`` (mean ± sample std over each point's values, the
    seeds of one configuration) against the parameter's value, one line per series — the
    configurations that agree in every other parameter. ``panels``: parameter → series label →
    ``(value, metric values)`` points."""
    figure, axes = pyplot().subplots(1, len(panels), figsize=(5 * len(panels), 3.8), squeeze=False)
    for axis, (parameter, series) in zip(axes[0], panels.items()):
        for label, points in series.items():
            points = sorted(points)
            xs = [x for x, _ in points]
            means = [float(np.mean(values)) for _, values in points]
            stds = [float(np.std(values, ddof=1)) if len(values) > 1 else 0.0 for _, values in points]
            line = len(set(xs)) == len(xs) > 1  # a cloud of trials that share values is no curve
            axis.errorbar(xs, means, yerr=stds, marker="o", markersize=4, capsize=3, label=label or None, linestyle="-" if line else "none")
        scale, options = axis_scale([x for points in series.values() for x, _ in points])
        axis.set_xscale(scale, **options)
        axis.xaxis.set_minor_formatter(pyplot().NullFormatter())  # labelled minor ticks of a short log axis overlap
        axis.set_xlabel(parameter)
        axis.set_ylabel(metric)
        if any(series):  # labelled: other parameters vary too
            axis.legend(fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    save(figure, path)


def optimization_history(values: list[float], lowest_first: bool, metric: str, path: Path) -> None:
    """An optimization's trials in order (NaN: a trial that failed, not drawn) and the best value so far."""
    trials = np.arange(1, len(values) + 1)
    scores = np.asarray(values, dtype=float)
    best = (np.fmin if lowest_first else np.fmax).accumulate(scores)
    figure, axis = pyplot().subplots(figsize=(6, 3.8))
    axis.plot(trials, scores, marker="o", linestyle="none", label="trial")
    axis.plot(trials, best, color="tab:red", drawstyle="steps-post", label="best so far")
    axis.set_xlabel("trial")
    axis.set_ylabel(metric)
    axis.set_title(f"optimization history: {metric}, {'lowest' if lowest_first else 'highest'} is best")
    axis.legend(fontsize=8)
    figure.tight_layout()
    save(figure, path)
