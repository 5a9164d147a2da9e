"""n_clusters=auto: the eigengap estimate finds K on well-separated data."""

import json

import numpy as np
import pytest

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import BlobsConfig, CirclesConfig, GeneratedConfig
from deepclust_cli.errors import DataError
from deepclust_cli.methods import METHODS
from deepclust_cli.methods.base import ClusteringMethod
from deepclust_cli.ops.cluster_count import estimate_n_clusters


@pytest.mark.parametrize("n_features", [2, 10])
def test_the_estimate_is_exact_on_blobs_with_2_to_10_centers(n_features):
    found = [
        estimate_n_clusters(load_dataset(BlobsConfig(name="blobs", n_samples=600, n_classes=k, n_features=n_features, center_box=20.0), "data", 1).train.x).n_clusters
        for k in range(2, 11)
    ]
    assert found == list(range(2, 11))


@pytest.mark.parametrize("config", [GeneratedConfig(name="twomoons", n_samples=2000), CirclesConfig(name="circles", n_samples=2000)])
def test_the_estimate_is_two_on_moons_and_circles(config):
    estimate = estimate_n_clusters(load_dataset(config, "data", 0).train.x)
    assert estimate.n_clusters == 2
    assert estimate.eigenvalues[1] < 0.05 * estimate.eigenvalues[2]  # two near-zero eigenvalues, then the gap


def test_the_range_bounds_the_estimate_and_too_few_samples_fail_in_one_line():
    x = load_dataset(BlobsConfig(name="blobs", n_samples=400, n_classes=6), "data", 0).train.x
    assert estimate_n_clusters(x, 2, 4).n_clusters <= 4
    assert estimate_n_clusters(x, 6, 9).n_clusters == 6
    with pytest.raises(DataError, match="n_clusters=auto: 5 samples are too few"):
        METHODS.get("kmeans")(n_clusters="auto", n_clusters_range=[4, 8]).fit(np.random.default_rng(0).normal(size=(5, 2)))


def test_a_method_with_auto_keeps_its_estimate_through_a_checkpoint(tmp_path):
    x = load_dataset(BlobsConfig(name="blobs", n_samples=500, n_classes=4), "data", 0).train.x
    method = METHODS.get("kmeans")(n_clusters="auto").fit(x)
    assert method.n_clusters_ == 4 == len(method.cluster_centers_) and sorted(np.bincount(method.labels_)) == [125] * 4
    method.save(tmp_path / "model.ckpt")
    loaded = ClusteringMethod.load(tmp_path / "model.ckpt")
    assert loaded.n_clusters_ == 4 and loaded.cluster_count.n_clusters == 4
    assert (loaded.predict(x) == method.predict(x)).all()


def test_the_cli_reports_the_estimate_and_plots_the_spectrum(deepclust):
    result = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=800", "dataset.n_classes=6", "method.n_clusters=auto")
    assert result.code == 0, result.err
    session = result.session()
    metrics = json.loads((session / "metrics.json").read_text())
    assert metrics["n_clusters_estimated"] == 6 and metrics["acc"] == 1.0
    assert (session / "plots" / "n_clusters.png").stat().st_size > 1000
    assert "n_clusters=auto: 6 clusters" in (session / "log.txt").read_text()
    invalid = deepclust("method=kmeans", "method.n_clusters=several")
    assert invalid.code == 2 and "n_clusters must be an integer >= 1, null or auto" in invalid.err
