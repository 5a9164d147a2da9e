"""Small data, default configs: how long each method takes and what it reaches, start-up included.

    python scripts/bench_small.py                       # every method × every dataset below
    python scripts/bench_small.py --methods kmeans,lnscc --datasets wine,blobs

Each cell is one ``deepclust method=<m> dataset=...`` process with the method's default config
(nothing tuned), timed from process start to exit. Datasets: the generated sets (two moons,
circles, blobs, 2,000 points each), scikit-learn's digits (1,797 × 64), and feature files this
script writes from scikit-learn's bundled tables — breast cancer (569 × 30), wine (178 × 13),
iris (150 × 4) — and a 2,000 × 50 ``make_classification`` set; none of them is a preset's data.
Prints one table: seconds, ACC and NMI per method and dataset (target: every cell under 20 s).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from benchlib import machine, run_deepclust

METHODS = ("kmeans", "spectral", "spectralnet", "spectralnet_ae", "lnscc")
GENERATED = {
    "twomoons": ["dataset=twomoons", "dataset.n_samples=2000"],
    "circles": ["dataset=circles", "dataset.n_samples=2000"],
    "blobs": ["dataset=blobs", "dataset.n_samples=2000"],
    "digits": ["dataset=digits"],
}
TABLES = ("breast_cancer", "wine", "iris", "classification")


def write_table(name: str, folder: Path) -> list[str]:
    """A features CSV (with a header) and its labels for one of scikit-learn's bundled tables."""
    import sklearn.datasets

    if name == "classification":
        x, y = sklearn.datasets.make_classification(2000, n_features=50, n_informative=10, n_classes=5, n_clusters_per_class=1, class_sep=2.0, random_state=0)
    else:
        bunch = getattr(sklearn.datasets, f"load_{name}")()
        x, y = bunch.data, bunch.target
    path, labels = folder / f"{name}.csv", folder / f"{name}_labels.txt"
    header = ",".join(f"f{j}" for j in range(x.shape[1]))
    np.savetxt(path, x, delimiter=",", header=header, comments="", fmt="%.6g")
    labels.write_text("\n".join(str(v) for v in y) + "\n")
    return ["dataset=features", f"dataset.path={path}", f"dataset.labels={labels}", "dataset.standardize=true"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--datasets", default=",".join([*GENERATED, *TABLES]))
    args = parser.parse_args()
    methods, datasets = args.methods.split(","), args.datasets.split(",")
    with tempfile.TemporaryDirectory(prefix="bench-small-") as scratch:
        folder = Path(scratch)
        overrides = {name: GENERATED[name] if name in GENERATED else write_table(name, folder) for name in datasets}
        print(f"machine: {machine()}")
        print("| method | " + " | ".join(datasets) + " |")
        print("|---|" + "---|" * len(datasets))
        for method in methods:
            cells = []
            for name in datasets:
                result = run_deepclust([f"method={method}", *overrides[name]], folder / "outputs")
                cells.append(f"{result['seconds']:.1f} s, {result.get('acc', float('nan')):.3f} / {result.get('nmi', float('nan')):.3f}")
            print(f"| {method} | " + " | ".join(cells) + " |", flush=True)
        print("cells: wall seconds of the whole process, ACC / NMI")


if __name__ == "__main__":
    main()
