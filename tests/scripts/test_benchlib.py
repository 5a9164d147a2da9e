"""The benchmarks' process measurement: a command's own wall time and peak memory."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))

from benchlib import measured  # noqa: E402


def test_a_command_s_peak_memory_is_its_own_not_the_benchmark_s():
    held = bytearray(400 * 2**20)  # the benchmark holds a dataset...
    held[:: 4096] = b"x" * len(held[:: 4096])
    code, out, _, seconds, peak_gib = measured([sys.executable, "-c", "x = bytearray(100 * 2**20); x[::4096] = b'y' * len(x[::4096]); print('done')"])
    assert code == 0 and out.strip() == "done" and seconds > 0
    assert 0.09 < peak_gib < 0.3  # ...which a forked child's ru_maxrss would report (>= 0.39 GiB)
    assert measured([sys.executable, "-c", "raise SystemExit(3)"])[0] == 3
