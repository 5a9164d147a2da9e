"""What the benchmark scripts share: running ``deepclust`` as users run it, and timing it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path


def run_deepclust(overrides: list[str], output_dir: Path) -> dict:
    """One ``deepclust`` process with ``overrides``; its metrics and whole-process wall time.

    Exits with the run's own output when it fails, so a table is never filled with a broken run.
    """
    command = [str(Path(sys.executable).with_name("deepclust")), *overrides, f"output_dir={output_dir}"]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"deepclust {' '.join(overrides)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    session = Path([line for line in result.stdout.splitlines() if line.startswith("session: ")][-1][len("session: ") :])
    metrics = json.loads((session / "metrics.json").read_text())
    return {**metrics, "seconds": seconds, "session": session}


def machine() -> str:
    import os

    import torch

    return f"{os.cpu_count()} CPU cores; torch sees {'a GPU' if torch.cuda.is_available() else 'no GPU'}"
