"""LNSCC: the clustering-phase formulas, the loss, the library API, the CLI and resume."""

import json

import numpy as np
import pytest
import torch
import torchvision

from conftest import run_until_crash
from deepclust_cli.engine.checkpoint import load_checkpoint
from deepclust_cli.errors import CheckpointError, ConfigError
from deepclust_cli.methods import LNSCC
from deepclust_cli.methods.lnscc.fuzzy_graph import fuzzy_knn_graph
from deepclust_cli.methods.lnscc.method import (
    balanced_kmeans_centers,
    choose_restart,
    clustering_terms,
    reference_soft_contrastive_loss,
    soft_contrastive_loss,
    student_t_assignment,
    target_distribution,
)
from deepclust_cli.methods.lnscc.network import ResidualMLP
from deepclust_cli.nets.backbones import pretrained_features
from deepclust_cli.ops.metrics import acc
from deepclust_cli.ops.neighbors import knn

TINY_LNSCC = [
    "method=lnscc",
    "dataset=blobs",
    "dataset.n_samples=300",
    "dataset.n_classes=3",
    "method.n_neighbors=10",
    "method.hidden=[32]",
    "method.epochs=4",
    "method.clustering_epoch=2",
    "method.edges_per_epoch=1000",
    "method.batch_size=200",
    "method.n_init=3",
    "method.plot_every=2",
    "trainer.checkpoint_min_seconds=0",
]


def test_student_t_assignment_against_hand_computation():
    z = torch.tensor([[0.0, 0.0]])
    centers = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    kernel = torch.tensor([1 / (1 + 1), 1 / (1 + 4)])
    assert torch.allclose(student_t_assignment(z, centers), kernel / kernel.sum())


def test_target_distribution_sharpens_by_q_squared_over_cluster_frequency():
    q = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8]])
    frequency = q.sum(dim=0)  # 1.6, 1.4
    weight = q**2 / frequency
    expected = weight / weight.sum(dim=1, keepdim=True)
    p = target_distribution(q)
    assert torch.allclose(p, expected)
    assert torch.allclose(p.sum(dim=1), torch.ones(3))
    assert p[0, 0] > q[0, 0] and p[2, 1] > q[2, 1]  # confident assignments get more confident


def test_clustering_terms_vanish_when_balanced_and_already_sharp():
    q = torch.eye(4)
    kl, balance = clustering_terms(q)
    assert kl.item() == pytest.approx(0.0, abs=1e-6) and balance.item() == pytest.approx(0.0, abs=1e-6)
    _, lopsided = clustering_terms(torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]]))
    assert lopsided.item() == pytest.approx(0.75 * np.log(1.5) + 0.25 * np.log(0.5), rel=1e-5)


def test_soft_contrastive_loss_against_hand_computation():
    a, b = 1.577, 0.895
    heads = torch.tensor([[0.0, 0.0]])
    tails = torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    q = lambda d: 1 / (1 + a * d ** (2 * b))  # noqa: E731
    expected = -np.log(q(1.0)) + 0.5 * (-np.log(1 - q(3.0)) - np.log(1 - q(2.0))) / 2  # weight × mean over negatives
    loss = soft_contrastive_loss(heads, tails, negatives, a, b, negative_weight=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-4)


def test_reference_soft_contrastive_loss_against_hand_computation():
    # lnscc_train.py: log q = −log1p(a·d^(2b)); edges −logσ(log q), negatives −(logσ(log q) − log q)·force; one mean.
    a, b = 1.577, 0.895
    heads, tails = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    negatives = torch.tensor([[3.0, 0.0], [0.0, 2.0]])
    q = lambda d: 1 / (1 + a * d ** (2 * b))  # noqa: E731
    edge = np.log(1 + q(1.0)) - np.log(q(1.0))  # −log(q/(1 + q))
    expected = (edge + 0.5 * np.log(1 + q(3.0)) + 0.5 * np.log(1 + q(2.0))) / 3
    loss = reference_soft_contrastive_loss(heads, tails, negatives, a, b, negative_weight=0.5)
    assert loss.item() == pytest.approx(expected, rel=1e-4)
    assert loss.item() != pytest.approx(soft_contrastive_loss(heads, tails, negatives, a, b, 0.5).item(), rel=1e-2)


def test_reference_balance_term_is_the_mse_to_uniform_sizes():
    q = torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]])  # mean assignment (0.75, 0.25)
    kl, balance = clustering_terms(q, reference=True)
    assert balance.item() == pytest.approx(((0.75 - 0.5) ** 2 + (0.25 - 0.5) ** 2) / 2, rel=1e-6)
    assert kl.item() == pytest.approx(clustering_terms(q)[0].item())  # the KL(P‖Q) term is the same in both


def test_reference_seeding_measures_balance_as_kl_from_uniform_to_the_sizes():
    x = torch.cat([torch.randn(300, 2) * 0.1, torch.randn(30, 2) * 0.1 + 5, torch.randn(30, 2) * 0.1 - 5])
    graph = fuzzy_knn_graph(*knn(x, 5))
    seed = balanced_kmeans_centers(x, 3, restarts=8, seed=0, graph=graph, reference=True)
    share = np.array([300, 30, 30]) / 360
    assert seed.balance[seed.chosen] == pytest.approx(float(np.sum(np.log((1 / 3 + 1e-10) / (share + 1e-10)) / 3)), rel=1e-6)


def test_reference_residual_block_widens_to_twice_the_width_with_two_layer_norms():
    net = ResidualMLP(6, [8], 2, dropout=0.0, reference=True)
    linear_shapes = [tuple(m.weight.shape) for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert linear_shapes == [(8, 6), (16, 8), (8, 16), (2, 8)]
    assert [m.normalized_shape for m in net.modules() if isinstance(m, torch.nn.LayerNorm)] == [(8,), (16,), (8,)]
    assert all(float(m.bias.detach().abs().max()) == 0.0 for m in net.modules() if isinstance(m, torch.nn.Linear))
    block, residual = net.layers[0], net.layers[1]
    h = block(torch.randn(5, 6))
    assert torch.allclose(residual(h), torch.nn.functional.leaky_relu(h + residual.inner(h), 0.1))
    ours = ResidualMLP(6, [8], 2, dropout=0.0)
    assert [tuple(m.weight.shape) for m in ours.modules() if isinstance(m, torch.nn.Linear)] == [(8, 6), (8, 8), (2, 8)]


def test_centers_come_from_the_most_balanced_restart():
    # Three groups of very different sizes: a lopsided run would put two centers in the big one.
    x = torch.cat([torch.randn(300, 2) * 0.1, torch.randn(30, 2) * 0.1 + 5, torch.randn(30, 2) * 0.1 - 5])
    graph = fuzzy_knn_graph(*knn(x, 5))
    seed = balanced_kmeans_centers(x, 3, restarts=8, seed=0, graph=graph)
    labels = torch.cdist(x, seed.centers).argmin(dim=1)
    assert sorted(torch.bincount(labels, minlength=3).tolist()) == [30, 30, 300]
    share = torch.tensor([300, 30, 30], dtype=torch.float64) / 360
    assert len(seed.balance) == 8 and seed.balance[seed.chosen] == pytest.approx(float((share * (share * 3).log()).sum()))
    assert seed.cut[seed.chosen] == 0.0  # the groups share no graph edge


def test_equally_balanced_restarts_are_told_apart_by_the_graph_cut():
    # MNIST's case: two restarts equally balanced (4 and 9 cut across, or along), one cutting less
    # of the graph; a lopsided restart that cuts even less (two digits merged) stays out.
    balance = [0.0591, 0.0020, 0.0021, 0.2000]
    cut = [0.0332, 0.0404, 0.0367, 0.0100]
    assert choose_restart(balance, cut, tolerance=0.01) == 2
    assert choose_restart(balance, cut, tolerance=0.0) == 1  # the reference's rule: balance alone
    assert choose_restart([0.1, 0.1], [0.5, 0.5], tolerance=0.0) == 0


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [6.0, 6.0, 0.0, 0.0], [0.0, 6.0, 6.0, 6.0]])
    return (centers[labels] + rng.normal(size=(n, 4))).astype(np.float32), labels


def test_library_fit_predicts_seen_and_unseen_points():
    x, y = blobs(300, 0)
    model = LNSCC(n_clusters=3, n_neighbors=10, hidden=[32], epochs=6, clustering_epoch=3, edges_per_epoch=2000, batch_size=200, n_init=3, plot_every=0)
    labels = model.fit(x).predict(x)
    assert acc(y, labels) > 0.95
    unseen, unseen_labels = blobs(100, 1)
    assert acc(unseen_labels, model.predict(unseen)) > 0.95
    assert model.transform(unseen).shape == (100, 10)  # the default embedding_dim


def test_reference_formulation_clusters_blobs_and_waits_out_the_delay(monkeypatch):
    import deepclust_cli.methods.lnscc.method as lnscc_method

    seeded, original = [], lnscc_method.balanced_kmeans_centers

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        seeded.append(result.centers.clone())  # the centers parameter may share its storage
        return result

    monkeypatch.setattr(lnscc_method, "balanced_kmeans_centers", recording)
    x, y = blobs(300, 0)
    params = dict(n_clusters=3, n_neighbors=10, hidden=[32], epochs=6, clustering_epoch=3, edges_per_epoch=2000, batch_size=200, n_init=3, plot_every=0)
    model = LNSCC(**params, formulation="reference", negative_sample_rate=10).fit(x)
    assert acc(y, model.predict(x)) > 0.95
    assert not torch.equal(model.centers.detach(), seeded[-1])  # the terms moved the centers
    waiting = LNSCC(**params, formulation="reference", clustering_delay=3).fit(x)
    assert torch.equal(waiting.centers.detach(), seeded[-1])  # no clustering term before the delay ran out
    with pytest.raises(ConfigError, match="clustering_delay must be in"):
        LNSCC(**params, clustering_delay=4)
    with pytest.raises(ConfigError, match="formulation must be one of deepclust, reference"):
        LNSCC(**params, formulation="paper")


def test_pca_features_travel_with_a_saved_model(tmp_path):
    x, y = blobs(300, 0)
    model = LNSCC(
        n_clusters=3, n_neighbors=10, hidden=[32], epochs=6, clustering_epoch=3, edges_per_epoch=2000,
        batch_size=200, n_init=3, plot_every=0, features={"pca": 2},
    )
    labels = model.fit(x).predict(x)
    assert acc(y, labels) > 0.95
    model.save(tmp_path / "lnscc.ckpt")
    unseen, _ = blobs(100, 1)
    restored = LNSCC.load(tmp_path / "lnscc.ckpt")
    assert torch.equal(restored.projection.components, model.projection.components)
    assert (restored.predict(unseen) == model.predict(unseen)).all()
    with pytest.raises(ConfigError, match="features.pca=5 exceeds the 4 input dimensions"):
        LNSCC(n_clusters=3, features={"pca": 5}).fit(x)


def test_backbone_features_need_a_weights_file(tmp_path):
    with pytest.raises(ConfigError, match="features.source=backbone needs features.weights=PATH"):
        LNSCC(n_clusters=3, features={"source": "backbone"})
    with pytest.raises(CheckpointError, match="does not exist"):
        pretrained_features(torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "resnet18", tmp_path / "none.pth", 32, [0.5] * 3, [0.5] * 3, torch.device("cpu"))


def test_backbone_features_from_a_user_weights_file(tmp_path):
    weights = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)  # grey: repeated to RGB
    features = pretrained_features(images, "resnet18", weights, 32, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], torch.device("cpu"))
    assert features.shape == (3, 512) and torch.isfinite(features).all()


def test_cli_run_writes_metrics_frames_and_a_gif(deepclust):
    result = deepclust(*TINY_LNSCC)
    assert result.code == 0, result.err
    session = result.session()
    metrics = json.loads((session / "metrics.json").read_text())
    assert metrics["acc"] > 0.9
    frames = sorted((session / "plots" / "frames").glob("embedding_*.png"))
    assert [frame.name for frame in frames] == ["embedding_0002.png", "embedding_0004.png"]
    assert (session / "plots" / "embedding.gif").read_bytes()[:6] == b"GIF89a"
    assert (session / "plots" / "confusion_matrix.png").exists()
    assert "clustering phase from epoch 2" in (session / "log.txt").read_text()


@pytest.mark.parametrize("crash_at", [1, 3])
def test_resume_equals_an_uninterrupted_run(deepclust, monkeypatch, tmp_path, crash_at):
    expected = json.loads((deepclust(*TINY_LNSCC).session() / "metrics.json").read_text())
    run_until_crash(deepclust, monkeypatch, TINY_LNSCC, crash_at)
    crashed = sorted((tmp_path / "outputs" / "lnscc" / "blobs").iterdir())[-1]
    assert load_checkpoint(crashed / "checkpoints" / "last.ckpt")["progress"]["epoch"] == crash_at
    resumed = deepclust("--resume", str(crashed / "checkpoints" / "last.ckpt"), output_dir=False)
    assert resumed.code == 0, resumed.err
    assert json.loads((crashed / "metrics.json").read_text()) == expected
