"""Embeddings of two sessions side by side — e.g. SpectralNetAE at alpha = 0 beside the best alpha.

Each session's fitted method (``checkpoints/last.ckpt``) embeds its own evaluation split, rebuilt
from the session's ``config.yaml``; both panels are coloured by class (by cluster when the data has
no labels) and titled with the run's distinguishing overrides and ACC/NMI.

    .venv/bin/python scripts/compare_embeddings.py outputs/multirun/<sweep>/<job A> outputs/multirun/<sweep>/<job B>
    .venv/bin/python scripts/compare_embeddings.py SESSION_A SESSION_B --out alpha.png --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from deepclust_cli import plots
from deepclust_cli.data import load_dataset
from deepclust_cli.errors import DeepclustError
from deepclust_cli.methods import ClusteringMethod
from deepclust_cli.ops.metrics import clustering_metrics
from deepclust_cli.run import session_settings


def panel(session: Path, data_dir: Path | None, others: set[str]) -> tuple[str, object, object, object]:
    """(title, embedding, colours, clusters) of ``session`` on its evaluation split: coloured by
    class, projected into the plane of its own clusters."""
    settings = session_settings(session)
    method = ClusteringMethod.load(session / "checkpoints" / "last.ckpt")
    data = load_dataset(settings.dataset, data_dir or settings.data_dir, settings.seed)
    _, split = data.partition(settings.dataset.split)
    x = method.prepare(split)
    labels, points = method.predict(x), method.transform(x)
    metrics = clustering_metrics(split.y, labels)
    overrides = yaml.safe_load((session / "overrides.yaml").read_text()) or []
    own = [o for o in overrides if o not in others and not o.startswith("output_dir=")] or [session.name]
    scores = f"ACC {metrics['acc']:.3f}, NMI {metrics['nmi']:.3f}" if metrics else "no labels"
    return f"{', '.join(own)}\n{scores}", points, labels if split.y is None else split.y, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sessions", type=Path, nargs=2, help="two session folders (each with config.yaml and checkpoints/last.ckpt)")
    parser.add_argument("--out", type=Path, help="PNG to write (default: compare_embeddings.png in the second session's plots/)")
    parser.add_argument("--data-dir", type=Path, help="where the datasets are, when not where the sessions found them")
    args = parser.parse_args()
    try:
        overrides = [set(yaml.safe_load((s / "overrides.yaml").read_text()) or []) for s in args.sessions]
        shared = overrides[0] & overrides[1]
        panels = [panel(session, args.data_dir, shared) for session in args.sessions]
    except (DeepclustError, OSError, KeyError) as error:
        sys.exit(f"compare_embeddings: {error}")
    out = args.out or args.sessions[1] / "plots" / "compare_embeddings.png"
    common = ", ".join(sorted(o for o in shared if not o.startswith("output_dir="))) or "two sessions"
    plots.embeddings_side_by_side(panels, out, title=common)
    print(out)


if __name__ == "__main__":
    main()
