"""SpectralNetAE against its published numbers: two moons and circles, and MNIST with and without
the reconstruction term.

Each row is one ``deepclust experiment=spectralnet_ae_<dataset>`` process (conf/experiment/). On
MNIST — no autoencoder pretraining, no Siamese net, the plain SpectralNet architecture — the preset
runs once as it is and once with ``method.alpha=0`` (which is SpectralNet exactly), same config
and seed, so the table shows what the reconstruction term adds.

    .venv/bin/python scripts/bench_spectralnet_ae.py                          # twomoons circles mnist
    .venv/bin/python scripts/bench_spectralnet_ae.py --datasets twomoons,circles --seeds 0,1,2
    .venv/bin/python scripts/bench_spectralnet_ae.py --datasets mnist --seeds 0,1,2 --gpus 0
    .venv/bin/python scripts/bench_spectralnet_ae.py --datasets twomoons_reference,circles_reference   # its data and settings
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import yaml

from benchlib import machine, run_deepclust

REPO = Path(__file__).resolve().parents[1]
# The reference's ACC / NMI (%), from SPEC: the same architecture with and without the AE term.
PUBLISHED = {("twomoons", True): "100 / 100", ("circles", True): "100 / 100", ("mnist", True): "75.1 / 73.5", ("mnist", False): "60.3 / 62.3",
             ("twomoons_reference", True): "100 / 100", ("twomoons_reference", False): "100 / 100",
             ("circles_reference", True): "100 / 100", ("circles_reference", False): "100 / 99.8"}
PAIRED = ("mnist", "twomoons_reference", "circles_reference")  # also run with alpha=0, the reference's SpectralNet column


def preset_alpha(name: str) -> float:
    preset = yaml.safe_load((REPO / "conf" / "experiment" / f"spectralnet_ae_{name}.yaml").read_text())
    return float(preset["method"]["alpha"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="twomoons,circles,mnist")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", default="0", help="comma-separated")
    parser.add_argument("--gpus", default="", help="comma-separated GPU ids for gpus=[...]; empty: the CPU")
    args = parser.parse_args()

    header = f"{'dataset':<9} {'seed':>4} {'alpha':>7} | {'ACC':>6} {'NMI':>6} {'ARI':>6} {'time':>8} | {'published ACC / NMI %':>22}"
    print(header)
    print("-" * len(header), flush=True)
    for name in args.datasets.split(","):
        alphas = [preset_alpha(name), 0.0] if name in PAIRED else [preset_alpha(name)]
        for seed in (int(s) for s in args.seeds.split(",")):
            results = {}
            for alpha in alphas:
                overrides = [f"experiment=spectralnet_ae_{name}", f"data_dir={args.data_dir.resolve()}", f"seed={seed}", f"method.alpha={alpha}", f"gpus=[{args.gpus}]"]
                with tempfile.TemporaryDirectory(prefix=f"bench-ae-{name}-") as scratch:
                    result = run_deepclust(overrides, Path(scratch))
                results[alpha] = result
                published = PUBLISHED.get((name, alpha > 0), "—")
                print(
                    f"{name:<9} {seed:>4} {alpha:>7g} | {result['acc']:>6.4f} {result['nmi']:>6.4f} {result['ari']:>6.4f} "
                    f"{result['seconds']:>7.1f}s | {published:>22}",
                    flush=True,
                )
            if len(alphas) == 2:
                gain = results[alphas[0]]["acc"] - results[0.0]["acc"]
                print(f"{name:<9} {seed:>4} alpha={alphas[0]:g} minus alpha=0: ACC {gain:+.4f}", flush=True)
    print(f"\nmachine: {machine()}")


if __name__ == "__main__":
    main()
