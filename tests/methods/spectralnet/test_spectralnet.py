import logging

import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import BlobsConfig, GeneratedConfig
from deepclust_cli.engine.context import Context
from deepclust_cli.engine.seeds import epoch_generator
from deepclust_cli.errors import ConfigError
from deepclust_cli.methods import SpectralNet
from deepclust_cli.methods.spectralnet.method import contrastive_loss, sampled_pairs, spectral_loss
from deepclust_cli.methods.spectralnet.network import SpectralNetwork, orthonormalizer
from deepclust_cli.ops.metrics import acc
from deepclust_cli.ops.neighbors import gaussian_affinity, gaussian_knn_weights

QUIET = Context(show_progress=False)
TINY = {"hidden": [32, 32], "batch_size": 128, "epochs": 4, "lr": 1e-2}
GRAPH = {"n_neighbors": 8, "scale_k": 3}


PRESET_TWOMOONS = {"spectral": {"hidden": [128, 128], "batch_size": 712, "epochs": 40, "lr": 1e-2}, "n_neighbors": 8, "scale_k": 2, "scale": "global"}


@pytest.fixture(scope="module")
def moons():
    data = load_dataset(GeneratedConfig(name="twomoons", n_samples=4000, n_test=300, noise=0.05), "unused", 0)
    return data.train, data.test


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_orthonormalization_layer_gives_identity_gram(method):
    raw = torch.randn(256, 6, generator=torch.Generator().manual_seed(0)) @ torch.randn(6, 6, generator=torch.Generator().manual_seed(1))
    weights, deficient = orthonormalizer(raw, method)
    y = raw @ weights
    assert not deficient
    assert torch.allclose(y.T @ y / len(y), torch.eye(6), atol=1e-5)
    assert torch.allclose(torch.linalg.inv(weights).diagonal() > 0, torch.ones(6, dtype=torch.bool))  # R's diagonal is positive


def test_qr_and_cholesky_agree_and_the_layer_keeps_its_weights():
    net = SpectralNetwork(4, [16], 3)
    x = torch.randn(64, 4)
    raw = net.body(x)
    w_qr, _ = orthonormalizer(raw, "qr")
    w_chol, _ = orthonormalizer(raw, "cholesky")
    assert torch.allclose(w_qr, w_chol, atol=1e-4)
    net.fit_orthonorm(raw)
    y = net(x)
    assert torch.allclose(y.T @ y / 64, torch.eye(3), atol=1e-4)
    assert "orthonorm_weights" in net.state_dict()


@pytest.mark.parametrize("method", ["qr", "cholesky"])
def test_rank_deficient_batch_is_recovered_with_a_ridge(method):
    rank_two = torch.randn(100, 2) @ torch.randn(2, 4)
    weights, deficient = orthonormalizer(rank_two, method)
    assert deficient
    assert torch.isfinite(weights).all()
    y = rank_two @ weights
    assert torch.isfinite(y).all() and y.abs().max() < 1e4


def knn_graph_example(seed):
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(9, 2, generator=generator), torch.randn(9, 3, generator=generator)
    weights, indices = gaussian_knn_weights(x, n_neighbors=4, scale_k=2)
    return weights, indices, y, gaussian_affinity(x, n_neighbors=4, scale_k=2)


def test_spectral_loss_is_the_laplacian_trace():
    weights, indices, y, affinity = knn_graph_example(0)
    laplacian = torch.diag(affinity.sum(1)) - affinity
    loss = float(spectral_loss(weights, indices, y))
    assert loss == pytest.approx(float(torch.trace(y.T @ laplacian @ y) / 9), rel=1e-5)
    pairwise = sum(affinity[i, j] * (y[i] - y[j]).square().sum() for i in range(9) for j in range(9)) / (2 * 9)
    assert loss == pytest.approx(float(pairwise), rel=1e-5)


def test_normalized_loss_is_the_symmetric_normalized_laplacian_trace():
    weights, indices, y, affinity = knn_graph_example(1)
    inverse_sqrt_degree = torch.diag(affinity.sum(1).rsqrt())
    symmetric = torch.eye(9) - inverse_sqrt_degree @ affinity @ inverse_sqrt_degree
    expected = float(torch.trace(y.T @ symmetric @ y) / 9)
    assert float(spectral_loss(weights, indices, y, normalized=True)) == pytest.approx(expected, rel=1e-5)


def test_local_and_global_scale_on_hand_checked_distances():
    x = torch.tensor([[0.0], [1.0], [3.0], [6.0]])
    e = np.exp
    # local, scale_k=1: σ = distance to the nearest other point = 1, 1, 2, 3; 2 neighbors per row.
    local = gaussian_affinity(x, n_neighbors=2, scale_k=1, local_scale=True)
    expected_local = {
        (0, 1): (e(-1) + e(-1)) / 2,
        (0, 2): (e(-9) + 0) / 2,
        (1, 2): (e(-4) + e(-4 / 4)) / 2,
        (1, 3): (0 + e(-25 / 9)) / 2,
        (2, 3): (e(-9 / 4) + e(-9 / 9)) / 2,
        (0, 3): 0.0,
    }
    # global, scale_k=2: second-neighbor distances 3, 2, 3, 5 → median σ = 3.
    global_ = gaussian_affinity(x, n_neighbors=2, scale_k=2, local_scale=False)
    expected_global = {
        (0, 1): e(-1 / 9),
        (0, 2): (e(-9 / 9) + 0) / 2,
        (1, 2): (e(-4 / 9) + e(-4 / 9)) / 2,
        (1, 3): (0 + e(-25 / 9)) / 2,
        (2, 3): (e(-9 / 9) + e(-9 / 9)) / 2,
    }
    for expected, affinity in ((expected_local, local), (expected_global, global_)):
        assert torch.allclose(affinity, affinity.T)
        assert torch.all(affinity.diagonal() == 0)
        for (i, j), value in expected.items():
            assert float(affinity[i, j]) == pytest.approx(value, rel=1e-5), (i, j)


def test_scale_k_changes_the_local_scale():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(gaussian_affinity(x, 10, 2, True), gaussian_affinity(x, 10, 8, True))


FIVE = torch.tensor([[0.0], [1.0], [3.0], [7.0], [15.0]])  # no distance ties: the neighbor lists are fixed


def test_reference_scale_rule_on_hand_checked_distances():
    """shaham-lab/SpectralNet's σ: its kNN counts the point as neighbor 0; the local kernel takes the
    edge's other endpoint's σ_j = median of j's distances to itself and its 3 nearest."""
    e = np.exp
    # 3 nearest of each: 0 → 1, 2, 3 (1, 3, 7); 1 → 0, 2, 3 (1, 2, 6); 2 → 1, 0, 3 (2, 3, 4);
    # 3 → 2, 1, 0 (4, 6, 7); 4 → 3, 2, 1 (8, 12, 14). σ_j = median(0, d1, d2, d3) = (d1 + d2)/2:
    sigma = {0: 2.0, 1: 1.5, 2: 2.5, 3: 5.0, 4: 10.0}
    weights, indices = gaussian_knn_weights(FIVE, n_neighbors=3, scale_k=2, local_scale=True, rule="reference")
    assert indices.tolist() == [[1, 2, 3], [0, 2, 3], [1, 0, 3], [2, 1, 0], [3, 2, 1]]
    for i in range(5):
        for t, j in enumerate(indices[i].tolist()):
            expected = e(-float(FIVE[i] - FIVE[j]) ** 2 / sigma[j] ** 2)
            assert float(weights[i, t]) == pytest.approx(expected, rel=1e-5, abs=1e-30), (i, j)
    # 4 → 3 is one-sided: the reference weighs it with σ_3 = 5, ours (scale_k=2) with σ_4 = 12.
    reference = gaussian_affinity(FIVE, 3, 2, True, "reference")
    assert float(reference[4, 3]) == pytest.approx(e(-64 / 25) / 2, rel=1e-5)
    assert float(gaussian_affinity(FIVE, 3, 2, True)[4, 3]) == pytest.approx(e(-64 / 144) / 2, rel=1e-5)
    # global, scale_k=2: the reference's column 1 is the nearest other point, 1, 1, 2, 4, 8 → σ = 2;
    # ours is the second other point, 3, 2, 3, 6, 12 → σ = 3.
    global_reference, _ = gaussian_knn_weights(FIVE, 3, 2, local_scale=False, rule="reference")
    global_ours, _ = gaussian_knn_weights(FIVE, 3, 2, local_scale=False)
    assert float(global_reference[1, 1]) == pytest.approx(e(-4 / 4), rel=1e-5)  # 1 → 2 at distance 2
    assert float(global_ours[1, 1]) == pytest.approx(e(-4 / 9), rel=1e-5)
    # An even count takes np.median's mean of the middle two: 0, 1, 3, 7 → 1, 1, 2, 4 → σ = 1.5 (ours' torch.median: 1).
    four_reference, _ = gaussian_knn_weights(FIVE[:4], 2, 2, local_scale=False, rule="reference")
    four_ours, _ = gaussian_knn_weights(FIVE[:4], 2, 1, local_scale=False)
    assert float(four_reference[0, 0]) == pytest.approx(e(-1 / 2.25), rel=1e-5)
    assert float(four_ours[0, 0]) == pytest.approx(e(-1 / 1), rel=1e-5)
    with pytest.raises(ValueError, match="needs scale_k >= 2"):
        gaussian_knn_weights(FIVE, 3, 1, local_scale=False, rule="reference")


def test_scale_rule_reaches_the_spectral_loss(moons):
    train, _ = moons
    spectral = {**TINY, "epochs": 1}
    ours, reference = (
        SpectralNet(n_clusters=2, seed=0, spectral=spectral, scale_rule=rule, **GRAPH).fit(train.x[:600], context=QUIET)
        for rule in ("ours", "reference")
    )
    assert ours.stages["spectral"].loop.values("valid") != reference.stages["spectral"].loop.values("valid")


def test_contrastive_loss_by_hand():
    a = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    b = torch.tensor([[0.3, 0.4], [0.6, 0.0]])  # distances 0.5 and 0.6
    positive = torch.tensor([True, False])
    assert float(contrastive_loss(a, b, positive, margin=1.0)) == pytest.approx((0.25 + 0.16) / 2)


def test_siamese_pairs_are_neighbors_and_non_neighbors():
    codes = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    method = SpectralNet(n_clusters=2, siamese={"enabled": True, "n_neighbors": 3})
    partners, positive = method._siamese_pairs(codes, method.config.siamese)
    assert partners.shape == (200, 6) and positive[:, :3].all() and not positive[:, 3:].any()
    nearest = torch.cdist(codes, codes).fill_diagonal_(float("inf")).topk(3, largest=False).indices
    assert torch.equal(partners[:, :3].sort(1).values, nearest.sort(1).values)
    negatives = partners[:, 3:]
    clashes = (negatives.unsqueeze(2) == nearest.unsqueeze(1)).any(2) | (negatives == torch.arange(200).unsqueeze(1))
    assert clashes.float().mean() < 0.01


@pytest.mark.parametrize("count", [50, 120, 250])
def test_sampled_siamese_pairs_one_positive_and_one_negative_per_anchor(count):
    """Fewer anchors than points: distinct points; more: every point once per reshuffled pass."""
    codes = torch.randn(200, 5, generator=torch.Generator().manual_seed(0))
    nearest = torch.cdist(codes, codes).fill_diagonal_(float("inf")).topk(3, largest=False).indices
    points = torch.arange(20, 140)  # e.g. the training rows: anchors come from them only
    triples = sampled_pairs(points, nearest, count, epoch_generator(0, "siamese-pairs", 0))
    assert triples.shape == (count, 3)
    anchors, positives, negatives = triples.unbind(1)
    assert torch.isin(anchors, points).all()
    uses = torch.bincount(anchors, minlength=200)[points]
    assert uses.min() == count // len(points) and uses.max() == -(-count // len(points))
    assert (positives.unsqueeze(1) == nearest[anchors]).any(1).all()
    clashes = (negatives.unsqueeze(1) == nearest[anchors]).any(1) | (negatives == anchors)
    assert clashes.float().mean() < 0.02
    assert torch.equal(triples, sampled_pairs(points, nearest, count, epoch_generator(0, "siamese-pairs", 0)))
    assert not torch.equal(triples, sampled_pairs(points, nearest, count, epoch_generator(0, "siamese-pairs", 1)))


@pytest.mark.parametrize("pairs_per_epoch, min_batches, steps_per_epoch", [(None, 1, 34), (640, 1, 10), (630, 1, 10), (640, 25, 30)])
def test_siamese_steps_per_epoch_are_pairs_over_batch_size(pairs_per_epoch, min_batches, steps_per_epoch):
    """540 training points × 2·2 pairs at 64 pairs a batch (16 points) are 34 steps; 640 sampled
    pairs are 320 anchors, 32 a batch: 10 steps (630: 315 anchors, still 10), 3 draws for min_batches 25."""
    data = load_dataset(BlobsConfig(name="blobs", n_samples=600, n_classes=3, n_features=8), "unused", 0)
    counter = StepCounter()
    siamese = {"enabled": True, "hidden": [16], "output_dim": 4, "epochs": 2, "batch_size": 64, "n_neighbors": 2}
    siamese.update(pairs_per_epoch=pairs_per_epoch, min_batches=min_batches, patience=100)
    SpectralNet(n_clusters=3, siamese=siamese, spectral={**TINY, "epochs": 1}, **GRAPH).fit(data.train.x, context=counter)
    assert counter.steps_by_loop["siamese"] == 2 * steps_per_epoch


def test_sampled_siamese_stage_is_seeded_and_redraws_each_epoch():
    data = load_dataset(BlobsConfig(name="blobs", n_samples=600, n_classes=3, n_features=8), "unused", 0)
    siamese = {"enabled": True, "hidden": [32], "output_dim": 4, "epochs": 3, "batch_size": 64, "pairs_per_epoch": 640}

    def fit(seed):
        return SpectralNet(n_clusters=3, seed=seed, siamese=siamese, spectral={**TINY, "epochs": 2}, **GRAPH).fit(data.train.x, context=QUIET)

    first, second, other = fit(0), fit(0), fit(1)
    assert np.array_equal(first.transform(data.train.x), second.transform(data.train.x))
    assert first.stages["siamese"].loop.history == second.stages["siamese"].loop.history
    assert first.stages["siamese"].loop.values("loss") != other.stages["siamese"].loop.values("loss")
    assert acc(data.train.y, first.predict(data.train.x)) > 0.9


def test_two_moons_and_unseen_points(moons):
    train, test = moons
    model = SpectralNet(n_clusters=2, seed=0, **PRESET_TWOMOONS)
    model.fit(train.x, context=QUIET)
    assert acc(train.y, model.predict(train.x)) >= 0.999  # a boundary point or two may fall either way
    first, second = model.predict(test.x), model.predict(test.x.numpy())
    assert np.array_equal(first, second)
    assert acc(test.y, first) >= 0.99
    embedding = model.transform(test.x)
    assert embedding.shape == (300, 2)
    distances = ((embedding[:, None, :] - model.centers.numpy()[None]) ** 2).sum(-1)
    assert np.array_equal(distances.argmin(1), first)  # labels are the nearest stored center


def test_save_and_load_keep_predictions(moons, tmp_path):
    train, test = moons
    model = SpectralNet(n_clusters=2, seed=0, spectral=TINY, **GRAPH).fit(train.x, context=QUIET)
    model.save(tmp_path / "model.ckpt")
    loaded = SpectralNet.load(tmp_path / "model.ckpt")
    assert np.array_equal(loaded.predict(test.x), model.predict(test.x))
    assert np.allclose(loaded.transform(test.x), model.transform(test.x))


def test_same_seed_same_result(moons):
    """Bit for bit: batches big enough that a racy parallel gradient accumulation would show."""
    train, _ = moons
    spectral = {**TINY, "batch_size": 2000, "epochs": 3}
    runs = [
        SpectralNet(n_clusters=2, seed=3, spectral=spectral, embedding_dim=8, n_neighbors=30, scale_k=5).fit(train.x, context=QUIET).transform(train.x)
        for _ in range(3)
    ]
    assert np.array_equal(runs[0], runs[1]) and np.array_equal(runs[0], runs[2])


def test_every_stage_trains_and_the_sparse_mode_runs():
    data = load_dataset(BlobsConfig(name="blobs", n_samples=600, n_classes=3, n_features=8), "unused", 0)
    model = SpectralNet(
        n_clusters=3,
        ae={"enabled": True, "hidden": [32], "code_dim": 4, "epochs": 3, "batch_size": 64},
        siamese={"enabled": True, "hidden": [32], "output_dim": 4, "epochs": 3, "batch_size": 64},
        spectral={**TINY, "sparse": True, "sparse_neighbors": 3, "batch_size": 120},
        **GRAPH,
    ).fit(data.train.x, context=QUIET)
    assert [model.stages[name].loop.position for name in ("ae", "siamese", "spectral")] == [3, 3, 4]
    assert all(len(stage.loop.values("loss")) == stage.loop.position for stage in model.stages.values())
    assert acc(data.train.y, model.predict(data.train.x)) > 0.9


def test_wider_embedding_and_normalized_laplacian(moons):
    train, _ = moons
    model = SpectralNet(n_clusters=2, spectral=TINY, embedding_dim=4, laplacian="normalized", **GRAPH).fit(train.x, context=QUIET)
    assert model.transform(train.x[:10]).shape == (10, 4)
    assert model.centers.shape == (2, 4)
    assert set(np.unique(model.predict(train.x))) <= {0, 1}


def test_rank_deficient_training_warns_and_finishes(caplog):
    x = torch.zeros(300, 2)
    x[:, 0] = torch.arange(300) % 2  # two distinct points repeated: outputs cannot span 3 dimensions
    model = SpectralNet(n_clusters=3, spectral={**TINY, "epochs": 2}, **GRAPH)
    with caplog.at_level(logging.WARNING, logger="deepclust"):
        model.fit(x, context=QUIET)
    assert "rank-deficient" in caplog.text
    assert np.isfinite(model.transform(x)).all()


def test_config_errors():
    with pytest.raises(ConfigError, match="affinity_input=code needs the ae stage"):
        SpectralNet(n_clusters=2, affinity_input="code")
    with pytest.raises(ConfigError, match=r"spectral.batch_size \(8\) must exceed the embedding width \(10\)"):
        SpectralNet(n_clusters=10, spectral={"batch_size": 8})
    with pytest.raises(ConfigError, match="scale must be local or global"):
        SpectralNet(n_clusters=2, scale="median")
    with pytest.raises(ConfigError, match="scale_rule must be ours or reference, got 'paper'"):
        SpectralNet(n_clusters=2, scale_rule="paper")
    with pytest.raises(ConfigError, match="scale_rule=reference with scale=global needs scale_k >= 2"):
        SpectralNet(n_clusters=2, scale_rule="reference", scale="global", scale_k=1)
    with pytest.raises(ConfigError, match="siamese.pairs_per_epoch must be null or an even number >= 2"):
        SpectralNet(n_clusters=2, siamese={"pairs_per_epoch": 3})
    with pytest.raises(ConfigError, match="spectralnet.spectral.epochs"):
        SpectralNet(n_clusters=2, spectral={"epochs": "many"})


class StepCounter(Context):
    def __init__(self):
        super().__init__(show_progress=False)
        self.steps_by_loop = {}

    def count_step(self, name, loss, batch_loss=None):
        self.steps_by_loop[name] = self.steps_by_loop.get(name, 0) + 1
        super().count_step(name, loss, batch_loss)


@pytest.mark.parametrize("min_batches, steps_per_epoch", [(1, 2), (8, 8), (9, 10)])
def test_spectral_epochs_run_at_least_min_batches(moons, min_batches, steps_per_epoch):
    """4,000 points less a tenth held out are two batches of 2,048 a pass (the second 1,552):
    min_batches repeats reshuffled passes, so small data gets the steps patience and epochs count on."""
    train, _ = moons
    counter = StepCounter()
    spectral = {**TINY, "batch_size": 2048, "epochs": 2, "min_batches": min_batches, "patience": 100}
    SpectralNet(n_clusters=2, seed=0, spectral=spectral, **GRAPH).fit(train.x, context=counter)
    assert counter.steps_by_loop == {"spectral": 2 * steps_per_epoch}
