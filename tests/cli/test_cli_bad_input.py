"""Bad input through the command line: hostile, corrupt and foreign checkpoints, unusable data,
and a loss that diverges — one line each, a non-zero exit, nothing run and nothing lost."""

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_hostile_checkpoint
from deepclust_cli.engine.checkpoint import load_checkpoint


def one_error_line(result, code: int = 1) -> str:
    assert result.code == code, result.err
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("deepclust: error: "), result.err
    return lines[0]


@pytest.fixture
def kmeans_checkpoint(deepclust, tmp_path) -> Path:
    result = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=200")
    assert result.code == 0, result.err
    return result.session() / "checkpoints" / "last.ckpt"


def test_a_checkpoint_that_would_run_code_is_refused_without_running_it(deepclust, tmp_path):
    marker = tmp_path / "pwned"
    evil = write_hostile_checkpoint(tmp_path / "evil.ckpt", marker)
    line = one_error_line(deepclust("--resume", str(evil)))
    assert str(evil) in line and "refused to load" in line
    assert not marker.exists()


def test_truncated_and_foreign_checkpoints_are_named_with_their_problem(deepclust, kmeans_checkpoint, tmp_path):
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(kmeans_checkpoint.read_bytes()[:300])
    line = one_error_line(deepclust("--resume", str(truncated)))
    assert line.startswith(f"deepclust: error: {truncated}: unreadable checkpoint (truncated or corrupt)")
    flipped = tmp_path / "flipped.ckpt"
    data = bytearray(kmeans_checkpoint.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    flipped.write_bytes(bytes(data))
    assert str(flipped) in one_error_line(deepclust("--resume", str(flipped)))
    foreign = tmp_path / "weights.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}}, foreign)
    assert "not a deepclust checkpoint" in one_error_line(deepclust("--resume", str(foreign)))


def test_a_checkpoint_of_another_method_is_refused(deepclust, kmeans_checkpoint, tmp_path):
    spectral = deepclust("method=spectral", "dataset=blobs", "dataset.n_samples=200")
    assert spectral.code == 0, spectral.err
    mixed = tmp_path / "mixed.ckpt"  # a spectral run's config around a kmeans model
    payload = load_checkpoint(kmeans_checkpoint)
    payload["config"] = load_checkpoint(spectral.session() / "checkpoints" / "last.ckpt")["config"]
    torch.save(payload, mixed)
    line = one_error_line(deepclust("--resume", str(mixed)))
    assert f"{mixed}: holds method 'kmeans', not 'spectral'" in line


@pytest.fixture
def files(tmp_path) -> Path:
    rng = np.random.default_rng(0)
    vectors = rng.random((50, 4))
    np.save(tmp_path / "ok.npy", vectors)
    with_nan = vectors.copy()
    with_nan[3, 1], with_nan[7, 2], with_nan[9, 0] = np.nan, np.inf, -np.inf
    np.save(tmp_path / "nan.npy", with_nan)
    np.save(tmp_path / "empty.npy", np.zeros((0, 4)))
    np.save(tmp_path / "cube.npy", np.zeros((5, 4, 3)))
    np.save(tmp_path / "one_class.npy", np.zeros(50, dtype=np.int64))
    np.save(tmp_path / "short_labels.npy", np.arange(40) % 3)
    (tmp_path / "garbage.npy").write_bytes(b"this is not an array")
    return tmp_path


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["dataset.path={d}/nan.npy", "method.n_clusters=2"], 1, "dataset 'features': 3 NaN or inf values in the train split"),
        (["dataset.path={d}/empty.npy", "method.n_clusters=2"], 1, "dataset 'features': the train split is empty"),
        (["dataset.path={d}/cube.npy", "method.n_clusters=2"], 1, "cube.npy: features must be a 2-D array (samples × features), got shape (5, 4, 3)"),
        (["dataset.path={d}/ok.npy", "dataset.labels={d}/one_class.npy"], 1, "dataset 'features': its labels hold a single class"),
        (["dataset.path={d}/ok.npy", "dataset.labels={d}/short_labels.npy", "method.n_clusters=3"], 1, "labels"),
        (["dataset.path={d}/ok.npy"], 2, "dataset 'features' has no labels to count classes from; set method.n_clusters=K"),
        (["dataset.path={d}/ok.npy", "method.n_clusters=51"], 1, "50 samples cannot form n_clusters=51 clusters"),
        (["dataset.path={d}/garbage.npy", "method.n_clusters=2"], 1, "garbage.npy: not a readable .npy array"),
        (["dataset.path={d}/absent.npy", "method.n_clusters=2"], 1, "features file not found"),
    ],
)
def test_unusable_data_is_one_line_before_any_training(deepclust, files, tmp_path, args, code, message):
    result = deepclust("method=spectralnet", "dataset=features", *(arg.format(d=files) for arg in args))
    assert message in one_error_line(result, code)
    assert not list((tmp_path / "outputs").rglob("*.ckpt"))  # nothing was trained


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_good_checkpoint(deepclust, tmp_path):
    result = deepclust(
        "method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "method.ae.enabled=true", "method.ae.epochs=2",
        "method.ae.hidden=[16]", "method.ae.code_dim=4", "method.spectral.lr=1e30", "method.spectral.min_lr=0", "trainer.checkpoint_min_seconds=0",
    )
    assert result.code == 1, result.err
    line = result.err.strip().splitlines()[-1]  # after the progress lines of the stages that ran
    assert "spectral epoch" in line and "the training loss became nan; stopped without saving the diverged model" in line
    kept = Path(line.split("the last good checkpoint is ", 1)[1].split(";", 1)[0])
    payload = load_checkpoint(kept)
    nets = payload["method"]["state"]["nets"]
    assert all(torch.isfinite(tensor).all() for net in nets.values() for tensor in net.values())
    assert payload["progress"]["stage"] in ("ae", "spectral")
    assert f"resume with: deepclust --resume {kept}" in line


@pytest.mark.parametrize(
    "override, message",
    [
        ("method.spectral.lr=inf", "method: lr must be a finite number, got inf"),
        ("trainer.momentum=nan", "trainer: momentum must be a finite number, got nan"),
        ("method.alpha=inf", "method: alpha must be a finite number, got inf"),
    ],
)
def test_non_finite_numbers_in_the_config_are_refused(deepclust, override, message):
    # inf passes "> 0" checks; found by the fuzzer as a NaN embedding reaching k-means
    result = deepclust("method=spectralnet_ae", "dataset=blobs", "dataset.n_samples=100", override)
    assert message in one_error_line(result, 2)


@pytest.mark.parametrize("override, says", [
    ("seed=1099511627776", "seed must be in [0, 2**32)"),  # 2**40: scikit-learn's traceback before
    ("seed=18446744073709551616", "seed must be in [0, 2**32)"),  # 2**64: torch's traceback before
    ("dataset.n_samples=1000000000", "points need about 44.7 GiB to generate"),  # the OOM killer before
    ("dataset.n_samples=18446744073709551616", "points need about"),  # a segmentation fault before
    ("name=../../etc", "name must be a non-empty label without '/'"),  # left an empty <ts>_.. folder before
])
def test_numbers_too_large_to_run_are_one_line_before_anything_runs(deepclust, tmp_path, override, says, monkeypatch):
    from deepclust_cli.data import config as data_config

    monkeypatch.setattr(data_config, "_physical_memory", lambda: 24 * 2**30)  # the figure in the message, on any machine
    line = one_error_line(deepclust("method=kmeans", "dataset=blobs", override), code=2)
    assert says in line
    assert not (tmp_path / "outputs").exists()


def test_resume_from_a_session_folder_points_at_its_checkpoint(deepclust, kmeans_checkpoint):
    session = kmeans_checkpoint.parent.parent
    line = one_error_line(deepclust("--resume", str(session), "--test-only"))
    assert line == f"deepclust: error: {session} is a folder, not a checkpoint; resume from {kmeans_checkpoint}"
