"""GeoCluster: teachers, stacked students, routing against brute force, checkpoints, the CLI."""

import json

import numpy as np
import pytest
import torch

from conftest import run_until_crash
from deepclust_cli.data.base import Split
from deepclust_cli.engine.checkpoint import load_checkpoint
from deepclust_cli.engine.context import Context
from deepclust_cli.errors import ConfigError, DataError
from deepclust_cli.methods import GeoCluster
from deepclust_cli.methods.geocluster.config import EnergyConfig
from deepclust_cli.methods.geocluster.students import StackedMLP
from deepclust_cli.methods.geocluster.teachers import assign, energy_centers, kmeans_centers
from deepclust_cli.methods.geocluster.tree import ObjectTree
from deepclust_cli.ops.geometry import brute_force_nearest, family

TIMING_KEYS = {"qps", "qps_bruteforce", "speedup"}
TINY_GEOCLUSTER = [
    "method=geocluster", "dataset=squares", "dataset.n_objects=400", "dataset.extent=20",
    "method.threshold=16", "method.branching=4", "method.student.samples=512", "method.student.steps=60",
    "method.n_queries=500", "method.plot_resolution=50", "trainer.checkpoint_min_seconds=0",
]


def grouped_squares(groups: int = 4, per_group: int = 30) -> torch.Tensor:
    """Small squares in ``groups`` tight clumps far apart."""
    generator = torch.Generator().manual_seed(0)
    corners = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])[:groups]
    centers = corners.repeat_interleave(per_group, 0) + torch.rand(groups * per_group, 2, generator=generator) * 5
    return torch.cat([centers, torch.full((groups * per_group, 1), 0.5), torch.rand(groups * per_group, 1, generator=generator)], 1)


@pytest.mark.parametrize("teacher", ["kmeans", "energy"])
def test_teachers_split_separated_clumps_exactly(teacher):
    objects = grouped_squares()
    shape = family("squares")
    generator = torch.Generator().manual_seed(0)
    if teacher == "kmeans":
        centers = kmeans_centers(objects, shape, 4, 20, generator)
    else:
        centers = energy_centers(objects, shape, 4, EnergyConfig(steps=50), generator)
    labels = assign(objects, centers, shape)
    clumps = torch.arange(4).repeat_interleave(30)
    assert len(torch.unique(labels)) == 4
    for clump in range(4):
        assert len(torch.unique(labels[clumps == clump])) == 1


def test_stacked_mlp_rows_are_independent_networks():
    stack = StackedMLP(3, 2, [5], 4, torch.Generator().manual_seed(0))
    x = torch.randn(3, 6, 2)
    out = stack(x)
    for row in range(3):
        hidden = torch.relu(x[row] @ stack.weights[0][row] + stack.biases[0][row])
        assert torch.allclose(out[row], hidden @ stack.weights[1][row] + stack.biases[1][row], atol=1e-6)
    rows = torch.tensor([2, 0, 2, 1, 0, 2])
    points = torch.randn(6, 2)
    expected = torch.stack([stack(points[p].expand(3, 1, 2))[rows[p], 0] for p in range(6)])
    assert torch.allclose(stack.forward_rows(points, rows), expected, atol=1e-6)


@pytest.fixture(scope="module")
def fitted() -> tuple[GeoCluster, torch.Tensor]:
    objects = family("squares").generate(300, 20.0, 0.2, 1.0, torch.Generator().manual_seed(0))
    model = GeoCluster(object_type="squares", branching=4, threshold=12, student={"samples": 1024, "steps": 150}, seed=0)
    return model.fit(objects), objects


def test_tree_partitions_the_objects_into_small_leaves(fitted):
    model, objects = fitted
    tree = model.tree
    counts = tree.counts()
    assert int(counts.sum()) == len(objects)
    assert tree.is_leaf[tree.object_node].all()
    assert int(counts[tree.is_leaf].max()) <= 12
    assert int(tree.depth.max()) >= 2
    internal = torch.nonzero(~tree.is_leaf).flatten()
    for node in internal.tolist():
        kids = tree.children[node][tree.children[node] >= 0]
        assert len(kids) >= 2 and (tree.parent[kids] == node).all()
        assert (tree.depth[kids] == tree.depth[node] + 1).all()


def test_routing_with_every_leaf_in_the_beam_is_brute_force(fitted):
    model, objects = fitted
    points = torch.rand(400, 2, generator=torch.Generator().manual_seed(5)) * 20
    exhaustive = model.tree.descend(points, beam=model.tree.n_nodes, k=3)
    truth, _ = brute_force_nearest(points, objects, family("squares").distance, k=3)
    assert torch.allclose(exhaustive.distances, truth)
    greedy = model.tree.descend(points, beam=1)
    found = greedy.distances[:, 0]
    # A greedy descent returns a real object at its true distance, never closer than the nearest.
    assert torch.allclose(found, family("squares").distance(points, objects[greedy.indices[:, 0]]))
    assert (found >= truth[:, 0] - 1e-6).all()
    assert float((found <= truth[:, 0] + 1e-5).float().mean()) > 0.8


def test_per_level_accuracy_falls_with_depth_and_ends_at_the_end_to_end_accuracy(fitted):
    model, _ = fitted
    metrics = model.evaluate(Split(model.tree.objects), Context(device="cpu", seed=0))
    levels = [metrics[f"nn_acc_level_{level}"] for level in range(1, int(metrics["tree_depth"]) + 1)]
    assert levels == sorted(levels, reverse=True)
    assert levels[-1] == pytest.approx(metrics["nn_acc"])
    # The reference's rule counts a query whose path ended in a shallower leaf as wrong at deeper levels.
    reached = [metrics[f"nn_acc_reached_level_{level}"] for level in range(1, int(metrics["tree_depth"]) + 1)]
    assert reached[0] == levels[0] and all(r <= a for r, a in zip(reached, levels))
    assert int(model.tree.depth[model.tree.is_leaf].min()) < metrics["tree_depth"] and reached[-1] < levels[-1]
    assert metrics["nn_acc"] > 0.95 and 0 < metrics["nn_topk_acc"] <= 1
    assert metrics["qps"] > 0 and metrics["qps_bruteforce"] > 0


def test_kneighbors_finds_objects_and_predict_the_leaf_holding_the_nearest(fitted):
    model, objects = fitted
    points = objects[:20, :2]  # each square's center lies inside it: distance 0 to itself
    distances, indices = model.kneighbors(points, k=2)
    assert distances.shape == (20, 2) and (distances[:, 0] == 0).all()
    clusters = model.predict(points)
    tree = model.tree
    leaves = torch.nonzero(tree.is_leaf).flatten()  # breadth-first: cluster c is the c-th leaf
    assert clusters.min() >= 0 and clusters.max() < model.n_leaves_ == len(leaves)
    assert torch.equal(leaves[torch.from_numpy(clusters)], tree.object_node[torch.from_numpy(indices[:, 0])])
    with pytest.raises(DataError, match="query points must be 2-d for squares, got 3-d"):
        model.predict(np.zeros((2, 3)))


def test_tree_state_round_trip_answers_the_same(fitted):
    model, objects = fitted
    restored = ObjectTree.from_state(model.tree.state(), objects, family("squares"))
    points = torch.rand(200, 2, generator=torch.Generator().manual_seed(9)) * 20
    before, after = model.tree.descend(points, beam=2, k=2), restored.descend(points, beam=2, k=2)
    assert torch.equal(before.indices, after.indices)
    assert all(torch.equal(a, b) for a, b in zip(before.beams, after.beams))


def test_the_world_frame_metric_is_the_one_the_tree_is_built_and_searched_under(tmp_path):
    objects = family("squares").generate(120, 20.0, 0.5, 2.0, torch.Generator().manual_seed(1))
    objects[:, 3] = torch.pi / 4  # every square at 45°, where the two metrics differ most
    model = GeoCluster(object_type="squares", metric="world", branching=4, threshold=30, student={"samples": 256, "steps": 20}, seed=0).fit(objects)
    points = torch.rand(300, 2, generator=torch.Generator().manual_seed(2)) * 20
    exhaustive = model.tree.descend(points, beam=model.tree.n_nodes)
    world, _ = brute_force_nearest(points, objects, family("squares", "world").distance)
    frame, _ = brute_force_nearest(points, objects, family("squares").distance)
    assert torch.allclose(exhaustive.distances, world) and not torch.allclose(exhaustive.distances, frame)
    model.save(tmp_path / "world.ckpt")
    restored = GeoCluster.load(tmp_path / "world.ckpt")
    assert restored.config.metric == "world" and np.array_equal(restored.kneighbors(points)[0], model.kneighbors(points)[0])


def test_configuration_errors_are_one_line():
    with pytest.raises(ConfigError, match="geocluster needs geometric objects: use dataset=squares"):
        GeoCluster()
    with pytest.raises(ConfigError, match="metric 'world' is not one of cuboids's: cuboids have only their own metric"):
        GeoCluster(object_type="cuboids", metric="world")
    with pytest.raises(ConfigError, match="metric 'l2' is not one of squares's: frame, world, corners"):
        GeoCluster(object_type="squares", metric="l2")
    with pytest.raises(DataError, match="squares need 4 numbers per object"):
        GeoCluster(object_type="squares").fit(np.zeros((20, 3)))


def test_cli_run_writes_metrics_and_the_partition_plot_and_test_only_reevaluates(deepclust):
    result = deepclust(*TINY_GEOCLUSTER)
    assert result.code == 0, result.err
    session = result.session()
    metrics = json.loads((session / "metrics.json").read_text())
    assert metrics["nn_acc"] > 0.9 and {"nn_topk_acc", "qps", "qps_bruteforce", "nn_acc_level_1"} <= metrics.keys()
    assert (session / "plots" / "partition.png").stat().st_size > 0
    again = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only", output_dir=False)
    assert again.code == 0, again.err
    retested = json.loads((again.session() / "metrics_test.json").read_text())
    assert {k: v for k, v in retested.items() if k not in TIMING_KEYS} == {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
    fresh = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only", "method.query_seed=1", output_dir=False)
    assert fresh.code == 0, fresh.err
    other = json.loads((fresh.session() / "metrics_test.json").read_text())
    assert other["nn_acc"] > 0.9 and other["nn_topk_acc"] != metrics["nn_topk_acc"]


def test_resuming_a_partly_built_tree_equals_an_uninterrupted_build(deepclust, monkeypatch, tmp_path):
    expected = json.loads((deepclust(*TINY_GEOCLUSTER).session() / "metrics.json").read_text())
    written = run_until_crash(deepclust, monkeypatch, TINY_GEOCLUSTER, crash_at=1)
    assert written[0]["level"] == 1
    crashed = sorted((tmp_path / "outputs" / "geocluster" / "squares").iterdir())[-1]
    assert load_checkpoint(crashed / "checkpoints" / "last.ckpt")["method"]["state"]["tree"]["built_depth"] == 1
    resumed = deepclust("--resume", str(crashed / "checkpoints" / "last.ckpt"), output_dir=False)
    assert resumed.code == 0, resumed.err
    metrics = json.loads((crashed / "metrics.json").read_text())
    assert {k: v for k, v in metrics.items() if k not in TIMING_KEYS} == {k: v for k, v in expected.items() if k not in TIMING_KEYS}


def test_object_datasets_refuse_bad_files(deepclust, tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.zeros((10, 3), dtype=np.float32))
    result = deepclust("method=geocluster", "dataset=objects", "dataset.object_type=squares", f"dataset.path={path}")
    assert result.code != 0
    assert "squares need 4 numbers per object (x, y, side, rotation), got shape (10, 3)" in result.err
    result = deepclust("method=geocluster", "dataset=mnist")
    assert result.code != 0 and "geocluster needs geometric objects" in result.err


def test_the_session_keeps_each_query_s_object_and_predict_answers_a_file_of_points(deepclust, tmp_path):
    import csv

    trained = deepclust(*TINY_GEOCLUSTER)
    assert trained.code == 0, trained.err
    session = trained.session()
    with (session / "predictions" / "queries.csv").open() as file:
        queries = list(csv.DictReader(file))
    assert len(queries) == 500 and list(queries[0])[:3] == ["index", "q0", "q1"]
    exact = sum(float(r["distance"]) <= float(r["nearest_distance"]) + 1e-4 for r in queries) / len(queries)
    assert exact == pytest.approx(json.loads((session / "metrics.json").read_text())["nn_acc"], abs=1e-3)
    model = GeoCluster.load(session / "checkpoints" / "last.ckpt")
    with (session / "predictions" / "objects.csv").open() as file:
        assert [int(r["cluster"]) for r in csv.DictReader(file)] == model.labels_.tolist()
    assert model.n_clusters_ == model.n_leaves_ > 1

    points = np.random.default_rng(0).uniform(0, 20, size=(40, 2)).astype(np.float32)
    np.save(tmp_path / "points.npy", points)
    answered = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--predict", "dataset=features", f"dataset.path={tmp_path / 'points.npy'}")
    assert answered.code == 0, answered.err
    with (answered.session() / "predictions" / "queries.csv").open() as file:
        rows = list(csv.DictReader(file))
    distances, indices = model.kneighbors(points)
    assert [int(r["object"]) for r in rows] == indices[:, 0].tolist()
    assert [int(r["cluster"]) for r in rows] == model.predict(points).tolist()
    np.testing.assert_allclose([float(r["distance"]) for r in rows], distances[:, 0], rtol=1e-5)
