"""Build DEC's Reuters vectors from the RCV1-v2 files: reuters.npz and reuters10k.npz.

The raw folder must hold ``rcv1-v2.topics.qrels`` and the five LYRL2004 token files
(``lyrl2004_tokens_test_pt0..3.dat``, ``lyrl2004_tokens_train.dat``), plain or ``.gz``, as
published with Lewis et al. (2004). Example::

    python scripts/prepare_reuters.py --raw ~/rcv1 --out data/reuters

``--synthetic N`` writes N generated documents of the same shape instead (not Reuters: class
topics over a shared Zipf background, see ``synthetic_reuters``), to time runs without RCV1::

    python scripts/prepare_reuters.py --synthetic 10000 --out /tmp/synthetic/reuters
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from deepclust_cli.data.text import TOP_CATEGORIES, build_reuters, synthetic_reuters, write_reuters
from deepclust_cli.errors import DeepclustError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--raw", type=Path, help="folder with the RCV1-v2 qrels and token files")
    source.add_argument("--synthetic", type=int, metavar="N", help="write N generated documents of Reuters' shape instead (not Reuters)")
    parser.add_argument("--out", type=Path, required=True, help="output folder, normally <data_dir>/reuters")
    parser.add_argument("--seed", type=int, default=1234, help="seed of the document shuffle (DEC's: 1234), or of the generator")
    args = parser.parse_args(argv)
    try:
        if args.synthetic is not None:
            vectors, labels = synthetic_reuters(args.synthetic, seed=args.seed)
        else:
            vectors, labels = build_reuters(args.raw, seed=args.seed)
        paths = write_reuters(args.out, vectors, labels)
    except DeepclustError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    counts = np.bincount(labels, minlength=len(TOP_CATEGORIES))
    print(f"{len(labels)} documents × {vectors.shape[1]} features")
    for category, count in zip(TOP_CATEGORIES, counts, strict=True):
        print(f"  {category}: {count}")
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
