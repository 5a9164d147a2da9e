"""SpectralNet, ours against the reference package (PyPI spectralnet 1.1.0), side by side.

For each dataset both implementations cluster the same samples with the same architecture and
training settings; the table shows ACC, NMI and wall time of each, and the ratio of the times.
Ours runs as users run it, ``deepclust experiment=spectralnet_<dataset>``; the reference runs in
its own virtual environment (created on first use under ``.bench/``), on data exported from our
loaders, with its cached Autoencoder/Siamese weights deleted first (the package would otherwise
reuse them across runs). Times are whole processes, start-up included, on this machine's CPU
(or GPU when torch sees one). Both use every core; run nothing else meanwhile.

    .venv/bin/python scripts/bench_spectralnet.py                      # twomoons circles digits mnist
    .venv/bin/python scripts/bench_spectralnet.py --datasets twomoons,digits --no-reference
    .venv/bin/python scripts/bench_spectralnet.py --data-dir ../shared/data --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from benchlib import machine, run_deepclust
from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import CirclesConfig, DatasetConfig, GeneratedConfig, SplitMode, VisionConfig
from deepclust_cli.ops.metrics import acc, nmi

REPO = Path(__file__).resolve().parents[1]
REFERENCE_VERSION = "1.1.0"

# The reference's parameters equal to each of our experiment presets (conf/experiment/spectralnet_*).
REFERENCE_PARAMS = {
    "twomoons": dict(
        n_clusters=2, spectral_hiddens=[128, 128, 2], spectral_batch_size=712, spectral_epochs=40,
        spectral_lr=1e-2, spectral_n_nbg=8, spectral_scale_k=2, spectral_is_local_scale=False,
    ),
    "circles": dict(
        n_clusters=2, spectral_hiddens=[128, 128, 2], spectral_batch_size=1024, spectral_epochs=40,
        spectral_lr=1e-3, spectral_n_nbg=30, spectral_scale_k=15, spectral_is_local_scale=True,
    ),
    # The reference has neither a normalized-Laplacian training loop nor an embedding wider than
    # n_clusters; everything else is as in our preset.
    "digits": dict(
        n_clusters=10, spectral_hiddens=[1024, 1024, 512, 10], spectral_batch_size=2048, spectral_epochs=400,
        spectral_patience=25, spectral_n_nbg=15, spectral_scale_k=7, spectral_is_local_scale=True,
    ),
    "mnist": dict(
        n_clusters=10, should_use_ae=True, should_use_siamese=True,
        ae_hiddens=[512, 512, 2048, 10], ae_epochs=40, ae_batch_size=256, ae_patience=5,
        siamese_hiddens=[1024, 1024, 512, 10], siamese_epochs=30, siamese_n_nbg=2, siamese_batch_size=1024,
        spectral_hiddens=[1024, 1024, 512, 10], spectral_epochs=30, spectral_batch_size=1024,
        spectral_n_nbg=30, spectral_scale_k=15, spectral_is_local_scale=True, spectral_patience=5,
    ),
}

REFERENCE_RUNNER = textwrap.dedent(
    """
    import json, os, shutil, sys
    import numpy as np, torch
    import spectralnet._trainers as trainers
    from spectralnet import SpectralNet

    shutil.rmtree(os.path.join(os.path.dirname(trainers.__file__), "weights"), ignore_errors=True)
    x_path, params, seed, out = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    torch.manual_seed(seed)
    np.random.seed(seed)
    x = torch.from_numpy(np.load(x_path))
    model = SpectralNet(**params)
    model.fit(x)
    np.save(out, model.predict(x))
    """
)


def dataset_config(name: str) -> DatasetConfig:
    if name == "twomoons":
        return GeneratedConfig(name="twomoons", n_classes=2)
    if name == "circles":
        return CirclesConfig(name="circles", n_classes=2)
    if name == "digits":
        return DatasetConfig(name="digits", n_classes=10)
    return VisionConfig(name="mnist", n_classes=10, split=SplitMode.all)


def run_ours(name: str, data_dir: Path, seed: int, workdir: Path) -> dict:
    return run_deepclust([f"experiment=spectralnet_{name}", f"data_dir={data_dir}", f"seed={seed}"], workdir / "outputs")


def reference_python(env: Path) -> Path:
    """The reference's interpreter, installing it into ``env`` on first use."""
    python = env / "bin" / "python"
    installed = python.exists() and subprocess.run([str(python), "-c", "import spectralnet"], capture_output=True).returncode == 0
    if not installed:
        print(f"installing spectralnet=={REFERENCE_VERSION} into {env} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"spectralnet=={REFERENCE_VERSION}"],
            check=True,
        )
    return python


def run_reference(name: str, python: Path, x: np.ndarray, y: np.ndarray, seed: int, workdir: Path, timeout: float) -> dict:
    """The reference on ``x``; after ``timeout`` seconds it is stopped and reported as "> timeout"."""
    np.save(workdir / "x.npy", x.astype(np.float32))
    (workdir / "runner.py").write_text(REFERENCE_RUNNER)
    params = json.dumps(REFERENCE_PARAMS[name])
    start = time.perf_counter()
    try:
        result = subprocess.run(
            [str(python), str(workdir / "runner.py"), str(workdir / "x.npy"), params, str(seed), str(workdir / "pred.npy")],
            capture_output=True,
            text=True,
            cwd=workdir,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"unfinished > {timeout:.0f}s", "seconds": timeout, "unfinished": True}
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        return {"error": (result.stderr.strip().splitlines() or ["failed"])[-1], "seconds": seconds}
    predicted = np.load(workdir / "pred.npy")
    return {"acc": acc(y, predicted), "nmi": nmi(y, predicted), "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="twomoons,circles,digits,mnist")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="0", help="comma-separated; each seed is one run of each implementation")
    parser.add_argument("--no-reference", action="store_true", help="time ours only")
    parser.add_argument("--reference-timeout", type=float, default=3 * 3600, help="seconds before the reference is stopped")
    parser.add_argument("--reference-env", type=Path, default=REPO / ".bench" / f"spectralnet-{REFERENCE_VERSION}")
    args = parser.parse_args()

    python = None if args.no_reference else reference_python(args.reference_env)
    seeds = [int(s) for s in args.seeds.split(",")]
    header = f"{'dataset':<9} {'n':>6} {'seed':>4} | {'ours ACC':>8} {'NMI':>6} {'time':>8} | {'ref ACC':>8} {'NMI':>6} {'time':>8} | {'ours/ref':>8}"
    print(header)
    print("-" * len(header), flush=True)
    for name in args.datasets.split(","):
        data = load_dataset(dataset_config(name), args.data_dir, 0)
        whole, _ = data.partition(SplitMode.all)
        x, y = whole.vectors().numpy(), whole.y.numpy()
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as scratch:
                ours = run_ours(name, args.data_dir.resolve(), seed, Path(scratch))
                theirs = run_reference(name, python, x, y, seed, Path(scratch), args.reference_timeout) if python else {}
            ref_cells = (
                f"{theirs['acc']:>8.4f} {theirs['nmi']:>6.3f} {theirs['seconds']:>7.1f}s"
                if "acc" in theirs
                else f"{theirs.get('error', '—')[:24]:>24}"
            )
            if "acc" in theirs:
                ratio = f"{ours['seconds'] / theirs['seconds']:>8.2f}"
            elif theirs.get("unfinished"):
                ratio = f"{'< ' + format(ours['seconds'] / theirs['seconds'], '.2f'):>8}"
            else:
                ratio = f"{'—':>8}"
            print(
                f"{name:<9} {len(x):>6} {seed:>4} | {ours['acc']:>8.4f} {ours['nmi']:>6.3f} {ours['seconds']:>7.1f}s | "
                f"{ref_cells} | {ratio}",
                flush=True,
            )
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
