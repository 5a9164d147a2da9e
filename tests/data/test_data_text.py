"""Reuters built from tiny RCV1-v2 qrels and LYRL2004 token files, then stored and loaded."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import ReutersConfig
from deepclust_cli.data.text import build_reuters, synthetic_reuters, write_reuters
from deepclust_cli.errors import ConfigError, DataError

QRELS = """\
CCAT 1 1
C15 1 1
GCAT 2 1
CCAT 3 1
ECAT 3 1
MCAT 4 1
MCAT 5 1
M14 5 1
C15 6 1
ECAT 7 1
"""

DOCUMENTS = {
    1: "stock market share price\nmarket rally\n",
    2: "election vote parliament minister\n",
    3: "zebra giraffe savanna\n",  # two top categories: dropped
    4: "bond yield rate bond\n",
    5: "commodity gold price rate\n",
    6: "walrus narwhal\n",  # no top category: dropped
    7: "inflation budget deficit growth\n",  # the last document of the last file: kept
}
KEPT = [1, 2, 4, 5, 7]  # in token-file order
LABELS = {1: 0, 2: 1, 4: 2, 5: 2, 7: 3}


def token_file(docids: list[int]) -> str:
    return "\n".join(f".I {docid}\n.W\n{DOCUMENTS[docid]}" for docid in docids)


def write_raw(raw: Path) -> None:
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "rcv1-v2.topics.qrels").write_text(QRELS)
    (raw / "lyrl2004_tokens_test_pt0.dat").write_text(token_file([1, 3]))
    (raw / "lyrl2004_tokens_test_pt1.dat").write_text(token_file([2]))
    (raw / "lyrl2004_tokens_test_pt2.dat.gz").write_bytes(gzip.compress(token_file([4]).encode()))
    (raw / "lyrl2004_tokens_test_pt3.dat").write_text(token_file([6, 5]))
    (raw / "lyrl2004_tokens_train.dat").write_text(token_file([7]).rstrip("\n"))  # no final newline


def test_build_reuters_follows_dec(tmp_path: Path) -> None:
    write_raw(tmp_path)
    vectors, labels = build_reuters(tmp_path)

    assert isinstance(vectors, scipy.sparse.csr_matrix) and vectors.dtype == np.float32
    assert labels.dtype == np.int64
    vocabulary = {word for docid in KEPT for word in DOCUMENTS[docid].split()}
    assert vectors.shape == (len(KEPT), len(vocabulary))  # no word of documents 3 or 6
    assert sorted(labels.tolist()) == sorted(LABELS.values())
    assert 3 in labels  # ECAT comes only from the last document
    norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1))).ravel()
    np.testing.assert_allclose(norms, np.sqrt(vectors.shape[1]), rtol=1e-5)

    order = np.random.RandomState(1234).permutation(len(KEPT))
    counts = CountVectorizer(max_features=2000).fit_transform([DOCUMENTS[docid] for docid in KEPT])
    expected = TfidfTransformer(norm="l2", sublinear_tf=True).fit_transform(counts).toarray() * np.sqrt(counts.shape[1])
    np.testing.assert_allclose(vectors.toarray(), expected[order], rtol=1e-5)
    assert labels.tolist() == [LABELS[KEPT[index]] for index in order]


def test_build_reuters_reports_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="rcv1-v2.topics.qrels"):
        build_reuters(tmp_path)
    write_raw(tmp_path)
    (tmp_path / "lyrl2004_tokens_test_pt1.dat").write_text("garbage before\n" + token_file([2]))
    with pytest.raises(DataError, match="lyrl2004_tokens_test_pt1.dat: does not start with a '.I <docid>' line"):
        build_reuters(tmp_path)


def test_written_files_load_as_dense_vectors(tmp_path: Path) -> None:
    write_raw(tmp_path / "raw")
    vectors, labels = build_reuters(tmp_path / "raw")
    full, subset = write_reuters(tmp_path / "data" / "reuters", vectors, labels)
    assert (full.name, subset.name) == ("reuters.npz", "reuters10k.npz")
    with np.load(full, allow_pickle=False) as arrays:
        assert sorted(arrays.files) == ["data", "indices", "indptr", "labels", "shape"]

    data = load_dataset(ReutersConfig(name="reuters", subset="full"), tmp_path / "data")
    assert data.kind == "vectors" and data.n_classes == 4 and data.test is None
    assert data.train.x.dtype == torch.float32 and data.train.x.shape == vectors.shape
    np.testing.assert_array_equal(data.train.x.numpy(), vectors.toarray())
    assert data.train.y.tolist() == labels.tolist()


def test_the_10k_subset_is_the_first_10000_documents(tmp_path: Path) -> None:
    vectors = scipy.sparse.random(10005, 6, density=0.3, format="csr", dtype=np.float32, random_state=0)
    labels = np.arange(10005, dtype=np.int64) % 4
    write_reuters(tmp_path / "reuters", vectors, labels)
    data = load_dataset(ReutersConfig(name="reuters"), tmp_path)
    assert data.train.x.shape == (10000, 6)
    np.testing.assert_array_equal(data.train.x.numpy(), vectors[:10000].toarray())
    assert torch.equal(data.train.y, torch.from_numpy(labels[:10000]))


def test_missing_reuters_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(ReutersConfig(name="reuters", download=True), tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "reuters" / "reuters10k.npz") in message
    assert f"python scripts/prepare_reuters.py --raw <dir with RCV1 files> --out {tmp_path / 'reuters'}" in message


def test_corrupt_npz_and_bad_subset_are_refused(tmp_path: Path) -> None:
    (tmp_path / "reuters").mkdir()
    np.savez(tmp_path / "reuters" / "reuters10k.npz", data=np.ones(2, dtype=np.float32), labels=np.zeros(2))
    with pytest.raises(DataError, match="reuters10k.npz: not a Reuters file"):
        load_dataset(ReutersConfig(name="reuters"), tmp_path)
    with pytest.raises(ConfigError, match="subset must be one of 10k, full, got '5k'"):
        ReutersConfig(name="reuters", subset="5k")


def test_prepare_script_writes_both_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_raw(tmp_path / "raw")
    spec = importlib.util.spec_from_file_location(
        "prepare_reuters", Path(__file__).parents[2] / "scripts" / "prepare_reuters.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)

    assert script.main(["--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "5 documents" in printed and "MCAT: 2" in printed and "ECAT: 1" in printed
    assert str(tmp_path / "out" / "reuters10k.npz") in printed
    assert (tmp_path / "out" / "reuters.npz").is_file()

    assert script.main(["--raw", str(tmp_path / "nothing"), "--out", str(tmp_path / "out2")]) == 1
    assert "rcv1-v2.topics.qrels" in capsys.readouterr().err


def test_synthetic_reuters_is_sparse_non_negative_dec_tfidf_with_four_classes() -> None:
    vectors, labels = synthetic_reuters(2000, seed=3)
    assert vectors.shape == (2000, 2000) and vectors.dtype == np.float32
    assert vectors.min() >= 0
    assert 0.01 <= vectors.nnz / (2000 * 2000) <= 0.03
    np.testing.assert_allclose(scipy.sparse.linalg.norm(vectors, axis=1), np.sqrt(2000), rtol=1e-5)  # DEC's scaling
    counts = np.bincount(labels, minlength=4)
    assert counts.sum() == 2000 and (counts > 100).all() and counts[0] > counts[3]
    # the classes are there: each document is nearer its own class's mean than most others'
    means = np.stack([np.asarray(vectors[labels == c].mean(axis=0)).ravel() for c in range(4)])
    assert ((vectors @ means.T).argmax(axis=1) == labels).mean() > 0.7
    again, again_labels = synthetic_reuters(2000, seed=3)
    assert (again != vectors).nnz == 0 and np.array_equal(again_labels, labels)
    assert not np.array_equal(synthetic_reuters(2000, seed=4)[1], labels)
    with pytest.raises(DataError, match="at least 4 documents"):
        synthetic_reuters(3)


def test_prepare_script_writes_synthetic_files_the_loader_reads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "prepare_reuters", Path(__file__).parents[2] / "scripts" / "prepare_reuters.py"
    )
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--synthetic", "300", "--seed", "0", "--out", str(tmp_path / "reuters")]) == 0
    assert "300 documents × 2000 features" in capsys.readouterr().out
    data = load_dataset(ReutersConfig(name="reuters", subset="full"), tmp_path)
    assert data.train.x.shape == (300, 2000) and data.n_classes == 4
    with pytest.raises(SystemExit):
        script.main(["--synthetic", "300", "--raw", str(tmp_path), "--out", str(tmp_path / "x")])
