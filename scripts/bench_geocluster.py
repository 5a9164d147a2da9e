"""GeoCluster against its targets: exact-1NN accuracy on 10k squares, cuboids and 2-D segments,
and query throughput against brute force on 100k squares with 10k queries; with ``--like-for-like``,
against the reference's published per-level figures on the reference's own object files.

Each row is one ``deepclust experiment=geocluster_<set>`` process (conf/experiment/): the tree is
built, then 10,000 fresh uniform queries are answered by the tree and by exhaustive search on the
same device. "build" is the whole process's wall time.

``--like-for-like`` reads ``<data-dir>/geocluster/10000{sq,cb}_1_4.npy`` and runs each file twice:
the reference's settings (``experiment=geocluster_reference_*``: greedy descent, its children per
node and leaf size) and our defaults (beam 8, 8 children, leaves of 64), both under the reference's
metric (L∞ in world coordinates) and its query distribution (uniform over the objects' box). Per
level it prints the reference's rule (``nn_acc_reached_level_L``: a query whose path ended in a leaf
above level L counts as wrong there) and ours (``nn_acc_level_L``: that leaf is carried along).

    .venv/bin/python scripts/bench_geocluster.py
    .venv/bin/python scripts/bench_geocluster.py --sets squares100k --device cuda
    .venv/bin/python scripts/bench_geocluster.py --like-for-like --data-dir ../shared/data
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


# Published per-level exact-1NN accuracy (%) of the reference's greedy descent on these files.
PUBLISHED = {"squares": [94, 85, 64, 54, 20, 2.4], "cuboids": [93, 82, 73, 62, 12]}
OUR_DEFAULTS_ON_REFERENCE = {
    "squares": ["method=geocluster", "dataset=reference_squares", "method.metric=world", "method.query_margin=0.0"],
    "cuboids": ["method=geocluster", "dataset=reference_cuboids", "method.query_margin=0.0"],
}


def per_level(result: dict, key: str) -> str:
    return " / ".join(f"{100 * result[f'{key}_{level}']:.1f}" for level in range(1, int(result["tree_depth"]) + 1))


def like_for_like(data_dir: str, device: str) -> None:
    """The reference's settings and our defaults on the reference's own files, beside its published figures."""
    print("| objects | settings | per level, reference's rule (%) | per level, ours: leaf carried (%) | exact-1NN | tree qps | brute qps | depth | leaves | build |")
    print("|---|---|---|---|---|---|---|---|---|---|", flush=True)
    for kind, published in PUBLISHED.items():
        print(f"| 10k {kind} | published (greedy) | {' / '.join(f'{v:g}' for v in published)} | — | — | — | — | {len(published)} | — | — |", flush=True)
        rows = {"reference's settings": [f"experiment=geocluster_reference_{kind}10k"], "our defaults": OUR_DEFAULTS_ON_REFERENCE[kind]}
        for label, overrides in rows.items():
            overrides = [*overrides, f"data_dir={data_dir}", f"gpus={'[0]' if device == 'cuda' else '[]'}"]
            with tempfile.TemporaryDirectory(prefix=f"bench-geocluster-reference-{kind}-") as scratch:
                result = run_deepclust(overrides, Path(scratch))
            print(
                f"| 10k {kind} | {label} | {per_level(result, 'nn_acc_reached_level')} | {per_level(result, 'nn_acc_level')} | "
                f"{result['nn_acc']:.4f} | {result['qps']:,.0f} | {result['qps_bruteforce']:,.0f} | {int(result['tree_depth'])} | "
                f"{int(result['tree_leaves'])} | {result['seconds'] / 60:.1f} min |",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(TARGETS))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--beam", type=int, default=None, help="override method.beam")
    parser.add_argument("--like-for-like", action="store_true", help="the reference's files, settings and published figures")
    parser.add_argument("--data-dir", default="data", help="holds geocluster/10000sq_1_4.npy and 10000cb_1_4.npy (--like-for-like)")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    if args.like_for_like:
        like_for_like(args.data_dir, args.device)
        return
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
