"""AND end to end: library API, the CLI on MNIST-format files, resume equivalence, test-only."""

import json

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import REPO, TINY_AND, bar_digits, run_until_crash
from deepclust_cli.config import to_settings
from deepclust_cli.engine.checkpoint import load_checkpoint
from deepclust_cli.engine.context import Context
from deepclust_cli.errors import ConfigError, DataError
from deepclust_cli.methods import AND

CONF_DIR = REPO / "conf"


def tiny_and(**overrides) -> AND:
    params = dict(
        n_clusters=10,
        backbone="small_convnet",
        anchor_fractions=[0.0, 1.0],
        epochs=1,
        batch_size=32,
        n_init=1,
        augment={"saturation": 0, "hue": 0, "grayscale_p": 0},
    )
    return AND(**{**params, **overrides})


def test_library_fit_predict_transform():
    images, labels = bar_digits(96, seed=0)
    model = tiny_and().fit(torch.from_numpy(images).unsqueeze(1), labels)
    predicted = model.predict(torch.from_numpy(images).unsqueeze(1))
    assert predicted.shape == (96,) and predicted.min() >= 0 and predicted.max() < 10
    features = model.transform(torch.from_numpy(images[:5]).unsqueeze(1))
    assert features.shape == (5, 128)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1.0, atol=1e-5)


def test_after_round_one_every_sample_is_an_anchor_with_its_nearest_bank_neighbor():
    images, labels = bar_digits(64, seed=0)
    model = tiny_and(anchor_fractions=[0.0, 1.0], epochs=1)
    model.fit(torch.from_numpy(images).unsqueeze(1), labels)
    assert model.loop.position == 2 and model.loop.done  # two rounds of one epoch
    assert model.anchor.all()
    assert model.neighbors.shape == (64, 1)
    assert (model.neighbors[:, 0] != torch.arange(64)).all()  # each paired with another sample


def test_a_neighborhood_of_three_pairs_every_anchor_with_its_three_nearest_bank_neighbors():
    images, labels = bar_digits(64, seed=0)
    model = tiny_and(anchor_fractions=[0.0, 1.0], neighborhood_size=3)
    model.fit(torch.from_numpy(images).unsqueeze(1), labels)
    assert model.neighbors.shape == (64, 3)
    assert (model.neighbors != torch.arange(64).unsqueeze(1)).all()
    assert all(len(set(row)) == 3 for row in model.neighbors.tolist())
    # The bank after round 1's epoch differs from the one mined before it; re-mine the same way and compare.
    similarities = model.bank.features @ model.bank.features.T
    similarities.fill_diagonal_(-float("inf"))
    assert torch.equal(model.bank.entropy_and_nearest(k=3)[1], similarities.topk(3, dim=1).indices)
    assert model.loop.values("anchor_consistency")  # reported over all 64 × 3 anchor–neighbor pairs


def test_held_out_knn_against_the_bank_and_against_recomputed_features():
    images, labels = bar_digits(160, seed=0)
    train, held_out = torch.from_numpy(images[:120]).unsqueeze(1), torch.from_numpy(images[120:]).unsqueeze(1)
    y_train, y_held_out = torch.from_numpy(labels[:120]), torch.from_numpy(labels[120:])
    model = tiny_and(epochs=2, eval_every=1, knn_neighbors=20, best_by="knn_acc")
    model.fit(train, y_train, eval_set=(held_out, y_held_out))
    scored = model.loop.values("knn_acc_bank")
    assert len(scored) == 4 and len(model.loop.values("knn_acc")) == 4  # every epoch of both rounds
    summary = model._bank_scores()
    best = max(scored)
    first_best = scored.index(best)
    assert summary["knn_acc_bank"] == scored[-1] and summary["knn_acc_bank_best"] == best
    assert (summary["knn_acc_bank_best_round"], summary["knn_acc_bank_best_epoch"]) == (first_best // 2, first_best % 2 + 1)

    context = Context(seed=0)
    fresh = model._evaluate_during_training((held_out, y_held_out), train, y_train, context, 1, 2)
    assert fresh["knn_acc_bank"] == scored[-1] and fresh["knn_acc"] == model.loop.values("knn_acc")[-1]
    # A stale bank (rows no longer at their samples) changes the bank's vote, not the recomputed one.
    model.bank.features = model.bank.features.roll(1, dims=0)
    stale = model._evaluate_during_training((held_out, y_held_out), train, y_train, context, 1, 2)
    assert stale["knn_acc"] == fresh["knn_acc"] and stale["knn_acc_bank"] < fresh["knn_acc_bank"] - 0.2
    # The reference's rule alone (the default) skips the pass over the training images.
    model.config.best_by = "knn_acc_bank"
    assert "knn_acc" not in model._evaluate_during_training((held_out, y_held_out), train, y_train, context, 1, 2)


def test_vectors_and_bad_shapes_are_refused_with_a_clear_message():
    with pytest.raises(DataError, match=r"expected images N×C×H×W, got shape \(10, 4\)"):
        tiny_and().fit(np.zeros((10, 4), dtype=np.float32))
    with pytest.raises(ConfigError, match="backbone must be one of alexnet, alexnet_cifar, resnet18_cifar"):
        tiny_and(backbone="vgg")
    with pytest.raises(ConfigError, match="anchor_fractions must be a non-decreasing list"):
        tiny_and(anchor_fractions=[0.5, 0.25])
    with pytest.raises(ConfigError, match="neighborhood_size must be >= 1, got 0"):
        tiny_and(neighborhood_size=0)
    with pytest.raises(ConfigError, match="best_by must be one of knn_acc_bank, knn_acc, acc, got 'nmi'"):
        tiny_and(best_by="nmi")
    with pytest.raises(DataError, match="neighborhood_size=40 needs more than 40 training images, got 40"):
        tiny_and(neighborhood_size=40, n_clusters=2).fit(np.zeros((40, 1, 28, 28), dtype=np.uint8))


def test_cli_run_writes_metrics_plots_and_a_full_checkpoint(deepclust, bar_mnist):
    result = deepclust(*TINY_AND, f"data_dir={bar_mnist}")
    assert result.code == 0, result.err
    session = result.session()
    metrics = json.loads((session / "metrics.json").read_text())
    assert {"acc", "nmi", "ari", "knn_acc", "knn_acc_bank", "knn_acc_bank_best", "silhouette", "davies_bouldin", "calinski_harabasz", "cluster_sizes"} <= set(metrics)
    assert sum(metrics["cluster_sizes"]) == len(np.loadtxt(session / "predictions" / "test.csv", delimiter=",", skiprows=1))
    assert metrics["knn_acc"] > 0.5  # ten classes: chance is 0.1
    for plot in ("rounds", "confusion_matrix", "embedding"):
        assert (session / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    log = (session / "log.txt").read_text()
    assert "round 1: 120 anchors (50%)" in log and "neighborhood consistency" in log
    assert "round 1 epoch 2: acc=" in log and "knn_acc_bank=" in log
    state = load_checkpoint(session / "checkpoints" / "last.ckpt")["method"]["state"]
    assert state["loop"]["position"] == 4 and state["loop"]["done"] and "centers" in state  # 2 rounds × 2 epochs
    best = load_checkpoint(session / "checkpoints" / "best.ckpt")
    assert best["best_score"] == metrics["knn_acc_bank_best"]  # best.ckpt: the reference's rule, the bank's best epoch
    saved_at = best["method"]["state"]["loop"]["position"]  # epochs done, 2 a round
    assert saved_at == 2 * metrics["knn_acc_bank_best_round"] + metrics["knn_acc_bank_best_epoch"]

    tested = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only", output_dir=False)
    assert tested.code == 0, tested.err
    assert json.loads((session / "metrics_test.json").read_text()) == metrics


def test_a_vector_dataset_is_refused_by_the_cli(deepclust):
    result = deepclust("method=and", "dataset=blobs")
    assert result.code == 1
    assert "and: needs images (N×C×H×W)" in result.err


@pytest.mark.parametrize("crash_at", [1, 3], ids=["mid-round-0", "mid-round-1"])
def test_resume_mid_round_equals_an_uninterrupted_run(deepclust, bar_mnist, monkeypatch, tmp_path, crash_at):
    run = [*TINY_AND, f"data_dir={bar_mnist}"]
    uninterrupted = deepclust(*run)
    assert uninterrupted.code == 0, uninterrupted.err
    expected = json.loads((uninterrupted.session() / "metrics.json").read_text())

    run_until_crash(deepclust, monkeypatch, run, crash_at)
    crashed = sorted((tmp_path / "outputs" / "and" / "mnist").iterdir())[-1]
    stopped_at = load_checkpoint(crashed / "checkpoints" / "last.ckpt")["progress"]
    assert stopped_at["epoch"] == 1 and stopped_at["round"] == (crash_at - 1) // 2  # mid-round
    resumed = deepclust("--resume", str(crashed / "checkpoints" / "last.ckpt"), output_dir=False)
    assert resumed.code == 0, resumed.err
    assert json.loads((crashed / "metrics.json").read_text()) == expected


@pytest.mark.parametrize(
    "experiment, backbone, mean, std, eval_every",
    [
        # CIFAR-10 and SVHN: the reference's constants (datasets/cifar.py, datasets/svhn.py), not the datasets' stds.
        ("and_cifar10", "resnet18_cifar", [0.4914, 0.4822, 0.4465], [0.2023, 0.1994, 0.2010], 1),
        ("and_cifar100", "resnet18_cifar", [0.5071, 0.4865, 0.4409], None, 1),  # its own statistics, not CIFAR-10's
        ("and_svhn", "resnet18_cifar", [0.4377, 0.4438, 0.4728], [0.1201, 0.1231, 0.1052], 1),
        ("and_imagenet", "alexnet", [0.485, 0.456, 0.406], None, None),
        ("and_mnist", "small_convnet", [0.1307], None, None),
    ],
)
def test_presets_compose_with_their_normalization_and_the_reference_evaluation(experiment, backbone, mean, std, eval_every):
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"])
    settings = to_settings(cfg)
    assert settings.method.backbone == backbone
    assert settings.method.mean == pytest.approx(mean)
    assert settings.method.best_by == "knn_acc_bank" and settings.method.neighborhood_size == 1
    if std is not None:
        assert settings.method.std == pytest.approx(std)
    if eval_every is not None:
        assert settings.method.eval_every == eval_every
    assert settings.dataset.split.value == "train_test"
