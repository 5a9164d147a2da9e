"""Wall time and peak memory of whole runs as the data grows: is each method linear in n?

The data is one generated mixture at every size: ``dataset=blobs`` with 20 rotated, stretched
Gaussian components in 64 dimensions (``anisotropy`` 4, ``cluster_std`` 1, seeded), n points.
Each (method, n) is one ``deepclust`` process, timed from start to exit with its own peak RSS
(``benchlib.measured``). The table gives seconds, GiB and ACC per n, and the log-log slope of the
time between consecutive sizes (1.0 = linear); ``scaling.png`` draws time and memory against n.

    .venv/bin/python scripts/bench_scaling.py                                   # 10k, 100k, 1M: hours on 2 cores
    .venv/bin/python scripts/bench_scaling.py --sizes 10000 100000 --methods kmeans lnscc
    .venv/bin/python scripts/bench_scaling.py --plot outputs/scaling.png
    .venv/bin/python scripts/bench_scaling.py --sizes 10000 100000 200000 --methods spectral
"""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from benchlib import machine, run_deepclust

REPO = Path(__file__).resolve().parents[1]
MIXTURE = [
    "dataset=blobs", "dataset.n_features=64", "dataset.n_classes=20", "dataset.cluster_std=1.0",
    "dataset.center_box=10", "dataset.anisotropy=4", "dataset.seed=0",
]
# Settings whose work per epoch grows with n, and a fixed number of epochs: the curve shows how a
# method's cost grows, not how long it trains to convergence at each size.
METHODS = {
    "kmeans": ["method=kmeans"],
    "spectralnet": [
        "method=spectralnet", "method.spectral.sparse=true", "method.spectral.epochs=10", "method.spectral.patience=1000",
        "method.spectral.hidden=[256,256]", "method.n_neighbors=10", "method.scale_k=5",
    ],
    "spectralnet_ae": [
        "method=spectralnet_ae", "method.spectral.sparse=true", "method.spectral.epochs=10", "method.spectral.patience=1000",
        "method.spectral.hidden=[256,256]", "method.n_neighbors=10", "method.scale_k=5",
    ],
    "lnscc": ["method=lnscc"],
    # Not in the default list: scikit-learn's eigensolver is what method.max_fit_samples guards
    # against; the limit lifted, this row measures where that guard belongs.
    "spectral": ["method=spectral", "method.max_fit_samples=1000000000"],
}
DEFAULT_METHODS = ["kmeans", "spectralnet", "spectralnet_ae", "lnscc"]


def slope(points: list[tuple[int, float]]) -> list[str]:
    """The log-log slope of seconds against n from each size to the next ("" for the first)."""
    cells = [""]
    for (n0, t0), (n1, t1) in zip(points, points[1:]):
        cells.append(f"{math.log(t1 / t0) / math.log(n1 / n0):.2f}")
    return cells


def plot(results: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (time_axis, memory_axis) = plt.subplots(1, 2, figsize=(10, 4))
    for method, rows in results.items():
        sizes = [row["n"] for row in rows]
        time_axis.loglog(sizes, [row["seconds"] for row in rows], "o-", label=method)
        memory_axis.loglog(sizes, [row["peak_rss_gib"] for row in rows], "o-", label=method)
    if results:
        first = min(row["n"] for rows in results.values() for row in rows)
        last = max(row["n"] for rows in results.values() for row in rows)
        base = min(rows[0]["seconds"] for rows in results.values())
        time_axis.loglog([first, last], [base, base * last / first], "k:", label="linear")
    time_axis.set(xlabel="samples n", ylabel="wall time (s)", title="time of the whole run")
    memory_axis.set(xlabel="samples n", ylabel="peak RSS (GiB)", title="peak memory")
    for axis in (time_axis, memory_axis):
        axis.grid(True, which="both", alpha=0.3)
        axis.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--methods", nargs="*", default=DEFAULT_METHODS, choices=list(METHODS))
    parser.add_argument("--plot", type=Path, default=REPO / "outputs" / "scaling.png")
    args = parser.parse_args()
    print(f"# scaling on a 20-component anisotropic mixture in 64-d ({machine()})\n")
    print("| method | n | seconds | peak RSS (GiB) | ACC | slope of time |")
    print("|---|---|---|---|---|---|")
    results: dict[str, list[dict]] = {}
    for method in args.methods:
        rows = results.setdefault(method, [])
        for n in sorted(args.sizes):
            with tempfile.TemporaryDirectory(prefix=f"scaling-{method}-") as scratch:
                run = run_deepclust([*METHODS[method], *MIXTURE, f"dataset.n_samples={n}"], Path(scratch))
            rows.append({"n": n, "seconds": run["seconds"], "peak_rss_gib": run["peak_rss_gib"], "acc": run.get("acc", float("nan"))})
            slopes = slope([(row["n"], row["seconds"]) for row in rows])
            print(f"| {method} | {n:,} | {run['seconds']:.1f} | {run['peak_rss_gib']:.2f} | {rows[-1]['acc']:.4f} | {slopes[-1]} |", flush=True)
    plot(results, args.plot)
    print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
