import os
import pickle

import pytest
import torch

from conftest import write_hostile_checkpoint
from deepclust_cli.engine import atomic
from deepclust_cli.engine.checkpoint import FORMAT, load_checkpoint, save_checkpoint, session_dir_of
from deepclust_cli.errors import CheckpointError


def test_round_trip_keeps_tensors_and_plain_values(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    payload = {"method": {"name": "kmeans", "state": {"centers": torch.arange(6.0).view(2, 3)}}, "progress": {"epoch": 3}}
    save_checkpoint(path, payload)
    loaded = load_checkpoint(path)
    assert loaded["format"] == FORMAT
    assert loaded["package_version"]
    assert "git_sha" in loaded and "created" in loaded
    assert torch.equal(loaded["method"]["state"]["centers"], payload["method"]["state"]["centers"])
    assert loaded["progress"] == {"epoch": 3}
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temp file left behind


def test_mmap_load_reads_metadata(tmp_path):
    path = tmp_path / "a.ckpt"
    save_checkpoint(path, {"config": {"seed": 4}, "state": torch.zeros(1000)})
    assert load_checkpoint(path, mmap=True)["config"] == {"seed": 4}


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"progress": {"epoch": 1}})

    def explode(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as if the process were interrupted mid-write

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"progress": {"epoch": 2}})
    monkeypatch.undo()
    assert load_checkpoint(path)["progress"] == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_checkpoint_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    path = write_hostile_checkpoint(tmp_path / "evil.ckpt", marker)
    with pytest.raises(CheckpointError, match="refused to load") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)
    assert str(path) in str(error.value)
    assert not marker.exists()


def test_plain_pickle_file_is_refused(tmp_path):
    path = tmp_path / "legacy.ckpt"
    path.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


def test_truncated_checkpoint_fails_with_one_line(tmp_path):
    path = tmp_path / "last.ckpt"
    save_checkpoint(path, {"state": torch.randn(1000)})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt") as error:
        load_checkpoint(path)
    assert "\n" not in str(error.value)


def test_foreign_torch_file_is_not_a_deepclust_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"layer.weight": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a deepclust checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.ckpt")


def test_session_dir_of_is_the_session_only_for_a_checkpoint_inside_one(tmp_path):
    session = tmp_path / "run"
    (session / "checkpoints").mkdir(parents=True)
    assert session_dir_of(session / "checkpoints" / "last.ckpt") is None  # no run.json: not a session
    (session / "run.json").write_text("{}")
    assert session_dir_of(session / "checkpoints" / "last.ckpt") == session
    assert session_dir_of(session / "model.ckpt") is None  # not in checkpoints/: its grandparent is no session


def test_atomic_write_text_replaces(tmp_path):
    path = tmp_path / "m.json"
    atomic.atomic_write_text(path, "one")
    atomic.atomic_write_text(path, "two")
    assert path.read_text() == "two"


def test_atomic_files_get_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    finally:
        os.umask(old)
    assert (tmp_path / "config.yaml").stat().st_mode & 0o777 == 0o644
