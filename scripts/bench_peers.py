"""Ours against what a researcher would use instead, on MNIST (70,000 × 784), side by side in one run.

Rows, each one whole process timed from start to exit, with its peak resident memory:

* clustering — our ``experiment=lnscc_mnist`` and ``experiment=spectralnet_mnist`` presets;
  umap-learn (15 neighbors, 10-d, min_dist 0) + k-means (10 clusters, 10 starts) and + HDBSCAN
  (min_samples 10, min_cluster_size 500, as umap-learn's documentation clusters MNIST; its noise
  points count as one more cluster); the reference SpectralNet (``bench_spectralnet.py``'s);
* the 15-NN graph — our ``knn`` with the methods' default back end (``auto``) and with ``hnsw``;
  faiss HNSW (M 32, efSearch 64) and pynndescent as their users call them. Recall is the share of
  the exact 15 neighbors found; the exact graph is computed once, by our exact back end, before.

The peers run in their own virtual environment (``.bench/peers``, created on first use), the
reference SpectralNet in ``bench_spectralnet.py``'s. "ours / peer" divides our time by the peer's
in the same group (LNSCC by UMAP + k-means; SpectralNet by the reference; our graphs by faiss).
Run nothing else meanwhile: the ratio is the number to read.

    .venv/bin/python scripts/bench_peers.py                         # everything: about 80 minutes on 2 cores
    .venv/bin/python scripts/bench_peers.py --only graph,umap,lnscc
    .venv/bin/python scripts/bench_peers.py --seeds 0,1,2 --only lnscc,umap
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Optional

import numpy as np

from bench_spectralnet import REFERENCE_VERSION, reference_python, run_reference
from benchlib import machine, measured, recall, run_deepclust
from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import SplitMode, VisionConfig
from deepclust_cli.ops.metrics import acc, nmi
from deepclust_cli.ops.neighbors import drop_self

REPO = Path(__file__).resolve().parents[1]
K = 15
PEER_PACKAGES = ["umap-learn", "hdbscan", "pynndescent", "faiss-cpu", "scikit-learn"]
GROUPS = ("graph", "umap", "lnscc", "spectralnet", "reference")

# One script for every peer: ``runner.py <what> <x.npy> <seed> <out.npy>`` writes cluster labels
# (clusterers) or the 15 neighbor ids of each point, itself excluded (graph builders).
PEER_RUNNER = textwrap.dedent(
    """
    import sys
    import numpy as np

    what, x_path, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    x = np.load(x_path)
    k = 15
    if what in ("umap_kmeans", "umap_hdbscan"):
        import umap
        embedding = umap.UMAP(n_neighbors=15, n_components=10, min_dist=0.0, random_state=seed).fit_transform(x)
        if what == "umap_kmeans":
            from sklearn.cluster import KMeans
            labels = KMeans(10, n_init=10, random_state=seed).fit_predict(embedding)
        else:
            import hdbscan
            labels = hdbscan.HDBSCAN(min_samples=10, min_cluster_size=500).fit_predict(embedding)
        np.save(out, labels)
    elif what == "faiss_hnsw":
        import faiss
        index = faiss.IndexHNSWFlat(x.shape[1], 32)
        index.add(x)
        index.hnsw.efSearch = 64
        _, ids = index.search(x, k + 1)
        np.save(out, ids)
    elif what == "pynndescent":
        from pynndescent import NNDescent
        ids, _ = NNDescent(x, n_neighbors=k + 1, random_state=seed).neighbor_graph
        np.save(out, ids)
    """
)

OUR_GRAPH = textwrap.dedent(
    """
    import sys
    import numpy as np, torch
    from deepclust_cli.ops.neighbors import knn

    x_path, backend, out = sys.argv[1], sys.argv[2], sys.argv[3]
    _, ids = knn(torch.from_numpy(np.load(x_path)), 15, backend=backend)
    np.save(out, ids.numpy())
    """
)


def peers_python(env: Path) -> Path:
    """The peers' interpreter, installing them into ``env`` on first use."""
    python = env / "bin" / "python"
    probe = "import umap, hdbscan, pynndescent, faiss, sklearn"
    if not (python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0):
        print(f"installing {', '.join(PEER_PACKAGES)} into {env} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PEER_PACKAGES], check=True)
    return python


def timed_process(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``command`` to its end; (wall seconds, peak RSS in GiB). Exits with its output if it fails."""
    code, _, stderr, seconds, peak_gib = measured(command, cwd)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{stderr[-3000:]}")
    return seconds, peak_gib


def row(group: str, what: str, seconds: float, rss: float, **scores: float) -> dict:
    return {"group": group, "what": what, "seconds": seconds, "rss": rss, **scores}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(GROUPS), help=f"comma-separated groups of {', '.join(GROUPS)}")
    parser.add_argument("--seeds", default="0", help="comma-separated; clusterers run once per seed")
    parser.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--peers-env", type=Path, default=REPO / ".bench" / "peers")
    parser.add_argument("--reference-env", type=Path, default=REPO / ".bench" / f"spectralnet-{REFERENCE_VERSION}")
    parser.add_argument("--reference-timeout", type=float, default=3 * 3600)
    parser.add_argument("--n", type=int, default=None, help="a seeded subset of this many samples (a quick look; the presets still run on all)")
    args = parser.parse_args()
    groups = args.only.split(",")
    unknown = set(groups) - set(GROUPS)
    if unknown:
        raise SystemExit(f"unknown group(s) {', '.join(sorted(unknown))}; choose from {', '.join(GROUPS)}")
    seeds = [int(seed) for seed in args.seeds.split(",")]
    peers = peers_python(args.peers_env) if {"graph", "umap"} & set(groups) else None
    reference = reference_python(args.reference_env) if "reference" in groups else None

    data = load_dataset(VisionConfig(name="mnist", n_classes=10, split=SplitMode.all, max_samples=args.n), args.data_dir, 0)
    whole, _ = data.partition(SplitMode.all)
    x, y = whole.vectors().numpy(), whole.y.numpy()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-peers-") as scratch:
        work = Path(scratch)
        np.save(work / "x.npy", x)
        (work / "peer.py").write_text(PEER_RUNNER)
        (work / "ours.py").write_text(OUR_GRAPH)

        def report(entry: dict) -> None:
            rows.append(entry)
            shown = "  ".join(f"{key} {value:.4f}" for key, value in entry.items() if key in ("acc", "nmi", "recall"))
            print(f"  {entry['what']}: {entry['seconds']:.1f} s, {entry['rss']:.2f} GiB  {shown}", flush=True)

        if "graph" in groups:
            exact_seconds, exact_rss = timed_process([sys.executable, str(work / "ours.py"), str(work / "x.npy"), "exact", str(work / "exact.npy")], work)
            exact = np.load(work / "exact.npy")
            report(row("graph", "ours, exact", exact_seconds, exact_rss, recall=1.0))
            for backend in ("auto", "hnsw"):
                seconds, rss = timed_process([sys.executable, str(work / "ours.py"), str(work / "x.npy"), backend, str(work / "g.npy")], work)
                report(row("graph", f"ours, {backend}", seconds, rss, recall=recall(np.load(work / "g.npy"), exact)))
            for peer, label in (("faiss_hnsw", "faiss HNSW (M 32, efSearch 64)"), ("pynndescent", "pynndescent")):
                seconds, rss = timed_process([str(peers), str(work / "peer.py"), peer, str(work / "x.npy"), "0", str(work / "g.npy")], work)
                report(row("graph", label, seconds, rss, recall=recall(drop_self(np.load(work / "g.npy").astype(np.int64), K)[0], exact)))
        for seed in seeds:
            if "umap" in groups:
                for peer, label in (("umap_kmeans", "UMAP + k-means"), ("umap_hdbscan", "UMAP + HDBSCAN")):
                    seconds, rss = timed_process([str(peers), str(work / "peer.py"), peer, str(work / "x.npy"), str(seed), str(work / "p.npy")], work)
                    predicted = np.load(work / "p.npy")
                    report(row("clustering", f"{label}, seed {seed}", seconds, rss, acc=acc(y, predicted), nmi=nmi(y, predicted)))
            for preset in ("lnscc", "spectralnet"):
                if preset in groups:
                    ours = run_deepclust([f"experiment={preset}_mnist", f"data_dir={args.data_dir.resolve()}", f"seed={seed}"], work / "outputs")
                    report(row("clustering", f"ours, {preset}_mnist, seed {seed}", ours["seconds"], ours["peak_rss_gib"], acc=ours["acc"], nmi=ours["nmi"]))
            if reference is not None:
                theirs = run_reference("mnist", reference, x, y, seed, work, args.reference_timeout)
                if "acc" not in theirs:
                    print(f"  reference SpectralNet, seed {seed}: {theirs.get('error')}", flush=True)
                else:  # its whole process, timed by run_reference; peak memory not measured there
                    report(row("clustering", f"reference SpectralNet {REFERENCE_VERSION}, seed {seed}", theirs["seconds"], float("nan"),
                               acc=theirs["acc"], nmi=theirs["nmi"]))
    print_table(rows)
    print(f"\nmachine: {machine()}")


def mean_of(rows: list[dict], prefix: str) -> Optional[float]:
    times = [r["seconds"] for r in rows if r["what"].startswith(prefix)]
    return sum(times) / len(times) if times else None


def print_table(rows: list[dict]) -> None:
    """The markdown table; each of our rows divided by its peer's time (the mean over seeds)."""
    peer_of = {"ours, lnscc": "UMAP + k-means", "ours, spectralnet": "reference SpectralNet", "ours, auto": "faiss HNSW", "ours, hnsw": "faiss HNSW"}
    print("\n| group | what | seconds | peak RSS (GiB) | ACC | NMI | recall | ours / peer |")
    print("|---|---|---|---|---|---|---|---|")
    for entry in rows:
        peer = next((p for ours, p in peer_of.items() if entry["what"].startswith(ours)), None)
        base = mean_of(rows, peer) if peer else None
        ratio = f"{entry['seconds'] / base:.2f} (÷ {peer})" if base else ""
        cells = [f"{entry[key]:.4f}" if key in entry else "" for key in ("acc", "nmi", "recall")]
        rss = f"{entry['rss']:.2f}" if entry["rss"] == entry["rss"] else "—"
        print(f"| {entry['group']} | {entry['what']} | {entry['seconds']:.1f} | {rss} | {' | '.join(cells)} | {ratio} |")


if __name__ == "__main__":
    main()
