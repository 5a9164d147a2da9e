import json

import pytest
import yaml

from deepclust_cli.summary import rank, write_summary


def make_job(sweep, number, overrides, metrics=None, status="completed", seconds=1.0):
    job = sweep / str(number)
    job.mkdir(parents=True)
    (job / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / "run.json").write_text(json.dumps({"status": status, "seconds": seconds}))
    if metrics is not None:
        (job / "metrics.json").write_text(json.dumps(metrics))


@pytest.fixture
def alpha_by_seed_sweep(tmp_path):
    """alpha ∈ {0, 0.01} × seed ∈ {0, 1, 2}; alpha 0.01 is better on average, one of its jobs failed."""
    results = {("0", 0): 0.60, ("0", 1): 0.64, ("0", 2): 0.62, ("0.01", 0): 0.80, ("0.01", 1): 0.84}
    number = 0
    for alpha in ("0", "0.01"):
        for seed in range(3):
            overrides = ["method=spectralnet_ae", f"method.alpha={alpha}", f"seed={seed}"]
            value = results.get((alpha, seed))
            metrics = None if value is None else {"acc": value, "nmi": value / 2}
            make_job(tmp_path, number, overrides, metrics, status="completed" if metrics else "failed", seconds=10.0 + seed)
            number += 1
    return tmp_path


def test_seeds_are_aggregated_and_configurations_ranked(alpha_by_seed_sweep):
    rows = write_summary(alpha_by_seed_sweep)
    assert len(rows) == 6
    columns, groups = rank(rows)
    assert columns == ["method.alpha", "jobs", "acc", "nmi", "seconds"]  # method is the same everywhere
    assert [g["method.alpha"] for g in groups] == ["0.01", "0"]
    assert groups[0]["jobs"] == "2/3" and groups[1]["jobs"] == "3/3"
    assert groups[0]["acc"] == [0.80, 0.84]

    text = (alpha_by_seed_sweep / "summary.md").read_text()
    assert text.startswith("# sweep summary: 6 jobs, 5 completed\n")
    assert "ranked by acc, highest first (mean ± std over 3 seeds)" in text
    assert "| 1 | 0.01 | 2/3 | 0.8200 ± 0.0283 | 0.4100 ± 0.0141 | 10.5 ± 0.7 |" in text
    assert "| 2 | 0 | 3/3 | 0.6200 ± 0.0200 | 0.3100 ± 0.0100 | 11.0 ± 1.0 |" in text
    assert "## jobs" in text and "| 5 | spectralnet_ae | 0.01 | 2 |" in text

    ranking = (alpha_by_seed_sweep / "ranking.csv").read_text().splitlines()
    assert ranking[0] == "rank,method.alpha,jobs,acc_mean,acc_std,nmi_mean,nmi_std,seconds_mean,seconds_std"
    assert ranking[1].startswith("1,0.01,2/3,0.82")


def test_ascending_sort_and_single_jobs(tmp_path):
    for number, (k, acc, seconds) in enumerate([(10, 0.7, 30.0), (30, 0.9, 50.0), (50, 0.8, 20.0)]):
        make_job(tmp_path, number, [f"method.n_neighbors={k}"], {"acc": acc}, seconds=seconds)
    write_summary(tmp_path, sort_by="seconds", ascending=True)
    text = (tmp_path / "summary.md").read_text()
    assert "ranked by seconds, lowest first (one job per configuration)" in text
    table = [line for line in text.splitlines() if line.startswith("| ") and line[2].isdigit()][:3]
    assert [line.split(" | ")[1] for line in table] == ["50", "10", "30"]


def test_configurations_without_the_metric_come_last(tmp_path):
    make_job(tmp_path, 0, ["method.alpha=1"], None, status="failed")
    make_job(tmp_path, 1, ["method.alpha=2"], {"acc": 0.5})
    write_summary(tmp_path)
    lines = (tmp_path / "summary.md").read_text().splitlines()
    assert lines[6].startswith("| 1 | 2 | 1/1 | 0.5000 |")
    assert lines[7].startswith("| — | 1 | 0/1 |  |")


def test_an_empty_sweep_folder_still_gets_its_files(tmp_path):
    assert write_summary(tmp_path) == []
    assert (tmp_path / "summary.md").read_text().startswith("# sweep summary: 0 jobs, 0 completed")
    assert (tmp_path / "ranking.csv").read_text() == "rank,jobs\n"


def test_rankings_follow_each_metric_s_sense_unless_told():
    from deepclust_cli.config import lowest_first

    assert lowest_first("davies_bouldin", None) and lowest_first("seconds", None) and not lowest_first("silhouette", None)
    assert not lowest_first("davies_bouldin", False) and lowest_first("acc", True)
    rows = [{"job": "0", "method.alpha": "1", "davies_bouldin": 0.9, "silhouette": 0.2, "status": "completed"},
            {"job": "1", "method.alpha": "2", "davies_bouldin": 0.4, "silhouette": 0.6, "status": "completed"}]
    _, ranked = rank(rows, "davies_bouldin", lowest_first("davies_bouldin", None))
    assert [group["method.alpha"] for group in ranked] == ["2", "1"]


def test_summary_png_draws_the_metric_against_each_numeric_parameter(alpha_by_seed_sweep):
    from deepclust_cli.summary import parameter_panels

    rows = write_summary(alpha_by_seed_sweep)
    columns, groups = rank(rows)
    panels = parameter_panels(columns, groups, "acc")
    assert list(panels) == ["method.alpha"]  # method= is not swept, seed is averaged over
    assert sorted(panels["method.alpha"][""]) == [(0.0, [0.60, 0.64, 0.62]), (0.01, [0.80, 0.84])]
    figure = (alpha_by_seed_sweep / "summary.png").read_bytes()
    assert figure.startswith(b"\x89PNG")


def test_summary_png_has_a_series_per_other_parameter_and_skips_words(tmp_path):
    from deepclust_cli.summary import parameter_panels

    number = 0
    for alpha in ("0", "1e5", "1e6"):
        for k in ("10", "30"):
            make_job(tmp_path, number, [f"method.alpha={alpha}", f"method.n_neighbors={k}", f"method.scale={('local', 'global')[number % 2]}"], {"acc": 0.1 * number})
            number += 1
    rows = write_summary(tmp_path)
    panels = parameter_panels(*rank(rows), "acc")
    assert list(panels) == ["method.alpha", "method.n_neighbors"]  # method.scale is not a number
    assert set(panels["method.alpha"]) == {"method.n_neighbors=10, method.scale=local", "method.n_neighbors=30, method.scale=global"}
    assert list(panels["method.n_neighbors"]) == [""] and len(panels["method.n_neighbors"][""]) == 6  # one point per series: one cloud


def test_no_summary_png_without_a_numeric_parameter(tmp_path):
    make_job(tmp_path, 0, ["method=kmeans"], {"acc": 0.5})
    make_job(tmp_path, 1, ["method=spectral"], {"acc": 0.7})
    write_summary(tmp_path)
    assert (tmp_path / "summary.md").is_file() and not (tmp_path / "summary.png").exists()


def test_parameters_that_span_decades_get_a_log_axis():
    from deepclust_cli.plots import axis_scale

    assert axis_scale([1e-3, 1e-2, 1e-1]) == ("log", {})
    assert axis_scale([0, 1e5, 1e6, 3e6]) == ("symlog", {"linthresh": 1e5})  # alpha=0 stays on the axis
    assert axis_scale([10, 30]) == ("linear", {})
    assert axis_scale([0, 1]) == ("linear", {})
