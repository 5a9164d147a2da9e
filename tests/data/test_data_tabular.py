"""The user's own features from .npy and .csv files, with labels from files or a CSV column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import FeaturesConfig
from deepclust_cli.errors import ConfigError, DataError

FILE_FIELDS = {"path", "labels", "test_path", "test_labels"}


def features(tmp_path: Path, **fields: object) -> FeaturesConfig:
    """A config whose file fields name files inside ``tmp_path``."""
    return FeaturesConfig(
        name="features",
        **{key: str(tmp_path / value) if key in FILE_FIELDS else value for key, value in fields.items()},
    )


def test_npy_features_with_npy_labels(tmp_path: Path) -> None:
    x = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.array([7, 3, 7, 10]))
    data = load_dataset(features(tmp_path, path="x.npy", labels="y.npy"), tmp_path)

    assert data.kind == "vectors" and data.train.x.dtype == torch.float32
    assert torch.equal(data.train.x, torch.from_numpy(x).float())
    assert data.train.y.tolist() == [1, 0, 1, 2] and data.n_classes == 3
    assert data.class_names == ["3", "7", "10"]


def test_csv_without_header_and_text_labels_sort_numerically(tmp_path: Path) -> None:
    # Excel starts UTF-8 CSVs with a byte-order mark; it must not make the first row look like a header.
    (tmp_path / "x.csv").write_text("\ufeff1.5,2\n3,4e-1\n-1,0\n", encoding="utf-8")
    (tmp_path / "y.txt").write_text("10\n9\n10\n")
    data = load_dataset(features(tmp_path, path="x.csv", labels="y.txt"), tmp_path)
    assert data.train.x.tolist() == [[1.5, 2.0], [3.0, pytest.approx(0.4)], [-1.0, 0.0]]
    assert data.train.y.tolist() == [1, 0, 1]  # 9 before 10


def test_csv_header_and_named_label_column_with_test_split(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text('a,species,b\n1,"dog",2\n3,cat,4\n5,dog,6\n')
    (tmp_path / "test.csv").write_text("a,species,b\n7,cat,8\n")
    config = features(tmp_path, path="train.csv", label_column="species", test_path="test.csv")
    data = load_dataset(config, tmp_path)

    assert data.train.x.tolist() == [[1, 2], [3, 4], [5, 6]]
    assert data.train.y.tolist() == [1, 0, 1] and data.class_names == ["cat", "dog"]
    assert data.test.x.tolist() == [[7, 8]] and data.test.y.tolist() == [0]


def test_label_column_by_index_without_header(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("0.1,0.2,b\n0.3,0.4,a\n")
    data = load_dataset(features(tmp_path, path="x.csv", label_column="-1"), tmp_path)
    assert data.train.x.shape == (2, 2) and data.train.y.tolist() == [1, 0]
    data = load_dataset(features(tmp_path, path="x.csv", label_column="2"), tmp_path)
    assert data.train.y.tolist() == [1, 0]


def test_unlabelled_features_take_n_classes_from_config(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((3, 2), dtype=np.int32))
    data = load_dataset(features(tmp_path, path="x.npy", n_classes=5), tmp_path)
    assert data.train.y is None and data.n_classes == 5 and data.test is None


def test_test_labels_share_the_train_numbering(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    np.save(tmp_path / "xt.npy", np.zeros((2, 2)))
    (tmp_path / "y.csv").write_text("b\na\nc\n")
    (tmp_path / "yt.csv").write_text("c\nb\n")
    data = load_dataset(
        features(tmp_path, path="x.npy", labels="y.csv", test_path="xt.npy", test_labels="yt.csv"), tmp_path
    )
    assert data.train.y.tolist() == [1, 0, 2] and data.test.y.tolist() == [2, 1]

    (tmp_path / "yt.csv").write_text("c\nz\n")
    with pytest.raises(DataError, match=r"yt.csv: label 'z' does not occur in the training labels"):
        load_dataset(
            features(tmp_path, path="x.npy", labels="y.csv", test_path="xt.npy", test_labels="yt.csv"), tmp_path
        )

    np.save(tmp_path / "numbers.npy", np.array([1, 2, 1]))
    with pytest.raises(DataError, match=r"yt.csv: label 'c' does not occur in the training labels"):
        load_dataset(
            features(tmp_path, path="x.npy", labels="numbers.npy", test_path="xt.npy", test_labels="yt.csv"), tmp_path
        )


def test_file_problems_are_one_line_errors_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="features file not found: .*missing.npy"):
        load_dataset(features(tmp_path, path="missing.npy"), tmp_path)

    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2)))
    with pytest.raises(DataError, match=r"cube.npy: features must be a 2-D array .* got shape \(2, 2, 2\)"):
        load_dataset(features(tmp_path, path="cube.npy"), tmp_path)

    np.save(tmp_path / "objects.npy", np.array([[1, "a"]], dtype=object))
    with pytest.raises(DataError, match="objects.npy: not a readable .npy array"):
        load_dataset(features(tmp_path, path="objects.npy"), tmp_path)

    (tmp_path / "text.csv").write_text("1,2\n3,oops\n")
    with pytest.raises(DataError, match="text.csv: could not convert string 'oops'") as caught:
        load_dataset(features(tmp_path, path="text.csv"), tmp_path)
    assert "\n" not in str(caught.value)

    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"short.txt: 2 labels for the 3 rows of .*x.npy"):
        load_dataset(features(tmp_path, path="x.npy", labels="short.txt"), tmp_path)

    np.save(tmp_path / "narrow.npy", np.zeros((1, 1)))
    with pytest.raises(DataError, match=r"narrow.npy: 1 features per row, but .*x.npy has 2"):
        load_dataset(features(tmp_path, path="x.npy", test_path="narrow.npy"), tmp_path)

    (tmp_path / "header_only.csv").write_text("a,b\n")
    with pytest.raises(DataError, match="header_only.csv: no data rows"):
        load_dataset(features(tmp_path, path="header_only.csv"), tmp_path)

    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="x.csv: no column named 'label' in the header"):
        load_dataset(features(tmp_path, path="x.csv", label_column="label"), tmp_path)


def test_nan_features_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("1,nan\n2,3\n")
    with pytest.raises(DataError, match="1 NaN or inf values in the train split"):
        load_dataset(features(tmp_path, path="x.csv"), tmp_path)


def test_features_whose_squares_overflow_float32_are_refused_unless_standardized(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(60, 2)).astype(np.float32)
    x[:30] += 3.0
    np.save(tmp_path / "x.npy", x * 1e30)  # k-means reported an infinite inertia and one cluster, exit 0
    with pytest.raises(DataError, match=r"values up to \d\.\d+e\+30 in the train split, beyond 6\.52e\+18, .*overflow float32; "
                                        r"set dataset\.standardize=true, or rescale the features"):
        load_dataset(features(tmp_path, path="x.npy"), tmp_path)
    np.save(tmp_path / "fine.npy", x * 1e17)  # under the bound for 2 features
    load_dataset(features(tmp_path, path="fine.npy"), tmp_path)
    standardized = load_dataset(features(tmp_path, path="x.npy", standardize=True), tmp_path)
    assert float(standardized.train.x.abs().max()) > 1e30  # z-scored later, in the run, from these values


def test_max_samples_reads_only_the_kept_rows_of_a_memory_mapped_float64_file(tmp_path: Path) -> None:
    import tracemalloc

    x = np.random.default_rng(0).normal(size=(40_000, 32))  # float64, 10 MB
    np.save(tmp_path / "x.npy", x)
    config = features(tmp_path, path="x.npy", max_samples=100)
    tracemalloc.start()
    try:
        data = load_dataset(config, tmp_path, seed=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"{peak} bytes allocated: the whole file was converted before max_samples applied"
    rows = data.train.source_rows()
    assert len(data.train) == 100 and data.train.x.dtype == torch.float32
    assert torch.equal(data.train.x, torch.from_numpy(x[rows.numpy()]).float())
    whole = load_dataset(features(tmp_path, path="x.npy"), tmp_path).subsample(100, seed=3)
    assert torch.equal(whole.train.source_rows(), rows)  # the same rows as cutting after a full read


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="path must be a .npy, .npz or .csv file"):
        FeaturesConfig(name="features", path="x.parquet")
    with pytest.raises(ConfigError, match="give labels or label_column, not both"):
        FeaturesConfig(name="features", path="x.csv", labels="y.txt", label_column="0")
    with pytest.raises(ConfigError, match="label_column needs a .csv path"):
        FeaturesConfig(name="features", path="x.npy", label_column="0")
    with pytest.raises(ConfigError, match="test_labels needs test_path"):
        FeaturesConfig(name="features", path="x.npy", labels="y.npy", test_labels="yt.npy")
