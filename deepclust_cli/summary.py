"""Sweep summaries: one table of every job's overrides, status and metrics.

Hydra calls :class:`SweepSummary` when a ``-m`` sweep ends; it reads each job folder from disk
(so it works for any launcher, local or cluster) and writes ``summary.csv`` and ``summary.md``
into the sweep folder.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from deepclust_cli.engine.atomic import atomic_write_text

METRIC_ORDER = ("acc", "nmi", "ari", "knn_acc")

failed_jobs: list[str] = []  # job folders of the last sweep that did not complete; sets the exit code


def collect_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job folder: ``job``, each override's value, each metric, ``status``, ``seconds``."""
    rows = []
    job_dirs = [d for d in sweep_dir.iterdir() if d.is_dir() and (d / "overrides.yaml").exists()]
    for job_dir in sorted(job_dirs, key=lambda d: (not d.name.isdigit(), int(d.name) if d.name.isdigit() else 0, d.name)):
        row: dict[str, Any] = {"job": job_dir.name}
        for override in yaml.safe_load((job_dir / "overrides.yaml").read_text()) or []:
            key, _, value = override.partition("=")
            row[key.lstrip("+~")] = value
        info = _read_json(job_dir / "run.json")
        metrics = _read_json(job_dir / "metrics.json")
        row.update(metrics)
        row["status"] = info.get("status", "unknown")
        if info.get("error"):
            row["error"] = info["error"]
        if "seconds" in info:
            row["seconds"] = info["seconds"]
        rows.append(row)
    return rows


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    """``job``, overrides in first-seen order, metrics in canonical order, then status/seconds/error."""
    tail = ["status", "seconds", "error"]
    seen: list[str] = []
    for row in rows:
        seen += [key for key in row if key not in seen]
    metrics = [m for m in METRIC_ORDER if m in seen] + sorted(
        k for k in seen if k not in METRIC_ORDER and isinstance(_first(rows, k), float) and k not in tail
    )
    overrides = [k for k in seen if k not in metrics and k not in tail and k != "job"]
    return ["job", *overrides, *metrics, *[t for t in tail if t in seen]]


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


def write_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    rows = collect_jobs(sweep_dir)
    columns = columns_of(rows)
    atomic_write_text(sweep_dir / "summary.csv", to_csv(rows, columns))
    atomic_write_text(sweep_dir / "summary.md", to_markdown(rows, columns))
    return rows


class SweepSummary(Callback):
    """Hydra callback: write and print the sweep's summary table when the sweep ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if not sweep_dir.is_dir():
            return
        rows = write_summary(sweep_dir)
        failed_jobs[:] = [row["job"] for row in rows if row["status"] != "completed"]
        print(f"\nsweep summary ({len(rows)} jobs, {len(failed_jobs)} not completed): {sweep_dir / 'summary.md'}")
        print((sweep_dir / "summary.md").read_text(), end="")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _first(rows: list[dict[str, Any]], key: str) -> Any:
    return next((row[key] for row in rows if key in row), None)


def _cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.1f}" if column == "seconds" else f"{value:.4f}"
    return str(value).replace("|", "\\|")
