"""A full disk, injected at the write (issue 19, item 6; tests/test_reliability.py runs the same on a
real small tmpfs where the machine allows): one line that says the disk is full and names the last
good checkpoint, run.json saying what happened, and nothing half-written left behind."""

import errno
import json
import logging
import os
import shlex
import threading
from pathlib import Path

import pytest

from deepclust_cli import cli
from deepclust_cli.engine import checkpoint as checkpoint_module
from deepclust_cli.engine import disk
from deepclust_cli.engine.checkpoint import load_checkpoint
from deepclust_cli.engine.disk import QuietDiskFullThreads, SpaceReserve, disk_full_cause, is_disk_full
from deepclust_cli.engine.session import LogFile

SPECTRALNET = [
    "method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "dataset.n_classes=3", "method.spectral.hidden=[16]",
    "method.spectral.epochs=4", "method.spectral.batch_size=100", "trainer.checkpoint_min_seconds=0", "trainer.deterministic=true",
]
KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=200"]


def no_space() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_checkpoint_write(monkeypatch, number: int) -> None:
    """The ``number``-th checkpoint write meets a full disk, inside the atomic write as a real one would."""
    real, calls = checkpoint_module.atomic_write, []

    def atomic_write(path, write):
        calls.append(path)
        if len(calls) == number:
            def write(file):
                file.write(b"partial")
                raise no_space()
        real(path, write)

    monkeypatch.setattr(checkpoint_module, "atomic_write", atomic_write)


def error_line(result) -> str:
    lines = result.err.strip().splitlines()
    assert result.code == 1 and lines, result.err
    assert "Traceback" not in result.err and "Logging error" not in result.err
    return lines[-1]


def sessions(root: Path) -> list[Path]:
    return sorted(path.parent for path in root.rglob("run.json"))


def test_a_checkpoint_write_on_a_full_disk_is_one_line_and_the_previous_checkpoint_resumes(deepclust, monkeypatch, tmp_path):
    fail_checkpoint_write(monkeypatch, 2)
    line = error_line(deepclust(*SPECTRALNET))
    assert line.startswith("deepclust: error: disk full writing checkpoints/last.ckpt in ")
    assert "its last good checkpoint checkpoints/last.ckpt is intact; free space, then run: deepclust --resume " in line
    [session] = sessions(tmp_path / "outputs")
    record = json.loads((session / "run.json").read_text())
    assert record["status"] == "failed" and record["error"] == line.removeprefix("deepclust: error: ")
    assert load_checkpoint(session / "checkpoints" / "last.ckpt")["progress"]["epoch"] >= 0  # whole: CRC-checked
    assert not list(session.rglob(".*.tmp")) and not (session / ".reserve").exists()
    monkeypatch.undo()
    resumed = deepclust(*shlex.split(line.split("then run: deepclust ", 1)[1]))
    assert resumed.code == 0, resumed.err
    assert json.loads((session / "run.json").read_text())["status"] == "completed"
    assert (session / "metrics.json").is_file()


def test_a_full_disk_before_the_first_checkpoint_says_there_is_none(deepclust, monkeypatch, tmp_path):
    fail_checkpoint_write(monkeypatch, 1)
    line = error_line(deepclust(*SPECTRALNET))
    assert "before its first checkpoint; free space and run the command again" in line
    [session] = sessions(tmp_path / "outputs")
    assert json.loads((session / "run.json").read_text())["status"] == "failed"
    assert not (session / "checkpoints" / "last.ckpt").exists()


def test_a_full_disk_while_writing_the_results_keeps_the_finished_model(deepclust, monkeypatch, tmp_path):
    from deepclust_cli import plots

    def full(path, write):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(plots, "atomic_write", full)
    line = error_line(deepclust(*KMEANS))
    assert "disk full writing plots/" in line and "its last good checkpoint checkpoints/last.ckpt is intact" in line
    [session] = sessions(tmp_path / "outputs")
    assert json.loads((session / "run.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    resumed = deepclust(*shlex.split(line.split("then run: deepclust ", 1)[1]))
    assert resumed.code == 0, resumed.err
    assert "training had already finished; evaluating" in resumed.out


def test_no_room_to_open_a_session_leaves_no_folder(deepclust, monkeypatch, tmp_path):
    def fallocate(fd, offset, length):
        raise no_space()

    monkeypatch.setattr(disk.os, "posix_fallocate", fallocate)
    line = error_line(deepclust(*KMEANS))
    assert "disk full" in line and "no room to open the session" in line and "nothing was written" in line
    assert not [path for path in (tmp_path / "outputs").rglob("*") if path.is_file()]


def test_a_resume_on_a_full_disk_changes_nothing(deepclust, monkeypatch, tmp_path):
    assert deepclust(*KMEANS).code == 0
    [session] = sessions(tmp_path / "outputs")
    before = {str(p): p.read_bytes() for p in session.rglob("*") if p.is_file() and p.name != ".lock"}

    def fallocate(fd, offset, length):
        raise no_space()

    monkeypatch.setattr(disk.os, "posix_fallocate", fallocate)
    line = error_line(deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only"))
    assert "no room to open the session" in line
    assert {str(p): p.read_bytes() for p in session.rglob("*") if p.is_file() and p.name != ".lock"} == before


def test_a_full_disk_outside_any_session_is_one_line(monkeypatch, capsys):
    def run_cli(argv):
        raise no_space()  # e.g. Hydra writing a sweep's multirun.yaml

    monkeypatch.setattr(cli, "run_cli", run_cli)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["-m", "seed=0,1"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err.strip() == "deepclust: error: disk full; free space, or set output_dir to a disk with room"


def test_log_lines_the_disk_refuses_are_dropped_without_a_traceback(tmp_path, capsys):
    handler = LogFile(tmp_path / "log.txt", encoding="utf-8")

    class FullStream:
        def write(self, text):
            raise no_space()

        def flush(self):
            pass

        def close(self):
            pass

    handler.stream = FullStream()
    logger = logging.getLogger("test_disk_log_file")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("a line the disk refuses")
        assert capsys.readouterr().err == ""
        handler.stream = type("Broken", (FullStream,), {"write": lambda self, text: 1 / 0})()
        logger.warning("any other failure is still reported")
        assert "Logging error" in capsys.readouterr().err
    finally:
        logger.removeHandler(handler)


def test_a_writer_thread_that_dies_of_a_full_disk_prints_nothing_and_others_still_do(monkeypatch):
    reported = []
    monkeypatch.setattr(threading, "excepthook", lambda args: reported.append(type(args.exc_value).__name__))
    quiet = QuietDiskFullThreads()
    quiet.install()
    try:
        for error in (no_space(), ValueError("a bug")):
            def fail(error=error):
                raise error

            thread = threading.Thread(target=fail)
            thread.start()
            thread.join()
    finally:
        quiet.restore()
    assert reported == ["ValueError"]


def test_only_the_session_that_allocated_the_reserve_frees_it(tmp_path):
    holder, refused = SpaceReserve(tmp_path), SpaceReserve(tmp_path)
    holder.allocate()
    assert holder.path.stat().st_size == disk.RESERVE_BYTES
    refused.free()  # a second writer, refused by the lock, closes without touching it
    assert holder.path.exists()
    holder.free()
    assert not holder.path.exists()


def test_a_disk_full_error_is_found_behind_a_library_exception():
    try:
        try:
            raise no_space()
        except OSError as cause:
            raise RuntimeError("writer failed") from cause
    except RuntimeError as error:
        assert is_disk_full(disk_full_cause(error))
    assert disk_full_cause(RuntimeError("unrelated")) is None
    assert not is_disk_full(OSError(errno.EACCES, "denied"))
