"""Data-parallel runs on the CPU: two gloo processes against one, for SpectralNet and AND, started
by deepclust and by torchrun; one session folder, written by rank 0."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import TINY_AND
from deepclust_cli.engine.checkpoint import load_checkpoint

# Two moons, 2000 points, the presets at batch 500: both runs reach ACC ~1 in 40 epochs.
TWO_MOONS = ["dataset.n_samples=2000", "method.spectral.batch_size=500", "trainer.deterministic=true"]


def only_session(outputs: Path) -> Path:
    sessions = [path.parent for path in outputs.rglob("run.json")]
    assert len(sessions) == 1, sessions
    return sessions[0]


def run_in(deepclust, tmp_path: Path, name: str, *args: str) -> Path:
    result = deepclust(*args, f"output_dir={tmp_path / name}", output_dir=False)
    assert result.code == 0, result.err
    return only_session(tmp_path / name)


def metrics_of(session: Path) -> dict:
    return json.loads((session / "metrics.json").read_text())


@pytest.mark.parametrize("experiment", ["spectralnet_twomoons", "spectralnet_ae_twomoons"])
def test_spectralnet_two_processes_match_one(deepclust, tmp_path, experiment):
    args = [f"experiment={experiment}", *TWO_MOONS]
    one = run_in(deepclust, tmp_path, "one", *args)
    two = run_in(deepclust, tmp_path, "two", *args, "trainer.processes=2")
    assert "data parallel: 2 processes (gloo, started by deepclust)" in (two / "log.txt").read_text()
    assert json.loads((two / "run.json").read_text())["status"] == "completed"
    # The same global batches: the first epochs' losses agree to float noise; Adam then
    # amplifies the last bits, so a few of the 2,000 points may end in the other cluster: ACC
    # agrees within 0.01, NMI and ARI (steep near 1: 0.9965 ACC is NMI 0.97) within 0.05.
    histories = [load_checkpoint(s / "checkpoints" / "last.ckpt")["method"]["state"]["stages"]["spectral"]["loop"]["history"] for s in (one, two)]
    for term in set(histories[0]) - {"lr"}:  # loss, valid, and SpectralNetAE's spectral and reconstruction
        first_epochs = [[value for _, value in history[term][:3]] for history in histories]
        assert first_epochs[1] == pytest.approx(first_epochs[0], rel=1e-4), term
    for key, tolerance in (("acc", 0.01), ("nmi", 0.05), ("ari", 0.05)):
        assert metrics_of(two)[key] == pytest.approx(metrics_of(one)[key], abs=tolerance)
    assert metrics_of(one)["acc"] > 0.99


def test_and_two_processes_match_one_and_rank_zero_keeps_the_session(deepclust, bar_mnist, tmp_path):
    args = [*TINY_AND, f"data_dir={bar_mnist}", "trainer.deterministic=true"]
    one = run_in(deepclust, tmp_path, "one", *args)
    two = run_in(deepclust, tmp_path, "two", *args, "trainer.processes=2")
    # On the CPU each rank normalizes its own half-batch (SyncBatchNorm is CUDA-only), so the
    # runs differ slightly: losses within 5 %, metrics within 0.05.
    losses = [[value for _, value in load_checkpoint(s / "checkpoints" / "last.ckpt")["method"]["state"]["loop"]["history"]["loss"]] for s in (one, two)]
    assert losses[1] == pytest.approx(losses[0], rel=0.05)
    for key in ("acc", "knn_acc"):
        assert metrics_of(two)[key] == pytest.approx(metrics_of(one)[key], abs=0.05)
    assert metrics_of(two)["knn_acc"] > 0.9
    assert {p.name for p in (two / "plots").iterdir()} >= {"rounds.png", "embedding.png", "confusion_matrix.png"}
    assert (two / "checkpoints" / "best.ckpt").is_file()
    tested = deepclust("--resume", str(two / "checkpoints" / "last.ckpt"), "--test-only", output_dir=False)
    assert tested.code == 0, tested.err
    tested, trained = json.loads((two / "metrics_test.json").read_text()), metrics_of(two)
    assert tested.pop("cluster_sizes") == trained.pop("cluster_sizes")
    assert tested == pytest.approx(trained)


def test_torchrun_starts_the_ranks_and_they_share_rank_zeros_session(tmp_path):
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "deepclust_cli", "experiment=spectralnet_twomoons", *TWO_MOONS, "method.spectral.epochs=3", f"output_dir={tmp_path}",
    ]
    process = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr
    session = only_session(tmp_path)
    assert len(list(tmp_path.rglob("*_spectralnet_twomoons"))) == 1  # the other rank's folder was removed
    assert "data parallel: 2 processes (gloo, started by torchrun or SLURM)" in (session / "log.txt").read_text()
    assert set(metrics_of(session)) >= {"acc", "nmi", "ari"}


@pytest.mark.parametrize(
    "args, message",
    [
        (["method=lnscc", "trainer.processes=2"], "method lnscc trains in one process; data parallel .* is built for: and, spectralnet, spectralnet_ae"),
        (["trainer.processes=2", "trainer.backend=nccl"], "trainer.backend=nccl needs GPUs"),
        (["trainer.processes=0"], "trainer: processes must be >= 1, got 0"),
    ],
)
def test_impossible_data_parallel_requests_are_one_line_errors(deepclust, args, message):
    result = deepclust(*args)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1
    assert re.search(message, result.err), result.err
