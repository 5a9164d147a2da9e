"""End-to-end runs through the CLI, in-process (fast) and as a console script (exit codes)."""

import json

import pytest
import torch
import yaml

from conftest import SHARED_DATA, run_deepclust_process
from deepclust_cli.engine.checkpoint import load_checkpoint

SESSION_FILES = {"config.yaml", "overrides.yaml", "log.txt", "run.json", "metrics.json", "tb", "checkpoints", "plots"}


def test_kmeans_on_blobs_writes_a_complete_session(deepclust):
    result = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=2000")
    assert result.code == 0, result.err
    session = result.session()
    assert session.parent.parent.name == "kmeans" and session.parent.name == "blobs"
    assert SESSION_FILES <= {p.name for p in session.iterdir()}
    metrics = json.loads((session / "metrics.json").read_text())
    assert {key: metrics[key] for key in ("acc", "nmi", "ari")} == {"acc": 1.0, "nmi": 1.0, "ari": 1.0}
    assert metrics["cluster_sizes"] == [400] * 5 and metrics["clusters_used"] == 5 and metrics["silhouette"] > 0.7
    assert "metrics: acc=1.0000  nmi=1.0000  ari=1.0000" in result.out
    config = yaml.safe_load((session / "config.yaml").read_text())
    assert config["method"]["n_clusters"] == 5 and config["dataset"]["n_samples"] == 2000  # resolved
    assert yaml.safe_load((session / "overrides.yaml").read_text())[:2] == ["method=kmeans", "dataset=blobs"]
    assert json.loads((session / "run.json").read_text())["status"] == "completed"
    assert list((session / "tb").glob("events.out.tfevents.*"))
    assert (session / "plots" / "confusion_matrix.png").stat().st_size > 1000
    checkpoint = load_checkpoint(session / "checkpoints" / "last.ckpt")
    assert checkpoint["progress"]["done"] is True
    assert checkpoint["method"]["name"] == "kmeans" and checkpoint["config"]["seed"] == 0
    assert checkpoint["overrides"][:2] == ["method=kmeans", "dataset=blobs"]
    assert "log.txt" and "k-means: inertia" in (session / "log.txt").read_text()


def test_test_only_rebuilds_from_the_checkpoint_alone(deepclust):
    trained = deepclust("method=spectral", "dataset=circles", "dataset.n_samples=1500", "seed=3")
    assert trained.code == 0, trained.err
    session = trained.session()
    checkpoint = session / "checkpoints" / "last.ckpt"
    tested = deepclust("--resume", str(checkpoint), "--test-only", output_dir=False)
    assert tested.code == 0, tested.err
    assert tested.session() == session
    expected = json.loads((session / "metrics.json").read_text())
    assert json.loads((session / "metrics_test.json").read_text()) == expected
    assert "spectral: " not in tested.out.split("resumed from", 1)[1]  # nothing was fitted again
    assert (session / "plots" / "confusion_matrix_test.png").exists()
    assert json.loads((session / "run_test.json").read_text())["mode"] == "test"


def test_test_only_overrides_still_apply(deepclust):
    trained = deepclust("method=spectral", "dataset=twomoons", "dataset.n_samples=1000", "dataset.n_test=200",
                        "dataset.split=train_test")
    assert trained.code == 0, trained.err
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    tested = deepclust(f"--resume={checkpoint}", "--test-only", "method.predict_neighbors=7", output_dir=False)
    assert tested.code == 0, tested.err
    assert "resumed from" in tested.out
    bad = deepclust(f"--resume={checkpoint}", "--test-only", "method.predict_neighbors=0", output_dir=False)
    assert bad.code == 2 and "predict_neighbors must be >= 1" in bad.err


def test_resume_of_a_finished_run_evaluates_again_without_training(deepclust):
    trained = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=500")
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    resumed = deepclust("--resume", str(checkpoint), output_dir=False)
    assert resumed.code == 0, resumed.err
    assert resumed.session() == trained.session()
    assert "training had already finished" in resumed.out


def test_restart_continues_in_a_new_session_folder(deepclust):
    trained = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=500")
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    restarted = deepclust("--resume", str(checkpoint), "restart=true", f"output_dir={trained.session().parents[2]}",
                          output_dir=False)
    assert restarted.code == 0, restarted.err
    assert restarted.session() != trained.session()
    assert restarted.session().parent == trained.session().parent
    assert json.loads((restarted.session() / "metrics.json").read_text())["acc"] == 1.0


def test_named_run_gets_a_suffix(deepclust):
    result = deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=300", "name=baseline")
    assert result.code == 0
    assert result.session().name.endswith("_baseline")


def test_an_escaped_interpolation_stays_text_in_run_resume_test_and_predict(deepclust, tmp_path):
    # Hydra resolves a value's escaped \${...} once; each later read (the run folder's name, the stored
    # config of a resume, the session path) must not take the text ${b} for an interpolation again.
    import numpy as np

    features = tmp_path / "a${b}.npy"
    np.save(features, np.random.default_rng(0).normal(size=(200, 3)).astype(np.float32))
    trained = deepclust("method=kmeans", "dataset=features", "dataset.path=" + str(features).replace("${", "\\${"),
                        "dataset.n_classes=2", "name=n\\${x}")
    assert trained.code == 0, trained.err
    assert trained.session().name.endswith("_n${x}")
    assert yaml.safe_load((trained.session() / "config.yaml").read_text())["dataset"]["path"] == str(features)
    checkpoint = trained.session() / "checkpoints" / "last.ckpt"
    for extra in ([], ["--test-only"], ["--predict"]):
        again = deepclust("--resume", str(checkpoint), *extra, output_dir=False)
        assert again.code == 0, (extra, again.err)
        assert again.session().name.endswith("_n${x}")


def test_sweep_writes_one_session_per_job_and_a_summary(deepclust):
    result = deepclust("-m", "method=kmeans,spectral", "dataset=blobs,circles", "dataset.n_samples=600")
    assert result.code == 0, result.err
    sweep = result.session().parent
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [
        f"dataset.n_samples=600,dataset={dataset},method={method}" for dataset in ("blobs", "circles") for method in ("kmeans", "spectral")
    ]
    ranking, jobs = (sweep / "summary.md").read_text().split("## jobs\n\n")
    assert "ranked by acc, highest first (one job per configuration)" in ranking
    assert ranking.splitlines()[4].startswith("| rank | method | dataset | jobs | acc | nmi | ari | seconds |")
    assert ranking.strip().splitlines()[-1].startswith("| 4 | kmeans | circles | 1/1 | 0.5017 |")  # the only one below 1.0
    table = jobs.splitlines()
    assert table[0] == "| job | method | dataset | dataset.n_samples | output_dir | acc | nmi | ari | status | seconds |"
    assert len(table) == 6
    assert table[2].startswith("| dataset.n_samples=600,dataset=blobs,method=kmeans | kmeans | blobs | 600 | ")
    assert table[2].endswith(" | 1.0000 | 1.0000 | 1.0000 | completed | " + table[2].rsplit(" | ", 1)[1])
    assert table[4].split(" | ")[5] == "0.5017"  # k-means cannot separate the circles
    assert table[5].startswith("| dataset.n_samples=600,dataset=circles,method=spectral | spectral | circles | 600 | ")
    assert " | 1.0000 | 1.0000 | 1.0000 | completed" in table[5]
    assert (sweep / "summary.csv").read_text().splitlines()[0].startswith("job,method,dataset,dataset.n_samples,output_dir,acc,nmi,ari")


def test_a_failing_job_does_not_end_the_sweep(deepclust):
    result = deepclust("-m", "method=kmeans", "dataset=blobs", "dataset.n_samples=300", "method.n_init=1,0")
    assert result.code == 1
    assert "job dataset.n_samples=300,dataset=blobs,method.n_init=0,method=kmeans failed: method: n_init must be >= 1, got 0" in result.err
    sweep = result.session().parent
    rows = (sweep / "summary.md").read_text().split("## jobs\n\n")[1].splitlines()[2:]
    assert "failed" in rows[0] and "n_init must be >= 1" in rows[0] and "completed" in rows[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["method=nosuch"], "unknown method 'nosuch'; registered methods: ae_kmeans, and, geocluster, kmeans, lnscc, spectral, spectralnet, spectralnet_ae"),
        (["dataset=cifar11"], "unknown dataset 'cifar11' (did you mean 'cifar10'?); registered datasets:"),
        (["trainer=fast"], "unknown trainer 'fast'; registered trainers: debug, default, gpu"),
        (["seed=abc"], "seed=abc: Value 'abc' of type 'str' could not be converted to Integer"),
        (["trainer.precision=fp8"], "Invalid value 'fp8', expected one of [fp32, bf16, fp16]"),
        (["method=kmeans", "method.n_init=0"], "method: n_init must be >= 1, got 0"),
        (["--test-only"], "test_only needs a checkpoint: add --resume PATH"),
        (["--resume", "nowhere.ckpt"], "checkpoint not found: nowhere.ckpt"),
        (["dataset=mnist", "data_dir=/nonexistent"], "dataset 'mnist' not found: expected /nonexistent/MNIST/raw/"),
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(deepclust, args, message):
    result = deepclust(*args)
    assert result.code != 0
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("deepclust: error: ")
    assert message in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPUs")
def test_asking_for_a_missing_gpu(deepclust, tmp_path):
    result = deepclust("method=kmeans", "dataset=blobs", "gpus=[0]")
    assert result.code == 2
    assert "gpus=[0] asks for cuda:0 but this machine has no CUDA device; use gpus=[] for the CPU" in result.err
    assert not (tmp_path / "outputs").exists() or not any((tmp_path / "outputs").rglob("*.json"))


def test_unwritable_output_dir(deepclust, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made below a file, even by root
    result = deepclust("method=kmeans", "dataset=blobs", f"output_dir={blocker}/outputs", output_dir=False)
    assert result.code == 1
    assert result.err.strip().splitlines() == [
        f"deepclust: error: {blocker}/outputs/kmeans/blobs/{result.err.split('/blobs/')[1].split(':')[0]}: Not a directory"
    ]


def test_bare_deepclust_is_spectralnet_on_two_moons(deepclust):
    result = deepclust()
    assert result.code == 0, result.err
    assert result.session().parent.parent.name == "spectralnet" and result.session().parent.name == "twomoons"
    assert json.loads((result.session() / "metrics.json").read_text())["acc"] == 1.0


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="real MNIST not present")
def test_kmeans_on_real_mnist_subset(deepclust):
    result = deepclust("method=kmeans", "dataset=mnist", f"data_dir={SHARED_DATA}", "dataset.max_samples=3000",
                       "method.n_init=2")
    assert result.code == 0, result.err
    metrics = json.loads((result.session() / "metrics.json").read_text())
    assert 0.4 < metrics["acc"] < 0.75 and 0.3 < metrics["nmi"] < 0.7


def test_console_script_exit_codes_and_help(tmp_path):
    bad = run_deepclust_process("method=nosuch", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "deepclust: error: unknown method 'nosuch'; registered methods: ae_kmeans, and, geocluster, kmeans, lnscc, spectral, spectralnet, spectralnet_ae"
    assert not (tmp_path / "outputs").exists()
    usage = run_deepclust_process("--help", cwd=tmp_path)
    assert usage.returncode == 0
    assert "--resume PATH" in usage.stdout and "method: ae_kmeans, and, geocluster, kmeans, lnscc, spectral, spectralnet" in usage.stdout
    job = run_deepclust_process("--cfg", "job", "method=kmeans", cwd=tmp_path)
    assert job.returncode == 0 and "name: kmeans" in job.stdout
