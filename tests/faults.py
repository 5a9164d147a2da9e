"""Fault injection for the reliability tests and ``scripts/reliability_report.py``: runs of
``deepclust`` in real processes, killed (SIGKILL) or stopped (SIGINT, SIGTERM) at a random moment
and resumed, checkpoint writers killed mid-write, hostile and corrupt checkpoints.

Every scenario returns an :class:`Outcome`: whether the run survived, and what was lost if not.
"""

from __future__ import annotations

import json
import os
import random
import re
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


# -- a full disk ---------------------------------------------------------------------------------
# Each scenario runs in a private mount namespace (``unshare -rm``: no root needed, nothing to clean
# up) on a tmpfs that is full from the start, fills up once the run has written its first checkpoint,
# or is sized from an uninterrupted run to fill while the final results are written; then the disk
# grows and the command the error printed runs.
PAGE = 4096
RESERVE = 64 * 1024  # deepclust_cli.engine.disk.RESERVE_BYTES
DISK_FULL_RUNS = {"start": "kmeans", "training": "spectralnet", "end": "kmeans"}
KMEANS_RUN = ["method=kmeans", "dataset=blobs", "dataset.n_samples=1000"]


def private_tmpfs_available() -> bool:
    """Whether this machine lets an unprivileged process mount a tmpfs in its own namespace."""
    try:
        done = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def pages(paths: list[Path]) -> int:
    """What the files ``paths`` occupy on a tmpfs: whole pages."""
    return sum(-(-path.stat().st_size // PAGE) * PAGE for path in paths)


def size_for_the_end(session: Path) -> int:
    """A tmpfs size on which the run of the uninterrupted ``session`` trains and checkpoints, and
    then runs out of room a third of the way through writing its results."""
    files = [path for path in session.rglob("*") if path.is_file()]
    results = [p for p in files if p.relative_to(session).parts[0] in ("plots", "predictions") or p.name == "metrics.json"]
    return pages([p for p in files if p not in results]) + RESERVE + pages(results) // 3 // PAGE * PAGE


SMALL_DISK_DRIVER = r"""
import json, shlex, subprocess, sys, time
from pathlib import Path
spec = json.loads(Path(sys.argv[1]).read_text())
disk, report = Path(spec["disk"]), {}
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={spec['size']}", "tmpfs", str(disk)], check=True)
if spec["prefill"]:
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'fill'}", "bs=4k"], capture_output=True)
process = subprocess.Popen(spec["command"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
if spec["fill_after"]:  # the disk fills up while the run trains, once it has a checkpoint
    while not any(disk.glob(spec["fill_after"])) and process.poll() is None:
        time.sleep(0.005)
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'fill'}", "bs=64k"], capture_output=True)
first_err = process.communicate(timeout=spec["timeout"])[1]
report["first"] = {"code": process.returncode, "err": first_err}
outputs = disk / "out"
report["files"] = sorted(str(p.relative_to(outputs)) for p in outputs.rglob("*") if p.is_file()) if outputs.is_dir() else []
runs = sorted(outputs.rglob("run.json")) if outputs.is_dir() else []
report["run_json"] = [json.loads(p.read_text()) for p in runs]
checkpoint = [p for p in outputs.rglob("last.ckpt")] if outputs.is_dir() else []
if checkpoint:
    from deepclust_cli.engine.checkpoint import load_checkpoint
    try:
        load_checkpoint(checkpoint[0])
        report["checkpoint"] = "loads"
    except Exception as error:
        report["checkpoint"] = f"{type(error).__name__}: {error}"
(disk / "fill").unlink(missing_ok=True)
subprocess.run(["mount", "-o", "remount,size=512m", str(disk)], check=True)  # the user freed space
lines = first_err.strip().splitlines()
again = spec["command"]
if lines and "then run: deepclust " in lines[-1]:
    again = [*spec["command"][:3], *shlex.split(lines[-1].split("then run: deepclust ", 1)[1])]
second = subprocess.run(again, capture_output=True, text=True, timeout=spec["timeout"])
report["second"] = {"code": second.returncode, "err": second.stderr, "command": again[3:]}
report["metrics"] = [json.loads(p.read_text()) for p in sorted(outputs.rglob("metrics.json"))]
report["after"] = [json.loads(p.read_text())["status"] for p in sorted(outputs.rglob("run.json"))]
Path(spec["report"]).write_text(json.dumps(report))
"""


def full_disk(folder: Path, moment: str) -> Outcome:
    """Run out of disk at ``moment`` ("start", "training", "end"): one ``deepclust: error: disk
    full`` line naming what survives, run.json saying so, the last checkpoint whole; once the disk
    has room, the printed command (or the same one) finishes with the metrics of an uninterrupted run."""
    args = KMEANS_RUN if DISK_FULL_RUNS[moment] == "kmeans" else run_args("spectralnet", folder)
    expected = reference_metrics(args, folder / "reference")
    sizes = {"start": PAGE, "training": 8 * 2**20, "end": size_for_the_end(only_session(folder / "reference"))}
    disk = folder / "disk"
    disk.mkdir()
    spec = {
        "disk": str(disk), "size": sizes[moment], "prefill": moment == "start", "fill_after": "out/**/checkpoints/last.ckpt" if moment == "training" else None,
        "timeout": RUN_TIMEOUT, "report": str(folder / "report.json"),
        "command": [*deepclust(*args), f"output_dir={disk / 'out'}"],
    }
    (folder / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", SMALL_DISK_DRIVER, str(folder / "spec.json")],
        capture_output=True, text=True, env=environment(), timeout=3 * RUN_TIMEOUT,
    )
    if done.returncode != 0:
        return Outcome(False, "the scenario (its driver failed)", done.stderr[-2000:])
    report = json.loads((folder / "report.json").read_text())
    return judge_full_disk(moment, report, expected)


def judge_full_disk(moment: str, report: dict, expected: dict) -> Outcome:
    first = report["first"]
    lines = first["err"].strip().splitlines()
    if first["code"] != 1 or not lines or not lines[-1].startswith("deepclust: error: disk full"):
        return Outcome(False, "a clear 'disk full' line", f"exit {first['code']}: {first['err'][-1500:]}")
    if "Traceback" in first["err"] or "Logging error" in first["err"]:
        return Outcome(False, "a clear 'disk full' line (a traceback was printed)", first["err"][-1500:])
    leftovers = [name for name in report["files"] if name.endswith(".tmp") or name.endswith(".reserve")]
    if leftovers:
        return Outcome(False, f"disk space to leftovers {leftovers}")
    if moment == "start":
        if report["files"]:
            return Outcome(False, "a clean refusal (files were left)", str(report["files"]))
    else:
        statuses = [(info["status"], info.get("error") or "") for info in report["run_json"]]
        if len(statuses) != 1 or statuses[0][0] != "failed" or "disk full" not in statuses[0][1]:
            return Outcome(False, "a true run.json", str(statuses))
        if report.get("checkpoint") != "loads":
            return Outcome(False, "the last good checkpoint", str(report.get("checkpoint")))
        if "its last good checkpoint" not in lines[-1] or "then run: deepclust --resume " not in lines[-1]:
            return Outcome(False, "the resume instructions", lines[-1])
    second = report["second"]
    if second["code"] != 0 or report["after"] != ["completed"] or len(report["metrics"]) != 1:
        return Outcome(False, "the run (rerun after freeing space failed)", f"exit {second['code']}, {report['after']}: {second['err'][-1500:]}")
    outcome = compare(expected, report["metrics"][0])
    outcome.detail = lines[-1]
    return outcome


# -- one writer per session, sweeps that skip nothing, refusals that change nothing -------------------
SMALL_SPECTRALNET = ["method=spectralnet", "dataset=blobs", "dataset.n_samples=300", "dataset.n_classes=3", "method.spectral.hidden=[16]",
                     "method.spectral.batch_size=100"]
# about 5 s of training per job, with a checkpoint at every epoch end
SLOW_SPECTRALNET = [*SMALL_SPECTRALNET, "method.spectral.epochs=150", "method.spectral.patience=1000", "trainer.checkpoint_min_seconds=0"]


def files_of(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (lock files aside) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def killed_after_first_checkpoint(args: list[str], outputs: Path) -> Path:
    """Start the run, SIGKILL it once it has a checkpoint; returns that ``last.ckpt``."""
    process = subprocess.Popen(deepclust(*args, f"output_dir={outputs}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
    if not wait_for("**/checkpoints/last.ckpt", outputs, process):
        raise AssertionError(f"the run ended before its first checkpoint: {process.communicate()[1][-2000:]}")
    process.kill()
    process.wait()
    return only_session(outputs) / "checkpoints" / "last.ckpt"


def two_resumes_at_once(folder: Path) -> Outcome:
    """Two ``--resume`` of one checkpoint started together: one trains, the other is refused in one
    line naming the first, and the run ends with the uninterrupted run's exact metrics."""
    args = run_args("spectralnet", folder)
    expected = reference_metrics(args, folder / "reference")
    checkpoint = killed_after_first_checkpoint(args, folder / "killed")
    resumes = [subprocess.Popen(deepclust("--resume", str(checkpoint)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
               for _ in range(2)]
    ended = [(process.wait(timeout=RUN_TIMEOUT), process.stderr.read()) for process in resumes]
    codes = sorted(code for code, _ in ended)
    refusal = next((err for code, err in ended if code == 1), "")
    if codes != [0, 1] or "is in use by process" not in refusal or len(refusal.strip().splitlines()) != 1:
        return Outcome(False, "one writer (both trained, or the refusal was unclear)", f"exits {codes}: {refusal[-1000:]}")
    return compare(expected, metrics_of(checkpoint.parent.parent))


def test_only_of_a_live_run(folder: Path) -> Outcome:
    """``--test-only`` of a session while it trains, three times: each answers without touching the
    session (a new session, or one line), and the live run ends with the uninterrupted run's metrics."""
    args = [*run_args("spectralnet", folder), "method.spectral.epochs=200"]  # long enough for the probes to start while it trains
    expected = reference_metrics(args, folder / "reference")
    outputs = folder / "live"
    live = subprocess.Popen(deepclust(*args, f"output_dir={outputs}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
    if not wait_for("**/checkpoints/last.ckpt", outputs, live):
        return Outcome(False, "the run", "it ended before its first checkpoint")
    session = only_session(outputs)
    for _ in range(3):
        if live.poll() is not None:
            break  # the run finished: a --test-only now scores it in its own session, as documented
        probe = subprocess.run(deepclust("--resume", str(session / "checkpoints" / "last.ckpt"), "--test-only", f"output_dir={folder / 'probes'}"),
                               capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
        last = probe.stderr.strip().splitlines()[-1:] or [""]
        if "Traceback" in probe.stderr or (probe.returncode != 0 and not last[0].startswith("deepclust: error: ")):
            return Outcome(False, "a clear answer to --test-only", probe.stderr[-1000:])
    _, err = live.communicate(timeout=RUN_TIMEOUT)
    if live.returncode != 0:
        return Outcome(False, "the live run", err[-1500:])
    scored = session / "run_test.json"
    if scored.exists() and scored.stat().st_mtime < (session / "metrics.json").stat().st_mtime:
        return Outcome(False, "the live session (--test-only wrote into it while it trained)")
    probes = folder / "probes"
    leftovers = [p for p in probes.rglob("*") if p.is_dir() and not any(p.iterdir())] + [p.parent for p in probes.rglob(".lock") if not (p.parent / "run_test.json").exists()]
    if leftovers:
        return Outcome(False, "a clean refusal (it left folders)", str(leftovers))
    return compare(expected, metrics_of(session))


def checkpoint_outside_its_session(folder: Path) -> Outcome:
    """A ``last.ckpt`` copied to ~/Downloads, resumed and tested: new sessions under output_dir, and
    the folder the copy lies in keeps exactly what it held."""
    outputs = folder / "outputs"
    trained = subprocess.run(deepclust(*KMEANS_RUN, f"output_dir={outputs}"), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    assert trained.returncode == 0, trained.stderr
    downloads = folder / "downloads"
    downloads.mkdir()
    (downloads / "notes.txt").write_text("mine\n")
    copy = downloads / "model.ckpt"
    copy.write_bytes((only_session(outputs) / "checkpoints" / "last.ckpt").read_bytes())
    before = files_of(downloads)
    for flags in (["--test-only"], []):
        done = subprocess.run(deepclust("--resume", str(copy), *flags, f"output_dir={outputs}"), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
        if done.returncode != 0:
            return Outcome(False, f"the {' '.join(flags) or 'resume'} of the copy", done.stderr[-1000:])
    if files_of(downloads) != before:
        return Outcome(False, "the folder of the copy (files were written there)", str(sorted(files_of(downloads))))
    sessions = sorted(path.parent for path in outputs.rglob("run*.json"))
    return Outcome(True) if len(sessions) == 3 else Outcome(False, "new sessions for the copy", str(sessions))


def sweep_names_that_clean_alike(folder: Path) -> Outcome:
    """``-m dataset.path=/x/a/s.csv,/x/a_s.csv``: both files are clustered, in folders of their own."""
    import numpy as np

    rng = np.random.default_rng(0)
    (folder / "a").mkdir()
    paths = [folder / "a" / "s.csv", folder / "a_s.csv"]
    for path, shift in zip(paths, (0.0, 50.0)):
        np.savetxt(path, rng.normal(size=(60, 2)) + shift, delimiter=",")
    args = ["-m", "method=kmeans", "method.n_clusters=2", "dataset=features", f"dataset.path={paths[0]},{paths[1]}", f"output_dir={folder / 'outputs'}"]
    done = subprocess.run(deepclust(*args), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    completed = [p for p in (folder / "outputs").rglob("run.json") if json.loads(p.read_text())["status"] == "completed"]
    if done.returncode != 0 or len(completed) != 2:
        return Outcome(False, f"a sweep job ({len(completed)} of 2 ran)", done.stderr[-1000:])
    return Outcome(True)


def sigterm_to_a_parallel_sweep(folder: Path) -> Outcome:
    """SIGTERM to ``hydra/launcher=parallel`` once both workers have a checkpoint: exit 143, every
    job completed or interrupted, no worker left training, a summary; rerun, all four complete."""
    command = deepclust("-m", *SLOW_SPECTRALNET, "seed=0,1,2,3", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"output_dir={folder}")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
    sweep_root = folder / "multirun"
    deadline = time.monotonic() + RUN_TIMEOUT
    while len(list(sweep_root.glob("*/*/checkpoints/last.ckpt"))) < 2:  # both workers train
        if process.poll() is not None or time.monotonic() > deadline:
            return Outcome(False, "the sweep (its workers never checkpointed)", process.communicate()[1][-1500:])
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=RUN_TIMEOUT)
    if process.returncode != 143 or "sweep stopped by SIGTERM" not in err:
        return Outcome(False, "the stop (exit code or message)", f"exit {process.returncode}: {err[-1500:]}")
    sweep = next(sweep_root.iterdir())
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/run.json")]
    if not runs or any(run["status"] not in ("interrupted", "completed") for run in runs) or not any(run["status"] == "interrupted" for run in runs):
        return Outcome(False, "a true run.json per job", str([run["status"] for run in runs]))
    if any(alive(run["pid"]) for run in runs):
        return Outcome(False, "control of the workers (one trains on, orphaned)")
    if not (sweep / "summary.md").is_file():
        return Outcome(False, "the summary")
    again = subprocess.run(command, capture_output=True, text=True, env=environment(), timeout=2 * RUN_TIMEOUT)
    finished = [json.loads(p.read_text())["status"] for p in sweep.glob("*/run.json")]
    if again.returncode != 0 or finished != ["completed"] * 4:
        return Outcome(False, "the rerun", f"exit {again.returncode}, {finished}: {again.stderr[-1000:]}")
    return Outcome(True)


def refused_resume(folder: Path) -> Outcome:
    """Resuming a finished run with other network widths, or other data: one line naming the keys,
    and the session keeps every byte (run.json still "completed")."""
    outputs = folder / "outputs"
    trained = subprocess.run(deepclust(*SMALL_SPECTRALNET, "method.spectral.epochs=2", f"output_dir={outputs}"), capture_output=True, text=True, env=environment(), timeout=RUN_TIMEOUT)
    assert trained.returncode == 0, trained.stderr
    session = only_session(outputs)
    before = files_of(session)
    for change, expected in (("method.spectral.hidden=[32]", "method.spectral.hidden=[32] (trained with [16])"),
                             ("dataset.n_samples=500", "dataset.n_samples differ")):
        outcome = refused_in_one_line(["--resume", str(session / "checkpoints" / "last.ckpt"), change], expected)
        if not outcome.survived:
            return outcome
    return Outcome(True) if files_of(session) == before else Outcome(False, "the session (the refusal changed files)")


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return True



def rank_processes(pid: int) -> list[int]:
    """The data-parallel ranks deepclust process ``pid`` spawned, oldest first (not its resource tracker)."""
    try:
        children = [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    return sorted(child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes())


def kill_9_of_one_rank(folder: Path) -> Outcome:
    """SIGKILL to one rank of a two-process run after its first checkpoint (the out-of-memory
    killer's way): one line naming the lost rank and the resume command, run.json "failed" with it,
    and the printed command ends with the uninterrupted run's exact metrics."""
    args = [*run_args("spectralnet", folder), "trainer.processes=2"]
    expected = reference_metrics(args, folder / "reference")
    outputs = folder / "killed"
    process = subprocess.Popen(deepclust(*args, f"output_dir={outputs}"), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment())
    if not wait_for("**/checkpoints/last.ckpt", outputs, process):
        return Outcome(False, "the run", f"it ended before its first checkpoint: {process.communicate()[1][-2000:]}")
    ranks = rank_processes(process.pid)
    if len(ranks) != 2:
        process.kill()
        return Outcome(False, "the ranks", f"found processes {ranks} under {process.pid}")
    os.kill(ranks[-1], signal.SIGKILL)
    _, err = process.communicate(timeout=RUN_TIMEOUT)
    lines = err.strip().splitlines()
    line = lines[0] if len(lines) == 1 else ""
    if process.returncode != 1 or not re.fullmatch(r"deepclust: error: rank \d of 2 was killed by SIGKILL .*resume with: deepclust --resume \S+", line):
        return Outcome(False, "the one line with the resume command", f"exit {process.returncode}: {err[-1500:]}")
    session = only_session(outputs)
    record = json.loads((session / "run.json").read_text())
    if record.get("status") != "failed" or record.get("error") != line.removeprefix("deepclust: error: "):
        return Outcome(False, "the record (run.json)", f"{record.get('status')}: {record.get('error')}")
    resumed = subprocess.run(deepclust(*shlex.split(line.split("resume with: deepclust ", 1)[1])), capture_output=True, text=True,
                             env=environment(), timeout=RUN_TIMEOUT)
    if resumed.returncode != 0:
        return Outcome(False, "the run (resume failed)", resumed.stderr[-2000:])
    return compare(expected, metrics_of(session))
