"""Time the 15-nearest-neighbor graph of MNIST rows with each ``knn`` back end, side by side.

For each size n (the first n of the 70,000 MNIST images, pixels in [0, 1]), in this one process:

* ``exact``: our torch search (the reference every recall is measured against);
* ``ivf``: our inverted file (4·√n k-means cells, 16 probed, exact distances within them);
* ``hnsw``: our faiss HNSW back end (32 links, candidate list 32, a one-thread build);
* ``faiss HNSW M32 ef64``: faiss used as the issue's peer measurement did (its default threads);
* ``annoy``: our Annoy back end (50 trees);
* ``auto``: what the methods use by default — the row says which back end it chose.

Recall is the share of each point's exact 15 neighbors (itself excluded) that a back end found.
Run from the repository root (about 12 minutes on 2 cores at the default sizes)::

    .venv/bin/python scripts/bench_knn.py [--sizes 10000 30000 70000] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from benchlib import machine, recall
from deepclust_cli.data.vision import read_idx
from deepclust_cli.ops import neighbors
from deepclust_cli.ops.neighbors import knn

K = 15


def mnist_rows(data_dir: Path) -> torch.Tensor:
    raw = data_dir / "MNIST" / "raw"
    images = [read_idx(raw / f"{part}-images-idx3-ubyte", ndim=3) for part in ("train", "t10k")]
    return torch.from_numpy(np.concatenate(images).reshape(-1, 784)).float().div_(255)


def faiss_peer(x: torch.Tensor) -> torch.Tensor:
    """faiss HNSW as a user would call it: M 32, efSearch 64, every thread for build and search."""
    import faiss

    index = faiss.IndexHNSWFlat(x.shape[1], 32)
    index.add(x.numpy())
    index.hnsw.efSearch = 64
    _, found = index.search(x.numpy(), K + 1)
    ids, _ = neighbors.drop_self(found.astype(np.int64), K)
    return torch.from_numpy(ids)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 20_000, 30_000, 50_000, 70_000])
    parser.add_argument("--data-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    rows = mnist_rows(args.data_dir)
    print(f"# {K}-NN graph of MNIST rows ({machine()}, torch threads {torch.get_num_threads()})\n")
    print("| n | back end | seconds | recall | seconds / exact |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        x = rows[:n].contiguous()
        exact_seconds, (_, exact) = timed(knn, x, K, backend="exact")
        runs = [
            ("exact", exact_seconds, exact),
            ("ivf", *timed(lambda: knn(x, K, backend="ivf")[1])),
            ("hnsw", *timed(lambda: knn(x, K, backend="hnsw")[1])),
            ("faiss HNSW M32 ef64 (peer)", *timed(faiss_peer, x)),
            ("annoy, 50 trees", *timed(lambda: knn(x, K, backend="annoy")[1])),
        ]
        chosen = "exact" if n <= neighbors.AUTO_EXACT_MAX_CPU else "ivf"
        for name, seconds, found in runs:
            label = f"{name} (= auto)" if name == chosen else name
            print(f"| {n:,} | {label} | {seconds:.1f} | {recall(found, exact):.4f} | {seconds / exact_seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
