"""Generated 2-D shapes and scikit-learn's digits: seeding, splits and validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import BlobsConfig, CirclesConfig, DatasetConfig, GeneratedConfig
from deepclust_cli.errors import ConfigError


def test_generation_is_seeded_by_the_dataset_seed_only(tmp_path: Path) -> None:
    first = load_dataset(GeneratedConfig(name="twomoons", n_samples=500), tmp_path, seed=0)
    again = load_dataset(GeneratedConfig(name="twomoons", n_samples=500), tmp_path, seed=7)
    other = load_dataset(GeneratedConfig(name="twomoons", n_samples=500, seed=1), tmp_path, seed=0)
    assert torch.equal(first.train.x, again.train.x) and torch.equal(first.train.y, again.train.y)
    assert not torch.equal(first.train.x, other.train.x)
    assert first.train.x.shape == (500, 2) and first.train.x.dtype == torch.float32
    assert first.n_classes == 2 and set(first.train.y.tolist()) == {0, 1}


def test_n_test_adds_a_held_out_split(tmp_path: Path) -> None:
    data = load_dataset(CirclesConfig(name="circles", n_samples=300, n_test=50), tmp_path)
    assert len(data.train) == 300 and len(data.test) == 50
    assert data.test.y.dtype == torch.int64
    no_test = load_dataset(CirclesConfig(name="circles", n_samples=300), tmp_path)
    assert no_test.test is None


def test_circles_radii_follow_factor(tmp_path: Path) -> None:
    data = load_dataset(CirclesConfig(name="circles", n_samples=400, noise=0.0, factor=0.3), tmp_path)
    radius = data.train.x.norm(dim=1)
    assert torch.allclose(radius[data.train.y == 0], torch.tensor(1.0), atol=1e-5)
    assert torch.allclose(radius[data.train.y == 1], torch.tensor(0.3), atol=1e-5)


def test_standardize_z_scores_with_the_fitted_points_statistics(tmp_path: Path) -> None:
    raw = load_dataset(GeneratedConfig(name="twomoons", n_samples=700, n_test=100, noise=0.075), tmp_path)
    data = load_dataset(GeneratedConfig(name="twomoons", n_samples=700, n_test=100, noise=0.075, standardize=True), tmp_path)
    assert torch.allclose(data.train.x.mean(dim=0), torch.zeros(2), atol=1e-5)
    assert torch.allclose(data.train.x.std(dim=0, unbiased=False), torch.ones(2), atol=1e-5)
    mean, std = raw.train.x.mean(dim=0), raw.train.x.std(dim=0, unbiased=False)
    assert torch.allclose(data.test.x, (raw.test.x - mean) / std, atol=1e-5)  # held-out points: the same transform
    assert torch.equal(data.train.y, raw.train.y)


def test_blobs_shape_and_classes(tmp_path: Path) -> None:
    data = load_dataset(BlobsConfig(name="blobs", n_samples=200, n_classes=4, n_features=3), tmp_path)
    assert data.train.x.shape == (200, 3) and data.n_classes == 4
    assert set(data.train.y.tolist()) == {0, 1, 2, 3}


def test_anisotropic_blobs_are_stretched_and_rotated_around_the_same_centers(tmp_path: Path) -> None:
    def first_cluster(anisotropy: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Its center, axis lengths and axis directions."""
        data = load_dataset(BlobsConfig(name="blobs", n_samples=6000, n_features=6, n_classes=3, cluster_std=1.0,
                                        anisotropy=anisotropy), tmp_path)
        first = data.train.x[data.train.y == 0].double()
        variances, directions = torch.linalg.eigh(torch.cov(first.T))
        return first.mean(dim=0), variances.sqrt(), directions

    round_center, round_axes, _ = first_cluster(1.0)
    long_center, long_axes, directions = first_cluster(16.0)
    assert round_axes.max() / round_axes.min() < 1.3
    assert 8.0 < long_axes.max() / long_axes.min() <= 16.5  # scales 16^u, u in [-1/2, 1/2] per axis
    assert directions.abs().max(dim=0).values.min() < 0.95  # rotated: its axes are not the coordinate axes
    assert torch.allclose(round_center, long_center, atol=0.2)  # the same centers, the same isotropic draw beneath


def test_digits(tmp_path: Path) -> None:
    data = load_dataset(DatasetConfig(name="digits"), tmp_path)
    assert data.train.x.shape == (1797, 64) and data.train.x.dtype == torch.float32
    assert float(data.train.x.min()) == 0.0 and float(data.train.x.max()) == 1.0
    assert data.n_classes == 10 and torch.bincount(data.train.y).tolist()[0] == 178


def test_max_samples_cuts_a_seeded_subset(tmp_path: Path) -> None:
    config = GeneratedConfig(name="twomoons", n_samples=500, max_samples=40)
    data = load_dataset(config, tmp_path, seed=3)
    assert len(data.train) == 40
    assert torch.equal(data.train.x, load_dataset(config, tmp_path, seed=3).train.x)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: GeneratedConfig(name="twomoons", noise=-1), "noise must be >= 0, got -1"),
        (lambda: GeneratedConfig(name="twomoons", n_samples=1), "n_samples must be >= 2"),
        (lambda: GeneratedConfig(name="twomoons", n_test=-2), "n_test must be >= 0"),
        (lambda: CirclesConfig(name="circles", factor=1.0), r"factor must be in \(0, 1\)"),
        (lambda: BlobsConfig(name="blobs", cluster_std=0), "cluster_std must be > 0"),
        (lambda: BlobsConfig(name="blobs", anisotropy=0.5), "anisotropy must be >= 1"),
    ],
)
def test_invalid_values_raise_config_errors(make, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()
