"""LNSCC against its targets: MNIST (70,000 raw-pixel digits) and scikit-learn's digits.

Each row is one ``deepclust experiment=lnscc_<dataset>`` process (conf/experiment/), timed from
start to exit, with the process's peak resident memory.

    .venv/bin/python scripts/bench_lnscc.py                     # mnist and digits
    .venv/bin/python scripts/bench_lnscc.py --datasets digits --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import machine, run_deepclust

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"mnist": "ACC >= 0.95, NMI >= 0.90, < 15 min", "digits": "ACC >= 0.90"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="mnist,digits")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="0", help="comma-separated")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    header = f"{'dataset':<7} {'seed':>4} | {'ACC':>6} {'NMI':>6} {'ARI':>6} {'time':>9} {'peak RSS':>9} | target"
    print(header)
    print("-" * len(header), flush=True)
    for name in args.datasets.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            overrides = [f"experiment=lnscc_{name}", f"data_dir={args.data_dir.resolve()}", f"seed={seed}"]
            with tempfile.TemporaryDirectory(prefix=f"bench-lnscc-{name}-") as scratch:
                result = run_deepclust(overrides, Path(scratch))
            print(
                f"{name:<7} {seed:>4} | {result['acc']:>6.4f} {result['nmi']:>6.4f} {result['ari']:>6.4f} "
                f"{result['seconds'] / 60:>5.1f} min {result['peak_rss_gib']:>5.2f} GiB | {TARGETS[name]}",
                flush=True,
            )


if __name__ == "__main__":
    main()
