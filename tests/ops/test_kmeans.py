import pytest
import torch
from sklearn.cluster import KMeans as SklearnKMeans

from deepclust_cli.ops.kmeans import assign, kmeans
from deepclust_cli.ops.metrics import acc


def blobs(n_per=200, k=5, dims=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, dims, generator=generator) * 8
    labels = torch.arange(k).repeat_interleave(n_per)
    return centers[labels] + torch.randn(len(labels), dims, generator=generator), labels


def test_recovers_separated_blobs():
    x, labels = blobs()
    result = kmeans(x, 5, seed=0)
    assert acc(labels, result.labels) == 1.0
    assert result.centers.shape == (5, 4) and result.labels.dtype == torch.int64


def test_inertia_is_as_good_as_scikit_learn_on_overlapping_data():
    x = torch.randn(3000, 6, generator=torch.Generator().manual_seed(1))
    ours = kmeans(x, 12, n_init=10, seed=0).inertia
    theirs = SklearnKMeans(12, n_init=10, random_state=0).fit(x.numpy()).inertia_
    assert ours <= theirs * 1.01


def test_inertia_and_labels_agree_with_the_centers():
    x, _ = blobs(seed=2)
    result = kmeans(x, 3, n_init=2, seed=0)
    labels, squared = assign(x, result.centers)
    assert torch.equal(labels, result.labels)
    assert result.inertia == pytest.approx(float(squared.sum()), rel=1e-5)
    brute = torch.cdist(x, result.centers).argmin(dim=1)
    assert torch.equal(brute, result.labels)


def test_seeded_and_deterministic():
    x = torch.randn(500, 3, generator=torch.Generator().manual_seed(3))
    first, second = kmeans(x, 7, seed=4), kmeans(x, 7, seed=4)
    assert torch.equal(first.centers, second.centers)
    assert not torch.equal(first.centers, kmeans(x, 7, seed=5).centers)


def test_more_centers_than_distinct_points_leaves_no_cluster_without_a_center():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    result = kmeans(x, 4, n_init=3, seed=0)
    assert torch.isfinite(result.centers).all()
    assert result.inertia == pytest.approx(0.0, abs=1e-9)


def test_bad_k():
    with pytest.raises(ValueError, match="1 <= k <= n_samples=3"):
        kmeans(torch.zeros(3, 2), 4)
