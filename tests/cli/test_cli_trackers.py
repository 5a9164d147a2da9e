"""The logger group: every tracker records the config as parameters, the scalars the run logs, the
final metrics and the plots, read back here with the tracker's own reader; TensorBoard also keeps
the hyper-parameters for its HParams tab; a tracker whose extra is missing is refused in one line."""

import csv
import json
import subprocess
import sys

import pytest

SMALL_KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=300"]


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_tensorboard_keeps_hyper_parameters_and_final_metrics_for_the_hparams_tab(deepclust):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    result = deepclust(*SMALL_KMEANS, "seed=3")
    assert result.code == 0, result.err
    events = EventAccumulator(str(result.session() / "tb"))
    events.Reload()
    content = events.PluginTagToContent("hparams")
    started = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert started.hparams["method.name"].string_value == "kmeans" and started.hparams["seed"].number_value == 3
    assert started.hparams["dataset.n_samples"].number_value == 300
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    tags = [info.name.tag for info in experiment.metric_infos]
    assert "metrics/acc" in tags and set(tags) <= set(events.Tags()["scalars"])  # each metric has its value beside it
    assert events.Scalars("metrics/acc")[-1].value == 1.0
    assert "plots/confusion_matrix" in events.Tags()["images"]


def test_csv_logger_writes_params_scalars_metrics_and_artifacts(deepclust, tiny_spectralnet_ae):
    result = deepclust(*tiny_spectralnet_ae, "logger=csv", "trainer.log_every=1")
    assert result.code == 0, result.err
    folder = result.session() / "csv"
    params = {row["key"]: row["value"] for row in read_csv(folder / "params.csv")}
    assert params["method.name"] == "spectralnet_ae" and params["method.spectral.hidden"] == "[16]" and params["logger.name"] == "csv"
    scalars = read_csv(folder / "scalars.csv")
    assert any(row["tag"] == "spectral/loss_step" for row in scalars)  # what the loop logs while it trains
    metrics = {row["metric"]: float(row["value"]) for row in read_csv(folder / "metrics.csv")}
    assert metrics["metrics/acc"] == json.loads((result.session() / "metrics.json").read_text())["acc"]
    artifacts = [row["path"] for row in read_csv(folder / "artifacts.csv")]
    assert "plots/training_curves.png" in artifacts and all((result.session() / path).is_file() for path in artifacts)
    assert not (result.session() / "tb").exists()  # the tracker asked for, not TensorBoard as well


def test_mlflow_groups_a_sweep_s_jobs_in_one_experiment_of_a_local_store(deepclust, tmp_path, monkeypatch):
    MlflowClient = pytest.importorskip("mlflow.tracking").MlflowClient
    monkeypatch.chdir(tmp_path)
    result = deepclust("-m", *SMALL_KMEANS, "seed=0,1", "logger=mlflow")
    assert result.code == 0, result.err
    sweep = result.session().parent
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"multirun/{sweep.name}")
    runs = client.search_runs([experiment.experiment_id], order_by=["params.seed"])
    assert [run.data.params["seed"] for run in runs] == ["0", "1"]
    assert [run.info.run_name for run in runs] == sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert all(run.info.status == "FINISHED" and run.data.metrics["metrics/acc"] == 1.0 for run in runs)
    assert runs[0].data.params["method.name"] == "kmeans" and runs[0].data.params["dataset.n_samples"] == "300"
    assert {item.path for item in client.list_artifacts(runs[0].info.run_id, "plots")} >= {"plots/confusion_matrix.png"}
    assert {p.name for p in tmp_path.iterdir()} == {"outputs"}  # the store and its artifacts live under output_dir

    job = sweep / runs[0].info.run_name
    scored = deepclust("--resume", str(job / "checkpoints" / "last.ckpt"), "--test-only")
    assert scored.code == 0, scored.err
    again = client.get_run(runs[0].info.run_id)  # the session's own MLflow run, not a new one
    assert again.data.metrics["test/acc"] == 1.0 and again.info.status == "FINISHED"
    assert len(client.search_runs([experiment.experiment_id])) == 2


def test_wandb_offline_keeps_its_run_and_the_plots_in_the_session(deepclust, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_CACHE_DIR", "")  # records its state, so that the one the tracker sets is undone
    monkeypatch.delenv("WANDB_CACHE_DIR")
    result = deepclust(*SMALL_KMEANS, "logger=wandb")
    assert result.code == 0, result.err
    run_id = json.loads((result.session() / "wandb.json").read_text())["run_id"]
    (offline,) = (result.session() / "wandb").glob(f"offline-run-*-{run_id}")
    assert (offline / f"run-{run_id}.wandb").stat().st_size > 0  # W&B's own record of config, history and summary
    images = {path.name.split("_")[0] for path in (offline / "files" / "media" / "images" / "plots").iterdir()}
    assert images >= {"confusion"}  # plots/confusion_matrix.png, logged as an image
    assert {p.name for p in tmp_path.iterdir()} == {"outputs"}  # its service's logs too stay in output_dir


BLOCKED = """
import sys
sys.modules["mlflow"] = None  # as if the extra were not installed
from deepclust_cli import cli
cli.main(sys.argv[1:])
"""


@pytest.mark.parametrize("args", [["logger=mlflow"], ["-m", "seed=0,1", "logger=csv,mlflow"]])
def test_a_tracker_whose_extra_is_missing_is_one_line_naming_the_extra(args, tmp_path):
    result = subprocess.run([sys.executable, "-c", BLOCKED, *SMALL_KMEANS, *args, f"output_dir={tmp_path}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "deepclust: error: logger=mlflow needs the optional extra mlflow: pip install 'deepclust[mlflow]'\n"
    assert not any(tmp_path.iterdir())
