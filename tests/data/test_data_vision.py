"""Image benchmarks read from small files written in each dataset's real on-disk format."""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision.datasets

from conftest import SHARED_DATA as REAL_DATA
from conftest import write_idx
from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import STL10Config, VisionConfig
from deepclust_cli.errors import ConfigError, DataError


def write_mnist(folder: Path, compress_train: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.array([5, 0, 9], dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.array([7, 1], dtype=np.uint8),
    }
    for name, array in arrays.items():
        write_idx(folder / name, array, compress=compress_train and name.startswith("train"))
    return arrays


def cifar_batch(n: int, seed: int, **labels: list[int]) -> dict:
    """A batch as the official files hold it: N×3072 uint8 rows of R, G, B row-major planes."""
    data = np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)
    return {b"batch_label": b"batch", b"data": data, **{key.encode(): value for key, value in labels.items()}}


def write_pickle(path: Path, obj: object, protocol: int = 2) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_cifar10(folder: Path, protocol: int = 2) -> list[dict]:
    batches = [cifar_batch(2, seed, labels=[seed % 10, (seed + 3) % 10]) for seed in range(1, 6)]
    for number, batch in enumerate(batches, start=1):
        write_pickle(folder / f"data_batch_{number}", batch, protocol)
    test = cifar_batch(3, 9, labels=[4, 2, 8])
    write_pickle(folder / "test_batch", test, protocol)
    return [*batches, test]


def stl10_bytes(images: np.ndarray) -> bytes:
    """STL-10 stores each 3×96×96 image with its colour planes in column-major order."""
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)).tobytes()


def write_stl10(folder: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    images = {split: rng.integers(0, 256, (n, 3, 96, 96), dtype=np.uint8) for split, n in (("train", 2), ("test", 3))}
    folder.mkdir(parents=True)
    (folder / "train_X.bin").write_bytes(stl10_bytes(images["train"]))
    (folder / "train_y.bin").write_bytes(bytes([1, 10]))
    (folder / "test_X.bin").write_bytes(stl10_bytes(images["test"]))
    (folder / "test_y.bin").write_bytes(bytes([3, 4, 5]))
    images["unlabeled"] = rng.integers(0, 256, (4, 3, 96, 96), dtype=np.uint8)
    (folder / "unlabeled_X.bin").write_bytes(stl10_bytes(images["unlabeled"]))
    return images


# --- MNIST / Fashion-MNIST ---------------------------------------------------------------------


@pytest.mark.parametrize("compress_train", [False, True])
def test_mnist_reads_plain_and_gzipped_idx(tmp_path: Path, compress_train: bool) -> None:
    arrays = write_mnist(tmp_path / "MNIST" / "raw", compress_train)
    data = load_dataset(VisionConfig(name="mnist", mean=[0.1307], std=[0.3081]), tmp_path)

    assert data.kind == "images" and data.n_classes == 10
    assert data.mean == (0.1307,) and data.std == (0.3081,)
    assert data.train.x.shape == (3, 1, 28, 28) and data.train.x.dtype == torch.uint8
    assert data.test.x.shape == (2, 1, 28, 28)
    expected = arrays["train-images-idx3-ubyte"]
    assert int(data.train.x[2, 0, 5, 17]) == expected[2, 5, 17]
    assert torch.equal(data.train.x[:, 0], torch.from_numpy(expected))
    assert data.train.y.dtype == torch.int64 and data.train.y.tolist() == [5, 0, 9]
    assert data.test.y.tolist() == [7, 1]


def test_fashion_mnist_uses_its_own_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path / "FashionMNIST" / "raw", compress_train=True)
    data = load_dataset(VisionConfig(name="fashion_mnist"), tmp_path)
    assert len(data.train) == 3 and len(data.test) == 2
    assert data.mean is None  # no statistics configured
    with pytest.raises(DataError, match="FashionMNIST"):
        load_dataset(VisionConfig(name="fashion_mnist"), tmp_path / "elsewhere")


def test_root_replaces_data_dir_or_names_the_files_folder(tmp_path: Path) -> None:
    write_mnist(tmp_path / "mine" / "MNIST" / "raw", compress_train=False)
    nested = load_dataset(VisionConfig(name="mnist", root=str(tmp_path / "mine")), tmp_path / "unused")
    direct = load_dataset(
        VisionConfig(name="mnist", root=str(tmp_path / "mine" / "MNIST" / "raw")), tmp_path / "unused"
    )
    assert torch.equal(nested.train.x, direct.train.x)


def test_idx_with_wrong_magic_or_truncated_body_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_mnist(folder, compress_train=False)
    images = folder / "train-images-idx3-ubyte"
    content = images.read_bytes()
    images.write_bytes(content[:-5])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte: header promises shape \(3, 28, 28\)"):
        load_dataset(VisionConfig(name="mnist"), tmp_path)
    images.write_bytes(struct.pack(">I", 2049) + content[4:])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: wrong magic number 2049"):
        load_dataset(VisionConfig(name="mnist"), tmp_path)


def test_corrupt_gzip_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_mnist(folder, compress_train=True)
    packed = folder / "train-labels-idx1-ubyte.gz"
    content = packed.read_bytes()
    packed.write_bytes(content[:12] + bytes(255 - byte for byte in content[12:]))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: not a readable gzip file"):
        load_dataset(VisionConfig(name="mnist"), tmp_path)


def test_labels_outside_the_classes_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "MNIST" / "raw"
    write_mnist(folder, compress_train=False)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.array([7, 12], dtype=np.uint8))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte: labels must lie in 0..9, found 12"):
        load_dataset(VisionConfig(name="mnist"), tmp_path)


@pytest.mark.skipif(not (REAL_DATA / "MNIST" / "raw").is_dir(), reason="real MNIST not available")
def test_real_mnist() -> None:
    data = load_dataset(VisionConfig(name="mnist", n_classes=10), REAL_DATA)
    assert data.train.x.shape == (60000, 1, 28, 28) and data.test.x.shape == (10000, 1, 28, 28)
    assert torch.bincount(data.train.y)[:2].tolist() == [5923, 6742]
    assert torch.bincount(data.test.y)[:2].tolist() == [980, 1135]
    assert int(data.train.x.max()) == 255 and int(data.train.x[:, :, 0, 0].max()) == 0  # corners are blank


# --- CIFAR -------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_reads_pickled_batches(tmp_path: Path, protocol: int) -> None:
    batches = write_cifar10(tmp_path / "cifar-10-batches-py", protocol)
    data = load_dataset(
        VisionConfig(name="cifar10", n_classes=10, mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26]), tmp_path
    )

    assert data.train.x.shape == (10, 3, 32, 32) and data.train.x.dtype == torch.uint8
    assert data.test.x.shape == (3, 3, 32, 32)
    channel, row, column = 2, 7, 30
    expected = batches[2][b"data"][1, channel * 1024 + row * 32 + column]
    assert int(data.train.x[2 * 2 + 1, channel, row, column]) == expected
    assert data.train.y.tolist() == [label for batch in batches[:5] for label in batch[b"labels"]]
    assert data.test.y.tolist() == [4, 2, 8]
    assert data.mean == (0.49, 0.48, 0.45)


def test_cifar_batches_with_str_keys_are_read(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    as_text = {"data": batches[5][b"data"], "labels": np.array([4, 2, 8])}
    write_pickle(tmp_path / "cifar-10-batches-py" / "test_batch", as_text, protocol=4)
    assert load_dataset(VisionConfig(name="cifar10"), tmp_path).test.y.tolist() == [4, 2, 8]


@pytest.mark.parametrize(
    "name, n_classes, expected", [("cifar100", 100, [55, 99, 3]), ("cifar100_20", 20, [12, 19, 0])]
)
def test_cifar100_fine_and_coarse_labels(tmp_path: Path, name: str, n_classes: int, expected: list[int]) -> None:
    folder = tmp_path / "cifar-100-python"
    write_pickle(folder / "train", cifar_batch(3, 1, fine_labels=[55, 99, 3], coarse_labels=[12, 19, 0]))
    write_pickle(folder / "test", cifar_batch(2, 2, fine_labels=[1, 2], coarse_labels=[3, 4]))
    data = load_dataset(VisionConfig(name=name), tmp_path)
    assert data.n_classes == n_classes
    assert data.train.y.tolist() == expected
    assert data.train.x.shape == (3, 3, 32, 32)


def test_cifar_batches_pickled_under_numpy_1_are_read(tmp_path: Path) -> None:
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    written_by_numpy_2 = pickle.dumps(batches[5], protocol=2)
    assert b"numpy._core.multiarray" in written_by_numpy_2
    numpy_1_paths = written_by_numpy_2.replace(b"numpy._core.", b"numpy.core.")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(numpy_1_paths)
    data = load_dataset(VisionConfig(name="cifar10"), tmp_path)
    assert torch.equal(data.test.x.flatten(1), torch.from_numpy(batches[5][b"data"]))


class _RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    marker = tmp_path / "pwned"
    batch = cifar_batch(2, 1, labels=[0, 1])
    batch[b"labels"] = _RunsACommand(marker)
    write_pickle(tmp_path / "cifar-10-batches-py" / "data_batch_1", batch)

    with pytest.raises(
        DataError, match=r"data_batch_1: not a readable CIFAR batch \(refused to load (posix|os)\.system"
    ):
        load_dataset(VisionConfig(name="cifar10"), tmp_path)
    assert not marker.exists()


def test_malformed_cifar_batches_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    write_pickle(folder / "data_batch_2", {b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match=r"data_batch_2: 'data' must be an N×3072 uint8 array"):
        load_dataset(VisionConfig(name="cifar10"), tmp_path)
    (folder / "data_batch_2").write_bytes(pickle.dumps(cifar_batch(2, 1, labels=[0, 1]))[:200])
    with pytest.raises(DataError, match="data_batch_2: not a readable CIFAR batch"):
        load_dataset(VisionConfig(name="cifar10"), tmp_path)


def test_missing_cifar_names_path_and_switch(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(VisionConfig(name="cifar10"), tmp_path)
    message = str(caught.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "dataset.download=true" in message and "\n" not in message


def test_download_fetches_into_the_expected_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    class FakeCIFAR10:
        def __init__(self, root: Path, train: bool, download: bool) -> None:
            calls.append((Path(root), download))
            write_cifar10(Path(root) / "cifar-10-batches-py")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    data = load_dataset(VisionConfig(name="cifar10", download=True), tmp_path)
    assert calls == [(tmp_path, True)]
    assert len(data.train) == 10 and len(data.test) == 3


def test_failed_download_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(root: Path, train: bool, download: bool) -> None:
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.datasets, "MNIST", offline)
    with pytest.raises(DataError, match=r"dataset 'mnist': torchvision's download into .* failed \(Name or service"):
        load_dataset(VisionConfig(name="mnist", download=True), tmp_path)


def test_class_count_and_channel_statistics_are_checked(tmp_path: Path) -> None:
    write_cifar10(tmp_path / "cifar-10-batches-py")
    with pytest.raises(DataError, match=r"has 10 classes but dataset.n_classes=7; set dataset.n_classes=10"):
        load_dataset(VisionConfig(name="cifar10", n_classes=7), tmp_path)
    with pytest.raises(ConfigError, match="dataset.mean has 1 values but 'cifar10' images have 3 channels"):
        load_dataset(VisionConfig(name="cifar10", mean=[0.5], std=[0.2]), tmp_path)
    with pytest.raises(ConfigError, match="std values must be > 0"):
        VisionConfig(name="cifar10", mean=[0.5], std=[0.0])
    with pytest.raises(ConfigError, match="mean has 2 values but std has 1"):
        VisionConfig(name="cifar10", mean=[0.5, 0.5], std=[0.2])


# --- SVHN --------------------------------------------------------------------------------------


def test_svhn_reads_mat_files_and_maps_10_to_0(tmp_path: Path) -> None:
    folder = tmp_path / "SVHN"
    folder.mkdir()
    rng = np.random.default_rng(5)
    train_x = rng.integers(0, 256, (32, 32, 3, 4), dtype=np.uint8)  # H×W×C×N, as released
    scipy.io.savemat(folder / "train_32x32.mat", {"X": train_x, "y": np.array([[10], [1], [9], [10]], dtype=np.uint8)})
    scipy.io.savemat(
        folder / "test_32x32.mat",
        {"X": rng.integers(0, 256, (32, 32, 3, 2), dtype=np.uint8), "y": np.array([[3.0], [10.0]])},
    )
    data = load_dataset(VisionConfig(name="svhn"), tmp_path)

    assert data.train.x.shape == (4, 3, 32, 32) and data.train.x.dtype == torch.uint8
    assert int(data.train.x[3, 1, 20, 4]) == train_x[20, 4, 1, 3]
    assert torch.equal(data.train.x, torch.from_numpy(train_x).permute(3, 2, 0, 1))
    assert data.train.y.tolist() == [0, 1, 9, 0]
    assert data.test.y.tolist() == [3, 0]


def test_svhn_missing_and_malformed(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"SVHN/train_32x32.mat; put the files there or set dataset.download=true"):
        load_dataset(VisionConfig(name="svhn"), tmp_path)
    folder = tmp_path / "SVHN"
    folder.mkdir()
    (folder / "train_32x32.mat").write_bytes(b"not a matlab file at all")
    scipy.io.savemat(folder / "test_32x32.mat", {"X": np.zeros((32, 32, 3, 1), dtype=np.uint8), "y": [[1]]})
    with pytest.raises(DataError, match="train_32x32.mat: not a readable MATLAB file"):
        load_dataset(VisionConfig(name="svhn"), tmp_path)


# --- STL-10 ------------------------------------------------------------------------------------


def test_stl10_reads_column_major_binaries(tmp_path: Path) -> None:
    images = write_stl10(tmp_path / "stl10_binary")
    data = load_dataset(STL10Config(name="stl10"), tmp_path)

    assert data.train.x.shape == (2, 3, 96, 96) and data.train.x.dtype == torch.uint8
    assert int(data.train.x[1, 2, 10, 80]) == images["train"][1, 2, 10, 80]
    assert torch.equal(data.test.x, torch.from_numpy(images["test"]))
    assert data.train.y.tolist() == [0, 9] and data.test.y.tolist() == [2, 3, 4]


def test_stl10_unlabeled_images_join_train_without_labels(tmp_path: Path) -> None:
    images = write_stl10(tmp_path / "stl10_binary")
    data = load_dataset(STL10Config(name="stl10", unlabeled=True), tmp_path)
    assert data.train.y is None and len(data.train) == 2 + 4
    assert torch.equal(data.train.x[2:], torch.from_numpy(images["unlabeled"]))
    assert data.test.y.tolist() == [2, 3, 4]


def test_stl10_truncated_images_are_refused(tmp_path: Path) -> None:
    write_stl10(tmp_path / "stl10_binary")
    path = tmp_path / "stl10_binary" / "test_X.bin"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DataError, match=r"test_X.bin: 82943 bytes is not a whole number of 3×96×96 images"):
        load_dataset(STL10Config(name="stl10"), tmp_path)
