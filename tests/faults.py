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

from conftest import TINY_AND, write_hostile_checkpoint

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
        "method.batch_size=200", "method.n_init=3", "method.plot_every=0",
    ],
    "geocluster": [
        "method=geocluster", "dataset=squares", "dataset.n_objects=1500", "dataset.extent=40", "method.threshold=8",
        "method.branching=4", "method.student.samples=512", "method.student.steps=60", "method.n_queries=500",
        "method.plot_resolution=50",
    ],
}
RUN_TIMEOUT = 300  # seconds any one process may take


@dataclass
class Outcome:
    survived: bool
    lost: str = "nothing"  # what the fault cost, in words
    detail: str = ""


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


def refused_in_one_line(args: list[str], expected: str, marker: Optional[Path] = None) -> Outcome:
    """Run ``deepclust args``: it must fail with one ``deepclust: error:`` line containing
    ``expected``, and never create ``marker`` (what a crafted checkpoint would run)."""
    done = subprocess.run(deepclust(*args), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    lines = done.stderr.strip().splitlines()
    if marker is not None and marker.exists():
        return Outcome(False, "control: the file ran code", str(marker))
    if done.returncode == 0 or not lines or not lines[-1].startswith("deepclust: error: ") or expected not in lines[-1]:
        return Outcome(False, "a clear refusal", f"exit {done.returncode}: {done.stderr[-1000:]}")
    if "Traceback" in done.stderr:
        return Outcome(False, "a clear refusal (a traceback was printed)", done.stderr[-1000:])
    return Outcome(True, detail=lines[-1])


def hostile_checkpoint(folder: Path) -> Outcome:
    """A checkpoint whose unpickling would run ``touch``: refused, and nothing runs."""
    marker = folder / "ran"
    evil = write_hostile_checkpoint(folder / "evil.ckpt", marker)
    return refused_in_one_line(["--resume", str(evil)], "refused to load", marker)


def damaged_checkpoint(folder: Path, rng: random.Random, truncate: bool) -> Outcome:
    """A real checkpoint cut short, or with 64 bytes zeroed at a random place: one line naming the file."""
    done = subprocess.run(
        deepclust("method=kmeans", "dataset=blobs", "dataset.n_samples=300", f"output_dir={folder / 'run'}"),
        capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT,
    )
    assert done.returncode == 0, done.stderr
    data = bytearray((only_session(folder / "run") / "checkpoints" / "last.ckpt").read_bytes())
    if truncate:
        data = data[: rng.randrange(1, len(data) - 1)]
    else:
        start = rng.randrange(0, len(data) - 64)
        data[start : start + 64] = bytes(64)
    damaged = folder / "damaged.ckpt"
    damaged.write_bytes(bytes(data))
    return refused_in_one_line(["--resume", str(damaged)], str(damaged))


def nan_in_input(folder: Path) -> Outcome:
    """A features file holding NaN and inf: one line with the dataset's name and the count."""
    import numpy as np

    values = np.random.default_rng(0).random((40, 3))
    values[1, 1], values[2, 2] = np.nan, np.inf
    np.save(folder / "x.npy", values)
    args = ["method=kmeans", "dataset=features", f"dataset.path={folder / 'x.npy'}", "method.n_clusters=2", f"output_dir={folder}"]
    return refused_in_one_line(args, "dataset 'features': 2 NaN or inf values")


def nan_loss(folder: Path) -> Outcome:
    """A learning rate that makes the loss NaN: the run stops, says so, and its last checkpoint loads with finite weights."""
    from deepclust_cli.engine.checkpoint import load_checkpoint

    args = [
        "method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "method.ae.enabled=true", "method.ae.epochs=2",
        "method.ae.hidden=[16]", "method.ae.code_dim=4", "method.spectral.lr=1e30", "method.spectral.min_lr=0", *COMMON, f"output_dir={folder}",
    ]
    outcome = refused_in_one_line(args, "the training loss became nan")
    if not outcome.survived:
        return outcome
    kept = load_checkpoint(only_session(folder) / "checkpoints" / "last.ckpt")
    finite = all(bool(t.isfinite().all()) for net in kept["method"]["state"]["nets"].values() for t in net.values())
    return outcome if finite else Outcome(False, "the last good checkpoint (it holds non-finite weights)")
