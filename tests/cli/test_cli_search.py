"""Optuna search (hparams_search=): trials in override-named job folders, the objective
summary.sort_by averaged over seed=..., the best trial printed and written as a usable preset, an
interrupted search continued by rerunning it, and a missing extra refused in one line."""

import subprocess
import sys

import pytest
import yaml

from conftest import SimulatedCrash
from deepclust_cli.engine.session import Session

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

SMALL_KMEANS = ["method=kmeans", "dataset=blobs", "dataset.n_samples=300"]  # five blobs: n_clusters=5 scores 1.0, 2 scores 0.4


def write_preset(config_dir, trials):
    """A search preset of the shape conf/hparams_search/ has, over kmeans' n_clusters (2: poor, 5: right) and its tol."""
    (config_dir / "hparams_search").mkdir(parents=True)
    (config_dir / "hparams_search" / "tiny.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /hydra/sweeper: search\n"
        f"hydra:\n  sweeper:\n    n_trials: {trials}\n    sampler:\n      seed: 0\n"
        "    params:\n      method.n_clusters: choice(2, 5)\n      method.tol: tag(log, interval(1e-6, 1e-2))\n"
    )
    return ["--config-dir", str(config_dir), "hparams_search=tiny"]


def test_a_search_finds_the_better_setting_averaging_seeds_and_writes_a_usable_preset(deepclust, tmp_path):
    search = write_preset(tmp_path / "conf", trials=3)
    result = deepclust(*search, *SMALL_KMEANS, "seed=0,1")  # no -m needed: a search is a sweep
    assert result.code == 0, result.err
    assert "deepclust: search: best of 3 completed trials (3 run): acc=1.0000 (mean over seeds 0, 1) with method.n_clusters=5 " in result.out
    sweep = result.session().parent
    jobs = [yaml.safe_load((p / "overrides.yaml").read_text()) for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 6 and sum("seed=0" in job for job in jobs) == 3  # every trial ran once per seed
    assert {"summary.md", "summary.png", "optimization_history.png", "best_params.yaml"} <= {p.name for p in sweep.iterdir()}
    tried = {next(o for o in job if o.startswith("method.n_clusters=")) for job in jobs}
    assert tried == {"method.n_clusters=2", "method.n_clusters=5"}  # both settings were tried
    ranking = [line for line in (sweep / "summary.md").read_text().splitlines() if line.startswith("| 1 |")]
    assert ranking[0].split(" | ")[1] == "5"  # the summary ranks the trials as the search did
    preset = yaml.safe_load((sweep / "best_params.yaml").read_text())
    assert preset["defaults"] == [{"override /method": "kmeans"}, {"override /dataset": "blobs"}, "_self_"]
    assert preset["method"]["n_clusters"] == 5 and preset["dataset"] == {"n_samples": 300}

    (tmp_path / "mine" / "experiment").mkdir(parents=True)
    (tmp_path / "mine" / "experiment" / "best.yaml").write_text((sweep / "best_params.yaml").read_text())
    composed = deepclust("--config-dir", str(tmp_path / "mine"), "experiment=best", "--cfg", "job", output_dir=False)
    assert composed.code == 0, composed.err
    config = yaml.safe_load(composed.out)
    assert (config["method"]["name"], config["method"]["n_clusters"], config["dataset"]["n_samples"]) == ("kmeans", 5, 300)
    assert config["method"]["tol"] == preset["method"]["tol"]


def test_an_interrupted_search_continues_when_run_again(deepclust, monkeypatch, tmp_path):
    search = [*write_preset(tmp_path / "conf", trials=3), *SMALL_KMEANS]
    save, saved = Session.checkpoint, []

    def crash_in_the_second_trial(self, method, progress, **kwargs):
        save(self, method, progress, **kwargs)
        saved.append(self.directory)
        if len(saved) == 2:
            raise SimulatedCrash(progress)

    monkeypatch.setattr(Session, "checkpoint", crash_in_the_second_trial)
    with pytest.raises(SimulatedCrash):
        deepclust(*search)
    monkeypatch.setattr(Session, "checkpoint", save)
    first, second = saved

    again = deepclust(*search)
    assert again.code == 0, again.err
    assert "deepclust: search: 1 trials restored from the job folders of an earlier run, 1 unfinished ones asked again first" in again.out
    assert f"job {second.name} continues from {second / 'checkpoints' / 'last.ckpt'}" in again.err
    assert f"job {first.name} finished" not in again.err  # restored from its folder, not run again
    assert "best of 3 completed trials (3 run)" in again.out
    assert len([p for p in first.parent.iterdir() if p.is_dir()]) == 3


def test_a_search_without_its_extra_is_one_line_naming_it(tmp_path):
    blocked = "import sys\nsys.modules['hydra_plugins.hydra_optuna_sweeper'] = None\nfrom deepclust_cli import cli\ncli.main(sys.argv[1:])\n"
    result = subprocess.run([sys.executable, "-c", blocked, "hparams_search=spectralnet_ae_mnist", f"output_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr == "deepclust: error: hparams_search=spectralnet_ae_mnist needs the optional extra optuna: pip install 'deepclust[optuna]'\n"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("experiment, preset", [("spectralnet_ae_mnist", "spectralnet_ae_mnist"), ("lnscc_mnist", "lnscc_mnist"), ("and_cifar10", "and_cifar10")])
def test_every_search_preset_composes_into_a_search_space(deepclust, experiment, preset):
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    result = deepclust(f"experiment={experiment}", f"hparams_search={preset}", "--cfg", "hydra", output_dir=False)
    assert result.code == 0, result.err
    sweeper = yaml.safe_load(result.out)["hydra"]["sweeper"]
    assert sweeper["_target_"] == "hydra_plugins.deepclust_search.OptunaSearch"
    distributions, fixed = create_params_from_overrides([f"{key}={value}" for key, value in sweeper["params"].items()])
    assert len(distributions) >= 2 and not fixed and all(key.startswith("method.") for key in distributions)


def test_a_direction_that_disagrees_with_the_ranking_is_refused_before_any_trial(deepclust, tmp_path):
    result = deepclust(*write_preset(tmp_path / "conf", trials=2), *SMALL_KMEANS, "hydra.sweeper.direction=minimize")
    assert result.code == 2
    assert "hydra.sweeper.direction=minimize disagrees with summary.sort_by=acc (highest first)" in result.err
    assert not (tmp_path / "outputs").exists()


def test_a_preset_searching_keys_the_method_lacks_is_refused_before_any_trial(deepclust, tmp_path):
    result = deepclust("hparams_search=spectralnet_ae_mnist", *SMALL_KMEANS)  # k-means has neither alpha nor n_neighbors
    assert result.code == 2
    assert "hparams_search: method.alpha, method.n_neighbors is not a key of method kmeans; add the experiment" in result.err
    assert not (tmp_path / "outputs").exists()
