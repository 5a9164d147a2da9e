"""Time the metrics and neighbor search at ImageNet-like sizes on this machine's CPU.

Measures, with ``time.perf_counter`` and seeded random data:

* ``acc`` on 1,280,000 labels in 1,000 clusters: random predictions (numpy and torch CPU input),
  and predictions that are a permutation of the labels with 10% replaced at random (ACC ≈ 0.9);
* ``nmi`` and ``ari`` on the same noisy predictions;
* ``knn_acc`` (k=200, T=0.1) with a 100,000 × 128 train bank and 10,000 queries;
* exact ``knn`` (k=10) on 20,000 × 64 points against Annoy (50 trees, default and larger
  ``search_k``) on the same points, with Annoy's recall (share of the exact neighbors it finds),
  for isotropic Gaussian points and for points near an 8-d subspace.

Run from the repository root (about a minute on 2 cores)::

    .venv/bin/python scripts/bench_metrics.py
"""

from __future__ import annotations

import time

import numpy as np
import torch

from deepclust_cli.ops.metrics import acc, ari, knn_acc, nmi
from deepclust_cli.ops.neighbors import knn


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value


def main() -> None:
    rng = np.random.default_rng(0)
    rows = []

    n, k = 1_280_000, 1_000
    y_true = rng.integers(0, k, size=n)
    y_random = rng.integers(0, k, size=n)
    y_noisy = rng.permutation(k)[y_true]
    noise = rng.random(n) < 0.1
    y_noisy[noise] = rng.integers(0, k, size=int(noise.sum()))
    size = f"{n:,} labels, {k:,} clusters"
    rows.append(("acc random, numpy", size, *timed(acc, y_true, y_random)))
    rows.append(("acc random, torch cpu", size, *timed(acc, torch.from_numpy(y_true), torch.from_numpy(y_random))))
    rows.append(("acc 10% noise, numpy", size, *timed(acc, y_true, y_noisy)))
    rows.append(("acc 10% noise, torch cpu", size, *timed(acc, torch.from_numpy(y_true), torch.from_numpy(y_noisy))))
    rows.append(("nmi 10% noise", size, *timed(nmi, y_true, y_noisy)))
    rows.append(("ari 10% noise", size, *timed(ari, y_true, y_noisy)))

    # Overlapping Gaussian classes, so the kNN accuracy is neither chance nor a trivial 1.0.
    n_train, n_test, dims, classes = 100_000, 10_000, 128, 100
    centers = torch.randn(classes, dims, generator=torch.Generator().manual_seed(0))
    y_train = torch.randint(classes, (n_train,), generator=torch.Generator().manual_seed(1))
    y_test = torch.randint(classes, (n_test,), generator=torch.Generator().manual_seed(2))
    noise_gen = torch.Generator().manual_seed(3)
    train = centers[y_train] + 4.0 * torch.randn(n_train, dims, generator=noise_gen)
    test = centers[y_test] + 4.0 * torch.randn(n_test, dims, generator=noise_gen)
    rows.append(
        ("knn_acc k=200 T=0.1", f"{n_train:,}x{dims} bank, {n_test:,} queries", *timed(knn_acc, train, y_train, test, y_test))
    )

    # Isotropic 64-d Gaussians are Annoy's worst case (no structure for its splits to follow);
    # points near an 8-d subspace look more like learned features.
    gaussian = rng.standard_normal((20_000, 64))
    latent = rng.standard_normal((20_000, 8)) @ rng.standard_normal((8, 64)) + 0.1 * rng.standard_normal((20_000, 64))
    for name, points in (("64-d gaussian", gaussian), ("8-d latent in 64-d", latent)):
        points = torch.from_numpy(points.astype(np.float32))
        size = f"20,000x64 {name}, k=10"
        seconds, (_, exact) = timed(knn, points, 10)
        rows.append(("knn exact", size, seconds, float("nan")))
        for search_k in (-1, 5_000):
            seconds, (_, approx) = timed(knn, points, 10, backend="annoy", search_k=search_k)
            recall = (approx[:, :, None] == exact[:, None, :]).any(dim=2).float().mean().item()
            rows.append((f"knn annoy search_k={search_k} (recall)", size, seconds, recall))

    header = ("what", "size", "seconds", "value")
    cells = [header] + [(what, size, f"{sec:.3f}", "-" if value != value else f"{value:.4f}") for what, size, sec, value in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(4)]
    for i, row in enumerate(cells):
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:>{widths[2]}}  {row[3]:>{widths[3]}}")
        if i == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
