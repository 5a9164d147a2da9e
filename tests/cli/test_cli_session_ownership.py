"""A session folder belongs to one process (issue 19): a checkpoint outside a session resumes in a
new one, a second writer is refused by the folder's lock before it changes anything, --test-only of
a live session leaves it alone, sweep jobs never share a folder, and a refused resume changes nothing."""

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from deepclust_cli.cli import folder_name
from deepclust_cli.engine.lock import SessionLock, holder_of
from deepclust_cli.errors import SessionBusy
from faults import files_of

KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=200"]


@pytest.fixture
def trained(deepclust) -> Path:
    result = deepclust(*KMEANS)
    assert result.code == 0, result.err
    return result.session()


class LockHolder:
    """Another process holding a session's lock, as a live run does."""

    def __init__(self, session: Path) -> None:
        code = textwrap.dedent(
            f"""
            import sys, time
            from deepclust_cli.engine.lock import SessionLock
            lock = SessionLock({str(session)!r})
            lock.acquire()
            print("held", flush=True)
            sys.stdin.read()
            """
        )
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout.readline().strip() == "held"

    def __enter__(self) -> "LockHolder":
        return self

    def __exit__(self, *exc) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def test_a_checkpoint_outside_a_session_resumes_and_tests_in_a_new_session(deepclust, trained, tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    (downloads / "notes.txt").write_text("mine\n")
    copied = downloads / "model.ckpt"
    copied.write_bytes((trained / "checkpoints" / "last.ckpt").read_bytes())
    before_downloads, before_home = files_of(downloads), sorted(p.name for p in tmp_path.iterdir())
    for flags in (["--test-only"], []):
        result = deepclust("--resume", str(copied), *flags)
        assert result.code == 0, result.err
        session = result.session()
        assert (tmp_path / "outputs") in session.parents and session != trained
        assert (session / ("metrics_test.json" if flags else "metrics.json")).is_file()
    assert files_of(downloads) == before_downloads
    assert sorted(p.name for p in downloads.iterdir()) == ["model.ckpt", "notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before_home


def test_a_second_writer_is_refused_by_the_lock_and_changes_nothing(deepclust, trained):
    checkpoint = trained / "checkpoints" / "last.ckpt"
    partial = trained / "checkpoints" / ".last.ckpt.inflight.tmp"
    partial.write_bytes(b"a write in progress")
    before = files_of(trained)
    with LockHolder(trained) as holder:
        assert holder_of(trained) == f"process {holder.process.pid} on {socket.gethostname()}"
        result = deepclust("--resume", str(checkpoint))
        assert result.code == 1
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and f"is in use by process {holder.process.pid}" in lines[0], result.err
        assert files_of(trained) == before  # the in-flight write included
    assert holder_of(trained) is None  # released when its holder exits


def test_test_only_of_a_live_session_writes_its_results_elsewhere(deepclust, trained, tmp_path):
    partial = trained / "checkpoints" / ".last.ckpt.inflight.tmp"
    partial.write_bytes(b"a write in progress")
    before = files_of(trained)
    with LockHolder(trained):
        result = deepclust("--resume", str(trained / "checkpoints" / "last.ckpt"), "--test-only")
    assert result.code == 0, result.err
    assert "in use by process" in result.out + result.err
    assert files_of(trained) == before
    elsewhere = result.session()
    assert elsewhere != trained and (elsewhere / "metrics_test.json").is_file()


def test_only_the_lock_holder_removes_leftover_partial_writes(deepclust, trained):
    partial = trained / "checkpoints" / ".last.ckpt.killed.tmp"
    partial.write_bytes(b"cut short by a kill")
    result = deepclust("--resume", str(trained / "checkpoints" / "last.ckpt"))
    assert result.code == 0, result.err
    assert not partial.exists()


def test_the_lock_refuses_a_second_holder_in_one_process_too(tmp_path):
    first, second = SessionLock(tmp_path), SessionLock(tmp_path)
    first.acquire()
    with pytest.raises(SessionBusy, match="in use by process"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_lossy_folder_names_get_a_digest_so_distinct_overrides_never_share_a_folder():
    a, b = folder_name("dataset.path=/tmp/a/s.csv"), folder_name("dataset.path=/tmp/a_s.csv")
    assert a != b and a.startswith("dataset.path=_tmp_a_s.csv-") and b.startswith("dataset.path=_tmp_a_s.csv-")
    assert folder_name("method.alpha=0.1,seed=0") == "method.alpha=0.1,seed=0"  # a lossless name stays as it is


def test_a_sweep_over_paths_that_clean_alike_runs_every_job(deepclust, tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir()
    paths = [tmp_path / "a" / "s.csv", tmp_path / "a_s.csv"]
    for path, shift in zip(paths, (0.0, 50.0)):
        np.savetxt(path, rng.normal(size=(60, 2)) + shift, delimiter=",")
    result = deepclust("-m", "method=kmeans", "method.n_clusters=2", "dataset=features", f"dataset.path={paths[0]},{paths[1]}")
    assert result.code == 0, result.err
    sweep = result.session().parent
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert len(jobs) == 2
    recorded = sorted(next(o for o in yaml.safe_load((job / "overrides.yaml").read_text()) if o.startswith("dataset.path=")) for job in jobs)
    assert recorded == sorted(f"dataset.path={path}" for path in paths)


def test_a_job_folder_holding_other_overrides_is_never_taken_for_the_job(deepclust, tmp_path):
    first = deepclust("-m", *KMEANS, "seed=0")
    assert first.code == 0, first.err
    job = first.session()
    (job / "overrides.yaml").write_text(yaml.safe_dump(["method=kmeans", "seed=7"]))
    again = deepclust("-m", *KMEANS, "seed=0")
    assert again.code == 1
    assert "holds another job" in again.err and "finished in an earlier run" not in again.err


def test_a_sweep_value_listed_twice_is_said_to_run_once(deepclust):
    result = deepclust("-m", *KMEANS, "seed=0,0")
    assert result.code == 0, result.err
    assert "seed=0,0 lists 0 twice; that job runs once" in result.err


def test_a_sweep_job_another_process_runs_is_reported_not_retrained(deepclust):
    first = deepclust("-m", *KMEANS, "seed=0")
    assert first.code == 0, first.err
    job = first.session()
    run = yaml.safe_load((job / "run.json").read_text())
    (job / "run.json").write_text(yaml.safe_dump({**run, "status": "running"}))  # as while it trains
    before = files_of(job)
    with LockHolder(job) as holder:
        again = deepclust("-m", *KMEANS, "seed=0")
    assert again.code == 1
    assert f"is being run by process {holder.process.pid}" in again.err and "not retrained" in again.err
    assert files_of(job) == before


TINY_SPECTRALNET = ["method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "dataset.n_classes=3",
                    "method.spectral.hidden=[16]", "method.spectral.epochs=2", "method.spectral.batch_size=100"]


@pytest.mark.parametrize("change, expected", [
    ("method.spectral.hidden=[32]", "does not fit this config: method.spectral.hidden=[32] (trained with [16])"),
    ("dataset.n_samples=500", "training had finished on other data (dataset.n_samples differ)"),
])
def test_a_refused_resume_changes_nothing_and_says_why_in_one_line(deepclust, change, expected):
    trained = deepclust(*TINY_SPECTRALNET)
    assert trained.code == 0, trained.err
    session = trained.session()
    before = files_of(session)
    result = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), change)
    lines = result.err.strip().splitlines()
    assert result.code == 1 and len(lines) == 1 and expected in lines[0], result.err
    assert files_of(session) == before  # config.yaml, overrides.yaml, run.json ("completed"), log.txt, metrics.json


def test_test_only_on_data_of_another_width_is_one_line(deepclust, trained):
    result = deepclust("--resume", str(trained / "checkpoints" / "last.ckpt"), "--test-only", "dataset.n_features=5")
    lines = result.err.strip().splitlines()
    assert result.code == 1 and lines == ["deepclust: error: kmeans: the model was trained on samples of 2 features; this data has 5"]
