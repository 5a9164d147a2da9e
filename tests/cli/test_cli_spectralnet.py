"""SpectralNet through the CLI: every stage, plots, test-only, and resume equivalence."""

import json
from pathlib import Path

import pytest

from conftest import run_until_crash
from deepclust_cli.cli import folder_name
from deepclust_cli.engine.checkpoint import load_checkpoint

TINY_RUN = [
    "method=spectralnet",
    "dataset=blobs",
    "dataset.n_samples=400",
    "dataset.n_classes=3",
    "dataset.n_features=6",
    "method.ae.enabled=true",
    "method.ae.hidden=[16]",
    "method.ae.code_dim=3",
    "method.ae.epochs=3",
    "method.ae.batch_size=64",
    "method.siamese.enabled=true",
    "method.siamese.hidden=[16]",
    "method.siamese.output_dim=3",
    "method.siamese.epochs=2",
    "method.siamese.batch_size=64",
    "method.spectral.hidden=[16]",
    "method.spectral.epochs=3",
    "method.spectral.batch_size=100",
    "method.n_neighbors=8",
    "method.scale_k=3",
    "trainer.checkpoint_min_seconds=0",
]


def test_every_stage_through_the_cli_then_test_only(deepclust):
    trained = deepclust(*TINY_RUN)
    assert trained.code == 0, trained.err
    session = trained.session()
    for plot in ("confusion_matrix", "embedding", "training_curves"):
        assert (session / "plots" / f"{plot}.png").stat().st_size > 1000, plot
    checkpoint = load_checkpoint(session / "checkpoints" / "last.ckpt")
    state = checkpoint["method"]["state"]
    assert set(state["nets"]) == {"ae", "siamese", "spectral"}
    assert [state["stages"][name]["loop"]["position"] for name in ("ae", "siamese", "spectral")] == [3, 2, 3]
    assert "optimizer" not in state["stages"]["spectral"]  # finished stages keep no optimizer state
    metrics = json.loads((session / "metrics.json").read_text())
    assert metrics["acc"] > 0.9
    for stage in ("ae", "siamese", "spectral"):
        assert f"{stage}: stopped after" in (session / "log.txt").read_text()
    tested = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only", output_dir=False)
    assert tested.code == 0, tested.err
    assert json.loads((session / "metrics_test.json").read_text()) == metrics


SAMPLED_SIAMESE = ["method.siamese.pairs_per_epoch=200", "method.siamese.epochs=3"]  # 100 anchors redrawn each epoch


@pytest.mark.parametrize(
    "crash_at, extra",
    [(2, []), (4, []), (7, []), (5, SAMPLED_SIAMESE)],
    ids=["within-ae", "between-ae-and-siamese", "within-spectral", "within-sampled-siamese"],
)
def test_resume_gives_the_metrics_of_an_uninterrupted_run(deepclust, monkeypatch, tmp_path, crash_at, extra):
    run = [*TINY_RUN, *extra]
    uninterrupted = deepclust(*run)
    assert uninterrupted.code == 0, uninterrupted.err
    expected = json.loads((uninterrupted.session() / "metrics.json").read_text())

    written = run_until_crash(deepclust, monkeypatch, run, crash_at)

    sessions = sorted((tmp_path / "outputs" / "spectralnet" / "blobs").iterdir())
    crashed = sessions[-1]
    assert not (crashed / "metrics.json").exists()
    assert json.loads((crashed / "run.json").read_text())["status"] == "failed"
    stopped_at = load_checkpoint(crashed / "checkpoints" / "last.ckpt")["progress"]
    # the session adds the run's optimizer steps to what the method reported
    assert {k: v for k, v in stopped_at.items() if k != "step"} == written[-1] and not stopped_at.get("done")
    assert stopped_at["step"] > 0

    resumed = deepclust("--resume", str(crashed / "checkpoints" / "last.ckpt"), output_dir=False)
    assert resumed.code == 0, resumed.err
    assert resumed.session() == crashed
    assert json.loads((crashed / "metrics.json").read_text()) == expected
    assert "resumed from" in (crashed / "log.txt").read_text()


def test_a_resumed_run_s_seconds_count_every_process(deepclust, monkeypatch, tmp_path):
    run_until_crash(deepclust, monkeypatch, TINY_RUN, crash_at=4)
    checkpoint = next(Path(tmp_path / "outputs").rglob("last.ckpt"))
    before = load_checkpoint(checkpoint)["seconds"]
    assert before > 0
    resumed = deepclust("--resume", str(checkpoint), output_dir=False)
    assert resumed.code == 0, resumed.err
    info = json.loads((resumed.session() / "run.json").read_text())
    assert info["seconds"] - info["process_seconds"] == pytest.approx(before, abs=0.002)  # not the last process alone
    tested = deepclust("--resume", str(checkpoint), "--test-only", output_dir=False)
    scored = json.loads((tested.session() / "run_test.json").read_text())
    assert scored["seconds"] == scored["process_seconds"]  # an evaluation's own time


def test_test_only_refuses_an_unfinished_checkpoint(deepclust, monkeypatch, tmp_path):
    run_until_crash(deepclust, monkeypatch, TINY_RUN, crash_at=1)
    checkpoint = next(Path(tmp_path / "outputs").rglob("last.ckpt"))
    result = deepclust("--resume", str(checkpoint), "--test-only", output_dir=False)
    assert result.code == 1
    assert "training had not finished when it was saved; continue it first with --resume" in result.err


def test_spectralnet_ae_sweep_gives_four_sessions_and_a_ranked_summary(deepclust, tiny_spectralnet_ae):
    result = deepclust("-m", *tiny_spectralnet_ae, "method.alpha=0,0.1", "method.n_neighbors=5,10", "summary.sort_by=nmi")
    assert result.code == 0, result.err
    sweep = result.session().parent
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == [
        folder_name(f"dataset.n_classes=3,dataset.n_samples=300,dataset=blobs,method.alpha={alpha},method.n_neighbors={k},method.spectral.batch_size=100,"
        f"method.spectral.epochs=2,method.spectral.hidden=[16],method=spectralnet_ae")
        for alpha in ("0", "0.1") for k in ("10", "5")
    ]
    for job in jobs:
        assert (job / "metrics.json").exists() and (job / "checkpoints" / "last.ckpt").exists()
    text = (sweep / "summary.md").read_text()
    assert "ranked by nmi, highest first (one job per configuration)" in text
    ranked = [line.split(" | ") for line in text.split("## jobs")[0].splitlines() if line[:3] in ("| 1", "| 2", "| 3", "| 4")]
    assert [row[0] for row in ranked] == ["| 1", "| 2", "| 3", "| 4"]
    assert {(row[1], row[2]) for row in ranked} == {("0", "5"), ("0", "10"), ("0.1", "5"), ("0.1", "10")}
    nmis = [float(row[5]) for row in ranked]
    assert nmis == sorted(nmis, reverse=True)
