"""Sweeps: folders named by overrides, reruns that keep finished jobs and continue unfinished
ones, parallel jobs through the joblib launcher, and the SLURM launcher's config."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SimulatedCrash
from deepclust_cli.cli import folder_name, job_gpus
from deepclust_cli.engine.session import Session

BLOBS_SWEEP = ["-m", "method=kmeans", "dataset=blobs", "dataset.n_samples=300", "seed=0,1"]
BLOBS_JOBS = [f"dataset.n_samples=300,dataset=blobs,method=kmeans,seed={seed}" for seed in (0, 1)]


def job_folders(sweep: Path) -> list[str]:
    return sorted(p.name for p in sweep.iterdir() if p.is_dir())


def test_sweep_folders_are_named_by_overrides_and_a_rerun_keeps_finished_jobs(deepclust, tmp_path):
    first = deepclust(*BLOBS_SWEEP)
    assert first.code == 0, first.err
    sweep = first.session().parent
    assert sweep == tmp_path / "outputs" / "multirun" / "dataset.n_samples=300+dataset=blobs+method=kmeans+seed=0,1"
    assert job_folders(sweep) == BLOBS_JOBS
    written = {job: (sweep / job / "metrics.json").stat().st_mtime_ns for job in BLOBS_JOBS}
    again = deepclust("-m", "seed=0,1", "dataset.n_samples=300", "method=kmeans", "dataset=blobs")  # same sweep, reordered
    assert again.code == 0, again.err
    assert again.err.count("finished in an earlier run of this sweep; kept") == 2
    assert {job: (sweep / job / "metrics.json").stat().st_mtime_ns for job in BLOBS_JOBS} == written
    assert job_folders(sweep) == BLOBS_JOBS
    assert "| 1/1 |" not in (sweep / "summary.md").read_text()  # one configuration over two seeds
    assert "| 2/2 |" in (sweep / "summary.md").read_text()


def test_a_named_sweep_uses_its_name(deepclust, tmp_path):
    result = deepclust(*BLOBS_SWEEP, "name=baseline")
    assert result.code == 0, result.err
    assert result.session().parent == tmp_path / "outputs" / "multirun" / "baseline"
    assert job_folders(result.session().parent) == BLOBS_JOBS  # the name is not part of the job folders


def test_an_interrupted_sweep_continues_from_the_checkpoints_when_run_again(deepclust, monkeypatch, tmp_path, tiny_spectralnet_ae):
    sweep_args = ["-m", *tiny_spectralnet_ae, "seed=0,1"]
    reference = deepclust(*sweep_args, f"output_dir={tmp_path / 'reference'}", output_dir=False)
    assert reference.code == 0, reference.err
    reference_sweep = reference.session().parent
    expected = {job: json.loads((reference_sweep / job / "metrics.json").read_text()) for job in job_folders(reference_sweep)}

    save = Session.checkpoint

    def crash_in_the_second_job(self, method, progress, **kwargs):
        save(self, method, progress, **kwargs)
        if self.settings.seed == 1:
            raise SimulatedCrash(progress)

    monkeypatch.setattr(Session, "checkpoint", crash_in_the_second_job)
    with pytest.raises(SimulatedCrash):
        deepclust(*sweep_args, f"output_dir={tmp_path / 'crashed'}", output_dir=False)
    monkeypatch.setattr(Session, "checkpoint", save)
    sweep = tmp_path / "crashed" / "multirun" / reference_sweep.name
    first, second = job_folders(sweep)
    assert json.loads((sweep / second / "run.json").read_text())["status"] == "failed"
    finished_at = (sweep / first / "metrics.json").stat().st_mtime_ns

    again = deepclust(*sweep_args, f"output_dir={tmp_path / 'crashed'}", output_dir=False)
    assert again.code == 0, again.err
    assert f"job {first} finished in an earlier run of this sweep; kept" in again.err
    assert f"job {second} continues from {sweep / second / 'checkpoints' / 'last.ckpt'}" in again.err
    assert (sweep / first / "metrics.json").stat().st_mtime_ns == finished_at
    assert json.loads((sweep / second / "run.json").read_text())["mode"] == "resume"
    assert {job: json.loads((sweep / job / "metrics.json").read_text()) for job in (first, second)} == expected


def test_the_joblib_launcher_runs_jobs_in_worker_processes(tmp_path):
    command = [str(Path(sys.executable).with_name("deepclust")), *BLOBS_SWEEP, "hydra/launcher=parallel", f"output_dir={tmp_path}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err
    sweep = tmp_path / "multirun" / "dataset.n_samples=300+dataset=blobs+method=kmeans+seed=0,1"
    runs = [json.loads((sweep / job / "run.json").read_text()) for job in BLOBS_JOBS]
    assert all(run["status"] == "completed" for run in runs)
    assert all(run["pid"] != process.pid for run in runs)  # run by joblib's worker processes
    assert "| 2/2 |" in (sweep / "summary.md").read_text()


def test_parallel_jobs_take_gpus_round_robin():
    assert [job_gpus([0, 1], number) for number in range(4)] == [[0], [1], [0], [1]]
    assert job_gpus([], 3) == []


def test_folder_names_stay_short_and_distinct():
    assert folder_name("method.alpha=0.1,seed=0") == "method.alpha=0.1,seed=0"
    assert folder_name("data_dir=/mnt/data x").startswith("data_dir=_mnt_data_x-")  # cleaned: a digest follows
    long_a, long_b = "a=" + "x" * 300, "a=" + "x" * 299 + "y"
    assert len(folder_name(long_a)) == 120 and folder_name(long_a) != folder_name(long_b)
    assert folder_name("") == "default"


def test_the_slurm_launcher_config_renders(deepclust):
    result = deepclust("hydra/launcher=slurm", "hydra.launcher.partition=gpu", "--cfg", "hydra", output_dir=False)
    assert result.code == 0, result.err
    assert "_target_: hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in result.out
    assert "partition: gpu" in result.out and "max_num_timeout: 3" in result.out
    combined = deepclust("-m", "hydra/launcher=slurm", "--cfg", "hydra", output_dir=False)
    assert combined.code == 2 and "--cfg and --multirun cannot be combined" in combined.err
