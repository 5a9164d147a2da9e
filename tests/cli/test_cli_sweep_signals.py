"""Signals are never swallowed (issue 19, item 4): SIGTERM to a joblib-launched sweep reaches its
workers, which checkpoint and stop; one that lands between sweep jobs stops the sweep; one that
lands during a run's final evaluation ends the command with 143 after the run completed."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import deepclust_cli.run

KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=200"]
# about 5 s of training per job, with a checkpoint at every epoch end
SLOW_SPECTRALNET = ["method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "dataset.n_classes=3", "method.spectral.hidden=[16]",
                    "method.spectral.batch_size=100", "method.spectral.epochs=150", "method.spectral.patience=1000",
                    "trainer.checkpoint_min_seconds=0"]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie child of nobody's is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True


def test_sigterm_to_a_parallel_sweep_stops_its_workers_at_a_checkpoint_and_a_rerun_finishes(tmp_path):
    command = [str(Path(sys.executable).with_name("deepclust")), "-m", *SLOW_SPECTRALNET, "seed=0,1,2,3",
               "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"output_dir={tmp_path}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    sweep_root = tmp_path / "multirun"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # until both workers train: two job folders with a checkpoint
        checkpoints = list(sweep_root.glob("*/*/checkpoints/last.ckpt"))
        if len(checkpoints) >= 2:
            break
        assert process.poll() is None, process.communicate()
        time.sleep(0.2)
    else:
        raise AssertionError("the workers never checkpointed")
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=240)
    assert process.returncode == 143, err
    assert "sweep stopped by SIGTERM" in err
    sweep = next(sweep_root.iterdir())
    runs = {job.name: json.loads((job / "run.json").read_text()) for job in sweep.iterdir() if (job / "run.json").is_file()}
    assert runs and all(run["status"] in ("interrupted", "completed") for run in runs.values()), runs
    assert any(run["status"] == "interrupted" for run in runs.values())
    assert not any(alive(run["pid"]) for run in runs.values())  # no orphan trains on
    assert (sweep / "summary.md").is_file()
    again = subprocess.run(command, capture_output=True, text=True, env=env, timeout=400)
    assert again.returncode == 0, again.stderr
    finished = [json.loads((job / "run.json").read_text())["status"] for job in sweep.iterdir() if job.is_dir()]
    assert finished == ["completed"] * 4


def test_a_sigterm_between_sweep_jobs_stops_the_sweep(deepclust, monkeypatch, tmp_path):
    original = deepclust_cli.run.run
    calls = []

    def run_then_signal(*args, **kwargs):
        calls.append(1)
        metrics = original(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # lands after the job's session closed: between jobs
        return metrics

    monkeypatch.setattr(deepclust_cli.run, "run", run_then_signal)
    result = deepclust("-m", *KMEANS, "seed=0,1,2")
    assert result.code == 143, result.err
    assert len(calls) == 1
    assert "sweep stopped by SIGTERM" in result.err
    sweep = next((tmp_path / "outputs" / "multirun").iterdir())
    assert [p.name for p in sweep.iterdir() if p.is_dir()] == ["dataset.n_samples=200,dataset=blobs,method=kmeans,seed=0"]


def test_a_sigterm_during_the_final_evaluation_is_not_swallowed(deepclust, monkeypatch, tmp_path):
    from deepclust_cli.methods.kmeans.method import KMeans

    original = KMeans.evaluate

    def evaluate_under_a_signal(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "evaluate", evaluate_under_a_signal)
    result = deepclust(*KMEANS)
    assert result.code == 143, result.err
    assert "SIGTERM arrived during the final evaluation; the run completed first" in result.err
    session = next((tmp_path / "outputs" / "kmeans" / "blobs").iterdir())
    assert json.loads((session / "run.json").read_text())["status"] == "completed"
    assert (session / "metrics.json").is_file()
