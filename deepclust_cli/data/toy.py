"""Datasets that need no files: generated 2-D shapes and scikit-learn's bundled digits.

The shapes are drawn here with NumPy (the constructions of scikit-learn's ``make_moons``,
``make_circles`` and ``make_blobs``): importing scikit-learn for them cost a second of every run.
Generation is seeded by ``dataset.seed`` (not the run's seed), so sweeping the run's ``seed``
measures the method's variance on fixed data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.spatial.distance import pdist

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import BlobsConfig, CirclesConfig, DatasetConfig, GeneratedConfig
from deepclust_cli.errors import DataError


def _split_generated(
    name: str, config: GeneratedConfig, make: Callable[[int, np.random.Generator], tuple], n_classes: int
) -> Dataset:
    """Draw ``n_samples + n_test`` shuffled points with ``make(n, rng)``, add Gaussian ``noise``,
    z-score them with the first ``n_samples``' statistics when ``standardize``, split."""
    rng = np.random.default_rng(config.seed)
    x, y = make(config.n_samples + config.n_test, rng)
    order = rng.permutation(len(x))
    x = x[order] + rng.normal(scale=config.noise, size=x.shape) if config.noise else x[order]
    if config.standardize:  # as scikit-learn's StandardScaler fitted on the fitted points
        fitted = x[: config.n_samples]
        x = (x - fitted.mean(axis=0)) / np.where(fitted.std(axis=0) > 0, fitted.std(axis=0), 1.0)
    x = torch.as_tensor(x, dtype=torch.float32)
    y = torch.as_tensor(y[order], dtype=torch.int64)
    train = Split(x[: config.n_samples], y[: config.n_samples])
    test = Split(x[config.n_samples :], y[config.n_samples :]) if config.n_test else None
    return Dataset(name, train, test, n_classes=n_classes)


def _two_halves(n: int) -> tuple[int, int]:
    return n // 2, n - n // 2


def load_twomoons(config: GeneratedConfig, data_dir: Path, seed: int) -> Dataset:
    """Two interleaved half circles: (cos t, sin t) and (1 − cos t, ½ − sin t), t evenly in [0, π]."""

    def make(n: int, rng: np.random.Generator) -> tuple:
        outer, inner = _two_halves(n)
        t_outer, t_inner = np.linspace(0, np.pi, outer), np.linspace(0, np.pi, inner)
        x = np.concatenate([np.c_[np.cos(t_outer), np.sin(t_outer)], np.c_[1 - np.cos(t_inner), 0.5 - np.sin(t_inner)]])
        return x, np.repeat([0, 1], [outer, inner])

    return _split_generated("twomoons", config, make, 2)


def load_circles(config: CirclesConfig, data_dir: Path, seed: int) -> Dataset:
    """Two concentric circles, radii 1 and ``factor``, points at even angles in [0, 2π)."""

    def make(n: int, rng: np.random.Generator) -> tuple:
        outer, inner = _two_halves(n)
        t_outer = np.linspace(0, 2 * np.pi, outer, endpoint=False)
        t_inner = np.linspace(0, 2 * np.pi, inner, endpoint=False)
        x = np.concatenate([np.c_[np.cos(t_outer), np.sin(t_outer)], config.factor * np.c_[np.cos(t_inner), np.sin(t_inner)]])
        return x, np.repeat([0, 1], [outer, inner])

    return _split_generated("circles", config, make, 2)


def blob_centers(config: BlobsConfig, attempts: int = 1000) -> np.ndarray:
    """Centers uniform in the box, redrawn (seeded) until every pair is ``min_separation``
    standard deviations apart, so the clusters are separable as the config promises."""
    rng = np.random.default_rng(config.seed)
    needed = config.min_separation * config.cluster_std
    for _ in range(attempts):
        centers = rng.uniform(-config.center_box, config.center_box, size=(config.n_classes, config.n_features))
        if config.n_classes == 1 or pdist(centers).min() >= needed:
            return centers
    raise DataError(
        f"dataset 'blobs': cannot place {config.n_classes} centers {needed:g} apart inside ±{config.center_box:g}; "
        "raise dataset.center_box or lower dataset.min_separation"
    )


def load_blobs(config: BlobsConfig, data_dir: Path, seed: int) -> Dataset:
    """Gaussians around well-separated centers, equally many points each (the first centers take
    the remainder): isotropic with standard deviation ``cluster_std``, or, with ``anisotropy``
    a > 1, each with its own random rotation ``R`` and axis scales ``a^u`` (``u`` uniform in
    [−½, ½] per axis): ``x = center + (z ⊙ scales) Rᵀ``, ``z`` ~ N(0, cluster_std²)."""
    centers = blob_centers(config)

    def make(n: int, rng: np.random.Generator) -> tuple:
        sizes = np.full(config.n_classes, n // config.n_classes)
        sizes[: n % config.n_classes] += 1
        labels = np.repeat(np.arange(config.n_classes), sizes)
        spread = rng.normal(scale=config.cluster_std, size=(n, config.n_features))
        if config.anisotropy > 1:
            _stretch(spread, sizes, config)
        return centers[labels] + spread, labels

    return _split_generated("blobs", config, make, config.n_classes)


def _stretch(spread: np.ndarray, sizes: np.ndarray, config: BlobsConfig) -> None:
    """Give each component's rows (consecutive, ``sizes`` of them) its axis scales and rotation,
    in place, from a generator of their own: the isotropic draw stays as it was."""
    rng = np.random.default_rng([config.seed, 1])
    start = 0
    for size in sizes:
        scales = config.anisotropy ** rng.uniform(-0.5, 0.5, size=config.n_features)
        rotation, _ = np.linalg.qr(rng.standard_normal((config.n_features, config.n_features)))
        block = spread[start : start + size]
        block[:] = (block * scales) @ rotation.T
        start += size


def load_digits(config: DatasetConfig, data_dir: Path, seed: int) -> Dataset:
    """scikit-learn's 1,797 8×8 digits as 64-d vectors scaled from [0, 16] to [0, 1]."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.data, dtype=torch.float32) / 16.0
    return Dataset("digits", Split(x, torch.as_tensor(bunch.target, dtype=torch.int64)), n_classes=10)
