"""GeoCluster against its targets: exact-1NN accuracy on 10k squares, cuboids and 2-D segments,
and query throughput against brute force on 100k squares with 10k queries.

Each row is one ``deepclust experiment=geocluster_<set>`` process (conf/experiment/): the tree is
built, then 10,000 fresh uniform queries are answered by the tree and by exhaustive search on the
same device. "build" is the whole process's wall time.

    .venv/bin/python scripts/bench_geocluster.py
    .venv/bin/python scripts/bench_geocluster.py --sets squares100k --device cuda
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchlib import machine, run_deepclust

TARGETS = {
    "squares10k": "nn_acc >= 0.99",
    "squares100k": ">= 5x brute-force qps at nn_acc >= 0.99",
    "cuboids10k": "nn_acc >= 0.98",
    "segments2d10k": "nn_acc >= 0.98",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(TARGETS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--beam", type=int, default=None, help="override method.beam")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    header = (
        f"{'objects':<13} | {'nn_acc':>6} {'top10':>6} {'per level':<30} | {'qps':>8} {'brute':>8} {'speedup':>7} | "
        f"{'depth':>5} {'leaves':>6} {'build':>8} | target"
    )
    print(header)
    print("-" * len(header), flush=True)
    for name in args.sets.split(","):
        overrides = [f"experiment=geocluster_{name}", f"gpus={'[0]' if args.device == 'cuda' else '[]'}"]
        if args.beam is not None:
            overrides.append(f"method.beam={args.beam}")
        with tempfile.TemporaryDirectory(prefix=f"bench-geocluster-{name}-") as scratch:
            result = run_deepclust(overrides, Path(scratch))
        levels = [result[f"nn_acc_level_{level}"] for level in range(1, int(result["tree_depth"]) + 1)]
        print(
            f"{name:<13} | {result['nn_acc']:>6.4f} {result['nn_topk_acc']:>6.4f} {'/'.join(f'{v:.3f}' for v in levels):<30} | "
            f"{result['qps']:>8.0f} {result['qps_bruteforce']:>8.0f} {result['speedup']:>6.1f}x | "
            f"{int(result['tree_depth']):>5} {int(result['tree_leaves']):>6} {result['seconds'] / 60:>4.1f} min | {TARGETS[name]}",
            flush=True,
        )


if __name__ == "__main__":
    main()
