"""What the benchmark scripts share: running ``deepclust`` as users run it, and timing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

# Linux keeps a process's peak RSS across exec, and a child forked from a benchmark holding a
# dataset starts with the benchmark's pages: its ru_maxrss would be the benchmark's. A small
# launcher (itself started that way, but then exec'd into a fresh interpreter) starts the command
# instead, so the command's peak is its own; the launcher times it and reports both.
LAUNCHER = (
    "import os, subprocess, sys, time; start = time.perf_counter(); child = subprocess.Popen(sys.argv[2:]); "
    "_, status, usage = os.wait4(child.pid, 0); "
    "open(sys.argv[1], 'w').write(f'{time.perf_counter() - start} {usage.ru_maxrss}'); "
    "sys.exit(os.waitstatus_to_exitcode(status))"
)


def measured(command: list[str], cwd: Optional[Path] = None) -> tuple[int, str, str, float, float]:
    """Run ``command`` to its end: (exit code, stdout, stderr, wall seconds, peak RSS in GiB)."""
    with tempfile.TemporaryDirectory(prefix="measured-") as scratch, tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        report = Path(scratch) / "usage"
        code = subprocess.run([sys.executable, "-c", LAUNCHER, str(report), *command], stdout=out, stderr=err, text=True, cwd=cwd).returncode
        out.seek(0), err.seek(0)
        seconds, peak_kib = (float(value) for value in report.read_text().split())  # Linux: ru_maxrss is in KiB
        return code, out.read(), err.read(), seconds, peak_kib / 2**20


def recall(found, exact) -> float:
    """The share of each row's exact neighbor ids (``exact``, rows × k) that ``found`` holds."""
    found, exact = np.asarray(found), np.asarray(exact)
    return float((found[:, :, None] == exact[:, None, :]).any(axis=2).mean())


def run_deepclust(overrides: list[str], output_dir: Path) -> dict:
    """One ``deepclust`` process with ``overrides``; its metrics, whole-process wall time and peak RSS.

    Exits with the run's own output when it fails, so a table is never filled with a broken run.
    """
    # The module, not the console script: runs wherever the package imports (an install or PYTHONPATH).
    command = [sys.executable, "-m", "deepclust_cli", *overrides, f"output_dir={output_dir}"]
    code, stdout, stderr, seconds, peak_gib = measured(command)
    if code != 0:
        raise SystemExit(f"deepclust {' '.join(overrides)} failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    session = Path([line for line in stdout.splitlines() if line.startswith("session: ")][-1][len("session: ") :])
    metrics = json.loads((session / "metrics.json").read_text())
    return {**metrics, "seconds": seconds, "session": session, "peak_rss_gib": peak_gib}


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores; torch {torch.__version__} sees {gpu}"
