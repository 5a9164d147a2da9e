"""Fault injection for the reliability tests and ``scripts/reliability_report.py``: runs of
``deepclust`` in real processes, killed (SIGKILL) or stopped (SIGINT, SIGTERM) at a random moment
and resumed, checkpoint writers killed mid-write, hostile and corrupt checkpoints.

Every scenario returns an :class:`Outcome`: whether the run survived, and what was lost if not.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from conftest import TINY_AND, bar_digits, write_idx

COMMON = ["trainer.deterministic=true", "trainer.checkpoint_min_seconds=0"]
# Each runs for a few seconds on two cores with a checkpoint at every epoch (tree level for GeoCluster).
TWO_MOONS = ["dataset.n_samples=2000", "method.spectral.batch_size=500", "method.spectral.epochs=60"]
TINY_RUNS = {
    "spectralnet": ["experiment=spectralnet_twomoons", *TWO_MOONS],
    "spectralnet_ae": ["experiment=spectralnet_ae_twomoons", *TWO_MOONS],
    "and": [*TINY_AND, "method.epochs=4", "method.eval_every=2"],
    "lnscc": [
        "method=lnscc", "dataset=blobs", "dataset.n_samples=600", "dataset.n_classes=3", "method.n_neighbors=10",
        "method.hidden=[32]", "method.epochs=40", "method.clustering_epoch=30", "method.edges_per_epoch=3000",
        "method.batch_size=200", "method.kmeans_restarts=3", "method.plot_every=0",
    ],
    "geocluster": [
        "method=geocluster", "dataset=squares", "dataset.n_objects=1500", "dataset.extent=40", "method.threshold=8",
        "method.n_clusters=4", "method.student_samples=512", "method.student_steps=60", "method.n_queries=500",
        "method.plot_resolution=50",
    ],
}
RUN_TIMEOUT = 300  # seconds any one process may take


@dataclass
class Outcome:
    survived: bool
    lost: str = "nothing"  # what the fault cost, in words
    detail: str = ""


def write_bar_mnist(data_dir: Path) -> Path:
    """MNIST/raw in the IDX format under ``data_dir`` (240 training, 80 test bar digits) for AND."""
    raw = data_dir / "MNIST" / "raw"
    for prefix, n, seed in (("train", 240, 0), ("t10k", 80, 1)):
        images, labels = bar_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return data_dir


def run_args(method: str, data_dir: Path) -> list[str]:
    """The tiny run of ``method`` (AND reads bar digits from ``data_dir``)."""
    extra = [f"data_dir={data_dir}"] if method == "and" else []
    return [*TINY_RUNS[method], *COMMON, *extra]


def environment() -> dict[str, str]:
    # One thread per process: the same kernels in every run, so resumed metrics can equal the reference exactly.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def deepclust(*args: str) -> list[str]:
    return [sys.executable, "-m", "deepclust_cli", *args]


def only_session(outputs: Path) -> Path:
    sessions = sorted(path.parent for path in outputs.rglob("run.json"))
    if len(sessions) != 1:
        raise AssertionError(f"expected one session under {outputs}, found {sessions}")
    return sessions[0]


def metrics_of(session: Path) -> Optional[dict]:
    path = session / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def reference_metrics(args: list[str], outputs: Path) -> dict:
    """The metrics of an uninterrupted run."""
    done = subprocess.run(deepclust(*args, f"output_dir={outputs}"), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    if done.returncode != 0:
        raise AssertionError(f"the reference run failed:\n{done.stderr[-3000:]}")
    return metrics_of(only_session(outputs))


def wait_for(path_glob: str, root: Path, process: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> bool:
    """Until a file matching ``path_glob`` exists under ``root``; False when the process ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(root.glob(path_glob)):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"no {path_glob} under {root} after {timeout} s")


# Measurements of speed (GeoCluster's queries per second), not results: they differ between any two runs.
TIMINGS = {"qps", "qps_bruteforce", "speedup"}


def compare(expected: dict, found: Optional[dict]) -> Outcome:
    """Every metric equal, to the last bit, except the timings."""
    if found is None:
        return Outcome(False, "the metrics (no metrics.json after resuming)")
    keys = (set(expected) | set(found)) - TIMINGS
    differing = sorted(key for key in keys if expected.get(key) != found.get(key))
    if differing:
        shown = ", ".join(f"{key} {expected.get(key)} → {found.get(key)}" for key in differing[:4])
        return Outcome(False, f"exact metrics ({shown})")
    return Outcome(True)


def interrupt_and_resume(
    args: list[str], outputs: Path, expected: dict, rng: random.Random, signal_number: int = signal.SIGKILL, max_delay: float = 1.0
) -> Outcome:
    """Start the run, wait for its first checkpoint, send ``signal_number`` after a random delay in
    ``[0, max_delay)`` s, resume from ``last.ckpt`` and compare the final metrics with ``expected``.

    SIGKILL gives no warning; SIGINT and SIGTERM must end the run with exit code 128 + signal and a
    last line that names the resume command, which is then run as printed.
    """
    process = subprocess.Popen(
        deepclust(*args, f"output_dir={outputs}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment()
    )
    if not wait_for("**/checkpoints/last.ckpt", outputs, process):
        return Outcome(False, "the run", f"it ended before its first checkpoint: {process.communicate()[1][-2000:]}")
    time.sleep(rng.uniform(0, max_delay))
    process.send_signal(signal_number)
    _, err = process.communicate(timeout=RUN_TIMEOUT)
    session = only_session(outputs)
    if process.returncode == 0:
        outcome = compare(expected, metrics_of(session))
        outcome.detail = "the run finished before the signal arrived"
        return outcome
    resume = deepclust("--resume", str(session / "checkpoints" / "last.ckpt"))
    if signal_number != signal.SIGKILL:
        last = err.strip().splitlines()[-1] if err.strip() else ""
        if process.returncode != 128 + signal_number or "resume with: deepclust --resume " not in last:
            return Outcome(False, "the resume instructions", f"exit {process.returncode}, last line {last!r}")
        resume = deepclust(*shlex.split(last.split("resume with: deepclust ", 1)[1]))
    resumed = subprocess.run(resume, capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    if resumed.returncode != 0:
        return Outcome(False, "the run (resume failed)", resumed.stderr[-2000:])
    leftovers = sorted(path.name for path in (session / "checkpoints").glob(".*.tmp"))
    if leftovers:
        return Outcome(False, f"disk space to partial writes {leftovers}")
    return compare(expected, metrics_of(session))


# A process that saves one checkpoint after another; every version holds a tensor filled with its number.
WRITER = """
import sys, torch
from deepclust_cli.engine.checkpoint import save_checkpoint
version = 0
while True:
    version += 1
    save_checkpoint(sys.argv[1], {"version": version, "weights": torch.full((4_000_000,), float(version))})
"""


def kill_during_write(folder: Path, rng: random.Random) -> Outcome:
    """SIGKILL a process that keeps rewriting a 16 MB checkpoint; the file must load and be whole."""
    from deepclust_cli.engine.checkpoint import load_checkpoint

    path = folder / "last.ckpt"
    process = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], env=environment())
    wait_for("last.ckpt", folder, process)
    time.sleep(rng.uniform(0, 1.0))
    process.kill()
    process.wait()
    payload = load_checkpoint(path)
    whole = bool((payload["weights"] == float(payload["version"])).all())
    return Outcome(True) if whole else Outcome(False, f"checkpoint version {payload['version']} is mixed")
