"""Sweep summaries: the configurations ranked by a metric, and every job's overrides and metrics.

Hydra calls :class:`SweepSummary` when a ``-m`` sweep ends; it reads each job folder from disk
(so it works for any launcher, local or cluster) and writes into the sweep folder
``summary.md`` (the ranking, then the jobs), ``summary.csv`` (the jobs), ``ranking.csv`` and,
when a numeric parameter was swept, ``summary.png`` (the ranking metric against each one).

The ranking groups jobs that differ only in ``seed``: each configuration shows the mean ± sample
standard deviation of every metric over its completed seeds, and configurations are ordered by
``summary.sort_by``.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from deepclust_cli.config import LABEL_FREE_METRICS, METRIC_NAMES, lowest_first
from deepclust_cli.engine.atomic import atomic_write_text

SEED_KEY = "seed"

def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder: ``job``, each override's value, each metric, ``status``, ``seconds``."""
    rows = []
    job_dirs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / "overrides.yaml").exists()]
    for job_dir in sorted(job_dirs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name)):
        row: dict[str, Any] = {"job": job_dir.name}
        for override in yaml.safe_load((job_dir / "overrides.yaml").read_text()) or []:
            key, _, value = override.partition("=")
            row[key.lstrip("+~")] = value.replace("\\${", "${")  # as typed, less the escape of a literal ${
        info = _read_json(job_dir / "run.json")
        metrics = _read_json(job_dir / "metrics.json")
        row.update({key: value for key, value in metrics.items() if _is_number(value)})  # not cluster_sizes
        row["status"] = info.get("status", "unknown")
        if info.get("error"):
            row["error"] = info["error"]
        if "seconds" in info:
            row["seconds"] = info["seconds"]
        rows.append(row)
    return rows


TAIL = ("status", "seconds", "error")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def override_and_metric_columns(rows: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Override keys in first-seen order; metrics in canonical order, then other numeric keys."""
    seen: list[str] = []
    for row in rows:
        seen += [key for key in row if key not in seen]
    metrics = [m for m in METRIC_NAMES if m in seen] + sorted(
        k for k in seen if k not in METRIC_NAMES and _is_number(_first(rows, k)) and k not in TAIL
    )
    overrides = [k for k in seen if k not in metrics and k not in TAIL and k != "job"]
    return overrides, metrics


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """``job``, overrides in first-seen order, metrics in canonical order, then status/seconds/error."""
    overrides, metrics = override_and_metric_columns(rows)
    return ["job", *overrides, *metrics, *[t for t in TAIL if any(t in row for row in rows)]]


def rank(rows: list[dict[str, Any]], sort_by: str = "acc", ascending: bool = False) -> tuple[list[str], list[dict[str, Any]]]:
    """Configurations (jobs equal in every override but ``seed``), best first by the mean of ``sort_by``.

    Returns the columns that tell configurations apart (overrides that vary, then ``jobs`` as
    completed/launched, the metrics and ``seconds``) and one row per configuration, where each
    metric is a list of its completed jobs' values. Configurations without a value of
    ``sort_by`` come last, in launch order.
    """
    overrides, metrics = override_and_metric_columns(rows)
    varying = [k for k in overrides if k != SEED_KEY and len({str(row.get(k)) for row in rows}) > 1]
    values = [*metrics, *(["seconds"] if any("seconds" in row for row in rows) else [])]
    groups: dict[tuple[str, ...], dict[str, Any]] = {}
    for row in rows:
        key = tuple(str(row.get(k, "")) for k in overrides if k != SEED_KEY)
        group = groups.setdefault(key, {**{k: row.get(k, "") for k in varying}, "launched": 0, "completed": 0, **{v: [] for v in values}})
        group["launched"] += 1
        if row.get("status") == "completed":
            group["completed"] += 1
            for name in values:
                if isinstance(row.get(name), (int, float)):
                    group[name].append(float(row[name]))
    ordered = list(groups.values())
    scored = [g for g in ordered if g.get(sort_by)]
    scored.sort(key=lambda g: statistics.fmean(g[sort_by]), reverse=not ascending)
    ranked = scored + [g for g in ordered if not g.get(sort_by)]
    for group in ranked:
        group["jobs"] = f"{group.pop('completed')}/{group.pop('launched')}"
    return [*varying, "jobs", *values], ranked


def ranking_markdown(columns: list[str], groups: list[dict[str, Any]], sort_by: str, ascending: bool) -> str:
    seeds = max((len(g[sort_by]) for g in groups if sort_by in g), default=0)
    order = "lowest" if ascending else "highest"
    how = f"mean ± std over {seeds} seeds" if seeds > 1 else "one job per configuration"
    lines = [f"ranked by {sort_by}, {order} first ({how})", "", "| rank | " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---" for _ in range(len(columns) + 1)) + "|")
    for position, group in enumerate(groups, 1):
        cells = [_spread(group[c], c) if isinstance(group[c], list) else _cell(group[c], c) for c in columns]
        lines.append(f"| {position if group.get(sort_by) else '—'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ranking_csv(columns: list[str], groups: list[dict[str, Any]]) -> str:
    """Per configuration: each metric's mean and sample std (empty when it has fewer than two values)."""
    listed = {column for column in columns if groups and isinstance(groups[0][column], list)}
    header = ["rank"]
    for column in columns:
        header += [f"{column}_mean", f"{column}_std"] if column in listed else [column]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for position, group in enumerate(groups, 1):
        line: list[Any] = [position]
        for column in columns:
            value = group[column]
            if isinstance(value, list):
                line += [statistics.fmean(value) if value else "", statistics.stdev(value) if len(value) > 1 else ""]
            else:
                line.append(value)
        writer.writerow(line)
    return buffer.getvalue()


def to_markdown(rows: list[dict[str, Any]], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c), c) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def readable(columns: list[str], sort_by: str) -> list[str]:
    """The columns summary.md shows: with labels, the label-free scores only if ranked by one
    (summary.csv and ranking.csv keep every column)."""
    labelled = any(name in columns for name in METRIC_NAMES if name not in LABEL_FREE_METRICS)
    return [c for c in columns if not labelled or c not in LABEL_FREE_METRICS or c == sort_by]


def write_summary(sweep_dir: Path, sort_by: str = "acc", ascending: bool = False) -> list[dict[str, Any]]:
    """Write ``summary.md``, ``summary.csv`` and ``ranking.csv`` for the jobs in ``sweep_dir``."""
    rows = collect_jobs(sweep_dir)
    columns = columns_of(rows)
    ranking_columns, groups = rank(rows, sort_by, ascending)
    completed = sum(row["status"] == "completed" for row in rows)
    markdown = [
        f"# sweep summary: {len(rows)} jobs, {completed} completed",
        "",
        ranking_markdown(readable(ranking_columns, sort_by), groups, sort_by, ascending),
        "## jobs",
        "",
        to_markdown(rows, readable(columns, sort_by)),
    ]
    atomic_write_text(sweep_dir / "summary.csv", to_csv(rows, columns))
    atomic_write_text(sweep_dir / "ranking.csv", ranking_csv(ranking_columns, groups))
    atomic_write_text(sweep_dir / "summary.md", "\n".join(markdown))
    panels = parameter_panels(ranking_columns, groups, sort_by)
    if panels:
        from deepclust_cli import plots  # matplotlib and torch: only for a sweep with something to draw

        seeds = max(len(g[sort_by]) for g in groups if g.get(sort_by))
        how = f"mean ± std over {seeds} seeds" if seeds > 1 else "one job per configuration"
        plots.metric_against_parameters(panels, sort_by, sweep_dir / "summary.png", f"{sort_by} against each swept parameter ({how})")
    return rows


MAX_SERIES = 8  # more combinations of the other parameters than this (a search's trials) are drawn as one cloud


def parameter_panels(columns: list[str], groups: list[dict[str, Any]], sort_by: str) -> dict[str, dict[str, list[tuple[float, list[float]]]]]:
    """What summary.png draws: for each varying parameter whose every value is a number, the
    configurations scored by ``sort_by`` as ``(value, their sort_by values)`` points, in one series
    per combination of the other varying parameters (labelled by them; one unlabelled series when
    there are more than MAX_SERIES, or when each has a single point, as a search's trials do)."""
    scored = [g for g in groups if g.get(sort_by)]
    varying = [c for c in columns if scored and not isinstance(scored[0][c], list) and c != "jobs"]
    numeric = [c for c in varying if all(_number(g[c]) is not None for g in scored)]
    panels: dict[str, dict[str, list[tuple[float, list[float]]]]] = {}
    for parameter in numeric:
        others = [c for c in varying if c != parameter]
        series: dict[str, list[tuple[float, list[float]]]] = {}
        for group in scored:
            label = ", ".join(f"{c}={group[c]}" for c in others)
            series.setdefault(label, []).append((_number(group[parameter]), group[sort_by]))
        if len(series) > MAX_SERIES or (len(series) > 1 and all(len(points) == 1 for points in series.values())):
            series = {"": [point for points in series.values() for point in points]}  # a search's trials: no line to draw
        panels[parameter] = series
    return panels


def _number(value: Any) -> Optional[float]:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class SweepSummary(Callback):
    """Hydra callback: write and print the sweep's summary when the sweep ends. ``report`` (set by
    the CLI) is a JSON file that receives the jobs that did not complete, which decide the exit code."""

    def __init__(self, report: Optional[str] = None) -> None:
        self.report = report

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        summary = config.get("summary") or {}
        sort_by = str(summary.get("sort_by", "acc"))
        rows = write_summary(sweep_dir, sort_by, lowest_first(sort_by, summary.get("ascending")))
        not_completed = [row["job"] for row in rows if row["status"] != "completed"]
        if self.report:
            atomic_write_text(Path(self.report), json.dumps({"jobs": len(rows), "not_completed": not_completed}) + "\n")
        print(f"\nsweep summary ({len(rows)} jobs, {len(not_completed)} not completed): {sweep_dir / 'summary.md'}")
        print((sweep_dir / "summary.md").read_text(), end="")


def record_failed_job(directory: Path, message: str, overrides: list[str]) -> None:
    """Record a job that failed before its session opened, so the sweep's summary shows it."""
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "run.json").exists():
        atomic_write_text(directory / "run.json", json.dumps({"status": "failed", "error": message}, indent=2) + "\n")
    if not (directory / "overrides.yaml").exists():
        atomic_write_text(directory / "overrides.yaml", yaml.safe_dump(overrides))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _first(rows: list[dict[str, Any]], key: str) -> Any:
    return next((row[key] for row in rows if key in row), None)


def _spread(values: list[float], column: str) -> str:
    """``mean ± std`` (sample std) of a configuration's values; the value alone when there is one."""
    if not values:
        return ""
    if len(values) == 1:
        return _cell(values[0], column)
    mean, std = statistics.fmean(values), statistics.stdev(values)
    return f"{_cell(mean, column)} ± {_cell(std, column)}"


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column == "seconds" else f"{value:.4f}"
    return str(value).replace("|", "\\|")
