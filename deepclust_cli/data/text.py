"""Reuters (RCV1-v2) as 2,000-d tf-idf vectors, built the way DEC (Xie et al., 2016) built it.

RCV1 cannot be downloaded without Reuters' agreement, so the vectors are made once from the
LYRL2004 token files with ``scripts/prepare_reuters.py`` and stored as ``reuters.npz`` (every
document) and ``reuters10k.npz`` (DEC's 10,000-document subset) in ``<data_dir>/reuters``.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import scipy.sparse
import torch

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import SUBSET_FILES, ReutersConfig
from deepclust_cli.data.vision import check_class_count, files_folder, to_labels
from deepclust_cli.errors import DataError

TOP_CATEGORIES = {"CCAT": 0, "GCAT": 1, "MCAT": 2, "ECAT": 3}
QRELS_FILE = "rcv1-v2.topics.qrels"
TOKEN_FILES = (
    "lyrl2004_tokens_test_pt0.dat",
    "lyrl2004_tokens_test_pt1.dat",
    "lyrl2004_tokens_test_pt2.dat",
    "lyrl2004_tokens_test_pt3.dat",
    "lyrl2004_tokens_train.dat",
)
N_FEATURES = 2000
SUBSET_SIZE = 10000

# A document opens with ".I <docid>", then ".W"; its tokens run until the next ".I".
_DOCUMENT_HEADER = re.compile(r"^\.I[ \t]+(\d+)[^\n]*\n(?:\.W[^\n]*\n)?", re.MULTILINE)


def _read_text(raw_dir: Path, name: str) -> str:
    """The text of ``raw_dir/name``, or of its ``.gz`` version (the files are distributed gzipped)."""
    plain, packed = raw_dir / name, raw_dir / f"{name}.gz"
    if plain.exists():
        return plain.read_text(encoding="latin-1")
    if packed.exists():
        with gzip.open(packed, "rt", encoding="latin-1") as file:
            return file.read()
    raise DataError(f"Reuters file not found: expected {plain} (or {packed.name})")


def read_top_categories(raw_dir: Path) -> dict[int, int]:
    """Document id → label for documents in exactly one of CCAT, GCAT, MCAT, ECAT.

    ``rcv1-v2.topics.qrels`` has one "<category> <docid> 1" line per (document, category) pair.
    """
    categories: dict[int, set[str]] = {}
    for number, line in enumerate(_read_text(raw_dir, QRELS_FILE).splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 2 or not fields[1].isdigit():
            raise DataError(f"{raw_dir / QRELS_FILE}: line {number} is not '<category> <docid> 1': {line[:60]!r}")
        if fields[0] in TOP_CATEGORIES:
            categories.setdefault(int(fields[1]), set()).add(fields[0])
    return {docid: TOP_CATEGORIES[next(iter(cats))] for docid, cats in categories.items() if len(cats) == 1}


def read_token_documents(raw_dir: Path, name: str) -> tuple[list[int], list[str]]:
    """Document ids and token texts from one LYRL2004 token file, the last document included."""
    text = _read_text(raw_dir, name)
    pieces = _DOCUMENT_HEADER.split(text)
    if pieces[0].strip():
        raise DataError(f"{raw_dir / name}: does not start with a '.I <docid>' line")
    return [int(docid) for docid in pieces[1::2]], pieces[2::2]


def build_reuters(raw_dir: Path, seed: int = 1234) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """DEC's Reuters: tf-idf vectors (float32 CSR, documents × 2,000) and labels 0..3, shuffled.

    Documents labelled with exactly one of the four top categories (CCAT 0, GCAT 1, MCAT 2,
    ECAT 3) are kept, in token-file order; the 2,000 most frequent terms are counted, weighted
    by sublinear tf-idf with unit-length rows and scaled by the square root of the number of
    features (sqrt(2000), as DEC does), then rows are permuted with ``seed`` (DEC's 1234).
    DEC's reading loop loses the last document of the last file; this one keeps it.
    """
    from sklearn.feature_extraction.text import CountVectorizer  # deferred: slow import

    labels_by_doc = read_top_categories(raw_dir)
    texts, labels = [], []
    for name in TOKEN_FILES:
        for docid, tokens in zip(*read_token_documents(raw_dir, name), strict=True):
            if docid in labels_by_doc:
                texts.append(tokens)
                labels.append(labels_by_doc[docid])
    if not texts:
        raise DataError(f"{raw_dir}: no token documents carry exactly one of {', '.join(TOP_CATEGORIES)}")
    counts = CountVectorizer(dtype=np.float64, max_features=N_FEATURES).fit_transform(texts)
    order = np.random.RandomState(seed).permutation(len(texts))
    return _dec_tfidf(counts)[order], np.asarray(labels, dtype=np.int64)[order]


def _dec_tfidf(counts: scipy.sparse.spmatrix) -> scipy.sparse.csr_matrix:
    """DEC's weighting: sublinear tf-idf, unit-length rows, times √(number of features); float32 CSR."""
    from sklearn.feature_extraction.text import TfidfTransformer  # deferred: slow import

    vectors = TfidfTransformer(norm="l2", sublinear_tf=True).fit_transform(counts) * np.sqrt(counts.shape[1])
    return scipy.sparse.csr_matrix(vectors, dtype=np.float32)


SYNTHETIC_PROPORTIONS = (0.4, 0.3, 0.2, 0.1)  # unequal classes, as Reuters' are


def synthetic_reuters(n_documents: int = SUBSET_SIZE, seed: int = 0) -> tuple[scipy.sparse.csr_matrix, np.ndarray]:
    """Generated documents of Reuters' shape, **not Reuters**: ``n_documents`` × 2,000 DEC tf-idf
    vectors (:func:`_dec_tfidf`) and labels 0..3 in proportions ``SYNTHETIC_PROPORTIONS``, seeded.

    A document of ``20 + Poisson(30)`` tokens draws each token from its class's topic, a
    Dirichlet(0.05) distribution over the vocabulary, with probability ``λ ~ Beta(1, 4)`` (one λ
    per document), else from a background Zipf(1) distribution shared by all classes: sparse
    non-negative rows with about 2% non-zeros and classes that overlap about as much as
    Reuters-10k's (k-means on 10,000 of them: ACC ≈ .52, NMI ≈ .42; DEC reports k-means ACC .54
    on Reuters-10k). For measuring runs at Reuters' size without the RCV1 files (which cannot be
    downloaded).
    """
    if n_documents < len(SYNTHETIC_PROPORTIONS):
        raise DataError(f"synthetic Reuters needs at least {len(SYNTHETIC_PROPORTIONS)} documents, got {n_documents}")
    rng = np.random.default_rng(seed)
    background = 1.0 / np.arange(1, N_FEATURES + 1)
    background = rng.permutation(background / background.sum())
    topics = rng.dirichlet(np.full(N_FEATURES, 0.05), size=len(SYNTHETIC_PROPORTIONS))
    labels = rng.choice(len(SYNTHETIC_PROPORTIONS), size=n_documents, p=SYNTHETIC_PROPORTIONS)
    lengths = 20 + rng.poisson(30, size=n_documents)
    on_topic = rng.binomial(lengths, rng.beta(1.0, 4.0, size=n_documents))
    counts = rng.multinomial(lengths - on_topic, background)
    for label, topic in enumerate(topics):
        rows = np.flatnonzero(labels == label)
        counts[rows] += rng.multinomial(on_topic[rows], topic)
    return _dec_tfidf(scipy.sparse.csr_matrix(counts, dtype=np.float64)), labels.astype(np.int64)


def _save_csr(path: Path, vectors: scipy.sparse.csr_matrix, labels: np.ndarray) -> None:
    np.savez(
        path,
        data=vectors.data,
        indices=vectors.indices,
        indptr=vectors.indptr,
        shape=np.asarray(vectors.shape, dtype=np.int64),
        labels=labels,
    )


def write_reuters(out_dir: Path, vectors: scipy.sparse.csr_matrix, labels: np.ndarray) -> tuple[Path, Path]:
    """Save ``reuters.npz`` (every document) and ``reuters10k.npz`` (the first 10,000) in ``out_dir``.

    Each file holds the CSR arrays ``data``, ``indices``, ``indptr``, ``shape`` and ``labels``, all
    plain numpy arrays, so loading never needs pickle.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    full, subset = out_dir / SUBSET_FILES["full"], out_dir / SUBSET_FILES["10k"]
    _save_csr(full, vectors, labels)
    _save_csr(subset, vectors[:SUBSET_SIZE], labels[:SUBSET_SIZE])
    return full, subset


def read_reuters_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Dense float32 vectors and int64 labels from a file :func:`write_reuters` wrote."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            parts = {key: arrays[key] for key in ("data", "indices", "indptr", "shape", "labels")}
        vectors = scipy.sparse.csr_matrix(
            (parts["data"], parts["indices"], parts["indptr"]), shape=tuple(int(size) for size in parts["shape"])
        )
        vectors.check_format(full_check=True)
    except (OSError, KeyError, ValueError, TypeError, IndexError) as error:
        raise DataError(
            f"{path}: not a Reuters file from scripts/prepare_reuters.py ({' '.join(str(error).split())})"
        ) from error
    if len(parts["labels"]) != vectors.shape[0]:
        raise DataError(f"{path}: {len(parts['labels'])} labels for {vectors.shape[0]} documents")
    return vectors.toarray().astype(np.float32, copy=False), parts["labels"]


def load_reuters(config: ReutersConfig, data_dir: Path, seed: int) -> Dataset:
    """Reuters as dense float32 vectors (the full set takes about 5.5 GB), 4 classes, no test split."""
    name = SUBSET_FILES[config.subset]
    folder = files_folder(config, data_dir, "reuters", [name])
    path = folder / name
    if not path.exists():
        raise DataError(
            f"dataset '{config.name}' not found: expected {path}; RCV1 cannot be downloaded automatically: "
            f"run python scripts/prepare_reuters.py --raw <dir with RCV1 files> --out {folder}"
        )
    vectors, labels = read_reuters_npz(path)
    n_classes = check_class_count(config, len(TOP_CATEGORIES))
    return Dataset(
        config.name,
        Split(torch.from_numpy(vectors), to_labels(labels, n_classes, path)),
        n_classes=n_classes,
        kind="vectors",
        class_names=list(TOP_CATEGORIES),
    )
