"""What the benchmark scripts share: running ``deepclust`` as users run it, and timing it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_deepclust(overrides: list[str], output_dir: Path) -> dict:
    """One ``deepclust`` process with ``overrides``; its metrics, whole-process wall time and peak RSS.

    Exits with the run's own output when it fails, so a table is never filled with a broken run.
    """
    # The module, not the console script: runs wherever the package imports (an install or PYTHONPATH).
    command = [sys.executable, "-m", "deepclust_cli", *overrides, f"output_dir={output_dir}"]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        # wait4, not wait: the child's own resource usage, so its peak memory is its own.
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if process.returncode != 0:
        raise SystemExit(f"deepclust {' '.join(overrides)} failed:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    session = Path([line for line in stdout.splitlines() if line.startswith("session: ")][-1][len("session: ") :])
    metrics = json.loads((session / "metrics.json").read_text())
    return {**metrics, "seconds": seconds, "session": session, "peak_rss_gib": usage.ru_maxrss / 2**20}  # Linux: KiB


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{os.cpu_count()} CPU cores; torch {torch.__version__} sees {gpu}"
