"""2-D projections of embeddings and the figures drawn from them."""

import numpy as np
import pytest
import torch

from deepclust_cli import plots
from deepclust_cli.config import PlotsConfig


def whitened_clusters(n_per_cluster: int = 300, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Three clusters apart along dimensions 0 and 1 of a 6-d embedding whose every direction has
    unit variance (as SpectralNet's orthonormalized outputs): principal components cannot tell
    the cluster directions from the noise directions."""
    generator = torch.Generator().manual_seed(seed)
    centers = torch.tensor([[3.0, 0.0], [-1.5, 2.6], [-1.5, -2.6]])
    labels = torch.arange(3).repeat_interleave(n_per_cluster)
    signal = centers[labels] + 0.3 * torch.randn(len(labels), 2, generator=generator)
    noise = torch.randn(len(labels), 4, generator=generator)
    points = torch.cat([signal, noise], dim=1)
    points = (points - points.mean(0)) / points.std(0)
    return points, labels.numpy()


def separation(coordinates: np.ndarray, labels: np.ndarray) -> float:
    """Share of the coordinates' variance that lies between the clusters (1: points sit on their means)."""
    means = np.stack([coordinates[labels == g].mean(0) for g in np.unique(labels)])[labels]
    return float(((means - coordinates.mean(0)) ** 2).sum() / ((coordinates - coordinates.mean(0)) ** 2).sum())


def test_cluster_plane_shows_clusters_that_principal_components_miss():
    points, labels = whitened_clusters()
    in_cluster_plane, _ = plots.project_2d(points, labels)
    principal, _ = plots.project_2d(points)
    assert separation(in_cluster_plane, labels) > 0.9
    assert separation(principal, labels) < 0.6


def test_fewer_than_three_groups_fall_back_to_principal_components():
    points, labels = whitened_clusters()
    two_groups = np.minimum(labels, 1)
    np.testing.assert_allclose(plots.project_2d(points, two_groups)[0], plots.project_2d(points)[0])


def test_narrow_inputs_and_subsampling():
    flat = torch.arange(5.0).unsqueeze(1)
    coordinates, rows = plots.project_2d(flat)
    np.testing.assert_array_equal(coordinates, [[0, 0], [1, 0], [2, 0], [3, 0], [4, 0]])
    np.testing.assert_array_equal(rows, np.arange(5))
    plane = torch.randn(50, 2)
    np.testing.assert_array_equal(plots.project_2d(plane, np.arange(50) % 3)[0], plane.numpy())
    points, labels = whitened_clusters()
    coordinates, rows = plots.project_2d(points, labels, max_points=100, seed=3)
    assert coordinates.shape == (100, 2) and len(np.unique(rows)) == 100
    np.testing.assert_array_equal(rows, plots.project_2d(points, labels, max_points=100, seed=3)[1])


@pytest.mark.parametrize("title", ["", "k=v, " * 60])
def test_side_by_side_writes_a_png_with_any_title(tmp_path, title):
    points, labels = whitened_clusters(50)
    out = tmp_path / "plots" / "side.png"
    plots.embeddings_side_by_side([("a", points, labels, labels), ("b", points * 2, labels, labels)], out, title=title)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = plots._wrapped(title, 2).splitlines()
    assert all(len(line) <= 120 for line in lines) and " ".join(lines).split() == title.split()


def test_a_cluster_takes_the_colour_of_its_matched_class():
    from deepclust_cli.plots import matched_colours

    classes = np.array(["cat", "dog", "eel"] * 20)
    clusters = np.array([2, 0, 1] * 20)  # a relabelled perfect clustering
    cluster_colours, class_colours = matched_colours(clusters, classes)
    assert (cluster_colours == class_colours).all()
    alone, none = matched_colours(clusters, None)
    assert none is None and sorted(set(alone.tolist())) == [0, 1, 2]


def test_the_cluster_gallery_shows_the_images_nearest_each_center(tmp_path):
    from deepclust_cli.data.base import Split
    from deepclust_cli.engine.context import Context
    from deepclust_cli.methods.base import Assignment, ClusteringMethod

    class Plotting(Context):
        def plot_path(self, name):
            return tmp_path / f"{name}.png"

    images = torch.zeros(30, 1, 8, 8, dtype=torch.uint8)
    images[10:] = 200
    method = ClusteringMethod.__new__(ClusteringMethod)
    method.name, method.centers = "test", None
    context = Plotting()
    context.plot_settings = PlotsConfig(cluster_rows=2, images_per_cluster=4)
    clusters = torch.tensor([0] * 10 + [1] * 20)
    method._plot_cluster_gallery(Split(images), Assignment(clusters, images.flatten(1).float()), context)
    assert (tmp_path / "clusters.png").stat().st_size > 1000
