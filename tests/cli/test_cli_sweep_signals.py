"""Signals are never swallowed (issue 19, item 4): SIGTERM to a joblib-launched sweep reaches its
workers, which checkpoint and stop; one that lands between sweep jobs stops the sweep; one that
lands during a run's final evaluation ends the command with 143 after the run completed."""

import json
import os
import signal

import deepclust_cli.run
from faults import sigterm_to_a_parallel_sweep

KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=200"]


def test_sigterm_to_a_parallel_sweep_stops_its_workers_at_a_checkpoint_and_a_rerun_finishes(tmp_path):
    outcome = sigterm_to_a_parallel_sweep(tmp_path)
    assert outcome.survived, f"{outcome.lost}: {outcome.detail}"


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
