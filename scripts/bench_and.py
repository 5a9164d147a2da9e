"""AND's targets: MNIST on the CPU, anchor mining at ImageNet scale, CIFAR-10 epoch time on a GPU.

1. ``deepclust experiment=and_mnist`` on the real MNIST: knn_acc, ACC/NMI/ARI and wall time.
2. Anchor mining (entropy + nearest neighbor of every entry) of an ``--bank-size`` × 128 bank of
   random unit vectors on ``--device``: time and peak memory. ``--mining-rows`` mines only that
   many rows (the full cost is rows × bank size, so the time for all rows is projected linearly
   and labelled so); the memory peak is the real one, as blocks are the same size either way.
3. With ``--cifar-epoch`` (and a CUDA device): seconds per AND epoch of ResNet18 on 50,000 CIFAR-sized
   random images with augmentation, bf16 autocast and channels_last, and the projected time of the
   full 5 × 200-epoch schedule.

    .venv/bin/python scripts/bench_and.py                          # 1 and 2 (projected) on the CPU
    .venv/bin/python scripts/bench_and.py --skip-mnist --device cuda --mining-rows 0 --cifar-epoch
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchlib import machine, run_deepclust
from deepclust_cli.engine.memory import reuse_freed_memory

REPO = Path(__file__).resolve().parents[1]


def bench_mnist(data_dir: Path, seed: int) -> None:
    overrides = ["experiment=and_mnist", f"data_dir={data_dir.resolve()}", f"seed={seed}"]
    with tempfile.TemporaryDirectory(prefix="bench-and-mnist-") as scratch:
        result = run_deepclust(overrides, Path(scratch))
    print(f"{'run':<22} | {'knn_acc':>7} {'ACC':>6} {'NMI':>6} {'ARI':>6} {'time':>9} | target")
    print(
        f"{'and_mnist seed ' + str(seed):<22} | {result['knn_acc']:>7.4f} {result['acc']:>6.4f} {result['nmi']:>6.4f} "
        f"{result['ari']:>6.4f} {result['seconds'] / 60:>6.1f} min | knn_acc >= 0.97 in < 20 min",
        flush=True,
    )


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def bench_mining(size: int, rows: int, device: torch.device, chunk_bytes: int) -> None:
    from deepclust_cli.methods.anchor_neighborhood.memory_bank import MemoryBank

    bank = MemoryBank(size, 128, generator=torch.Generator().manual_seed(0), device=device)
    bank.features = torch.nn.functional.normalize(bank.features, dim=1)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    before = peak_rss_bytes()
    start = time.perf_counter()
    entropy, _ = bank.entropy_and_nearest(chunk_bytes, rows=rows or None)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = f"{torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB on the GPU (bank {bank.features.nbytes / 2**30:.2f} GiB)"
    else:
        peak = f"{peak_rss_bytes() / 2**30:.2f} GiB process RSS (bank {bank.features.nbytes / 2**30:.2f} GiB, +{(peak_rss_bytes() - before) / 2**30:.2f} while mining)"
    seconds = time.perf_counter() - start
    mined_rows = len(entropy)
    projected = seconds * size / mined_rows
    label = "measured" if mined_rows == size else f"projected from {mined_rows} rows"
    print(f"anchor mining, {size} × 128 bank on {device}, {chunk_bytes >> 20} MiB blocks:")
    print(f"  {mined_rows} rows in {seconds:.1f} s; all {size} rows: {projected:.0f} s ({projected / 60:.1f} min, {label})")
    print(f"  peak memory: {peak}", flush=True)


def bench_cifar_epoch(device: torch.device) -> None:
    from deepclust_cli.config import Precision, TrainerConfig
    from deepclust_cli.engine.context import Context
    from deepclust_cli.methods import AND

    images = torch.randint(0, 256, (50_000, 3, 32, 32), dtype=torch.uint8)
    model = AND(
        n_clusters=10,
        epochs=1,
        anchor_fractions=[0.5],
        mean=[0.4914, 0.4822, 0.4465],
        std=[0.2470, 0.2435, 0.2616],
        device=device,
    )
    context = Context(device=device, trainer=TrainerConfig(precision=Precision.bf16), show_progress=False)
    for label in ("warm-up", "timed"):
        start = time.perf_counter()
        model.fit(images, context=context)
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        print(f"CIFAR-10 ResNet18 epoch ({label}, incl. anchor mining, augmentation, k-means readout): {seconds:.1f} s", flush=True)
    print(f"  projected 5 rounds × 200 epochs: {seconds * 1000 / 3600:.1f} h (target <= 8 s/epoch)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-mnist", action="store_true")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--bank-size", type=int, default=1_281_167)
    parser.add_argument("--mining-rows", type=int, default=20_000, help="0: all rows")
    parser.add_argument("--chunk-mib", type=int, default=256)
    parser.add_argument("--cifar-epoch", action="store_true")
    args = parser.parse_args()
    reuse_freed_memory()  # as the CLI does: 256 MiB similarity blocks would be page-faulted afresh each time
    print(f"machine: {machine()}; torch {torch.__version__}", flush=True)
    if not args.skip_mnist:
        bench_mnist(args.data_dir, args.seed)
    bench_mining(args.bank_size, args.mining_rows, torch.device(args.device), args.chunk_mib << 20)
    if args.cifar_epoch:
        if not torch.cuda.is_available():
            sys.exit("--cifar-epoch needs a CUDA device")
        bench_cifar_epoch(torch.device(args.device))


if __name__ == "__main__":
    main()
