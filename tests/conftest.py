import gzip
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepclust_cli import cli
from deepclust_cli.engine.session import Session

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


class CliResult:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def session(self) -> Path:
        """The session folder the run printed last."""
        lines = [line for line in self.out.splitlines() if line.startswith("session: ")]
        assert lines, f"no session line in output:\n{self.out}\n{self.err}"
        return Path(lines[-1].split("session: ", 1)[1])


@pytest.fixture
def deepclust(capsys, tmp_path):
    """Run the CLI in-process with output_dir under tmp_path; returns a CliResult."""

    def invoke(*args: str, output_dir: bool = True) -> CliResult:
        argv = list(args) + ([f"output_dir={tmp_path / 'outputs'}"] if output_dir else [])
        capsys.readouterr()
        try:
            cli.main(argv)
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        else:
            code = 0
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def tiny_spectralnet_ae() -> list[str]:
    """Overrides for a SpectralNetAE run of a second or two: 300 blobs, a 16-unit net, 2 epochs."""
    return [
        "method=spectralnet_ae",
        "dataset=blobs",
        "dataset.n_samples=300",
        "dataset.n_classes=3",
        "method.spectral.hidden=[16]",
        "method.spectral.epochs=2",
        "method.spectral.batch_size=100",
    ]


def run_deepclust_process(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The installed console script in a fresh process: exit codes and stderr exactly as users see them."""
    executable = Path(sys.executable).with_name("deepclust")
    return subprocess.run(
        [str(executable), *args], cwd=cwd, capture_output=True, text=True, timeout=300, env={**os.environ}
    )


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> None:
    """An IDX file: magic 0x0000 08 <ndim>, big-endian dimensions, then the bytes."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    content = header + array.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)


def bar_digits(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28×28 grey images of ten classes: class c < 5 is a horizontal bar at row 4 + 5c, class
    c >= 5 a vertical bar at column 4 + 5(c − 5); each shifted by up to a pixel, with noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.int64)
    position = 4 + 5 * (labels % 5) + rng.integers(-1, 2, n)
    rows = np.arange(28)
    bar = (np.abs(rows[None, :] - position[:, None]) <= 1)[:, :, None]  # n × 28 × 1
    images = np.where(np.where((labels < 5)[:, None, None], bar, bar.transpose(0, 2, 1)), 230, images)
    return images.astype(np.uint8), labels.astype(np.uint8)


# AND on bar_mnist in seconds: a small convnet, 2 rounds × 2 epochs, kNN scored every epoch.
TINY_AND = [
    "method=and",
    "dataset=mnist",
    "dataset.split=train_test",
    "method.backbone=small_convnet",
    "method.anchor_fractions=[0.0,0.5]",
    "method.epochs=2",
    "method.batch_size=64",
    "method.milestones=[1]",
    "method.eval_every=1",
    "method.knn_neighbors=20",
    "method.n_init=2",
    "method.augment.crop_scale=[0.6,1.0]",
    "method.augment.saturation=0",
    "method.augment.hue=0",
    "method.augment.grayscale_p=0",
    "trainer.checkpoint_min_seconds=0",
]


def write_bar_mnist(data_dir: Path) -> Path:
    """MNIST/raw in the real IDX format under ``data_dir``: 240 training and 80 test bar digits."""
    raw = data_dir / "MNIST" / "raw"
    for prefix, n, seed in (("train", 240, 0), ("t10k", 80, 1)):
        images, labels = bar_digits(n, seed)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return data_dir


@pytest.fixture
def bar_mnist(tmp_path) -> Path:
    """A data_dir holding bar digits as MNIST (see write_bar_mnist)."""
    return write_bar_mnist(tmp_path / "data")


class RunsCode:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def write_hostile_checkpoint(path: Path, marker: Path) -> Path:
    """A file that looks like a session checkpoint but runs ``touch marker`` if unpickled."""
    import torch

    from deepclust_cli.engine.checkpoint import FORMAT

    torch.save({"format": FORMAT, "config": {"method": {"name": "kmeans"}}, "payload": RunsCode(marker)}, path)
    return path


class SimulatedCrash(Exception):
    """Stands for a process killed right after a checkpoint was written."""


def run_until_crash(deepclust, monkeypatch, args: list[str], crash_at: int) -> list[dict]:
    """Run the CLI with ``args`` and kill it (``SimulatedCrash``) right after its ``crash_at``-th
    checkpoint; returns the progress recorded by each checkpoint written."""
    written: list[dict] = []
    save = Session.checkpoint

    def checkpoint_then_crash(self, method, progress, **kwargs):
        save(self, method, progress, **kwargs)
        written.append(dict(progress))
        if len(written) == crash_at:
            raise SimulatedCrash(progress)

    monkeypatch.setattr(Session, "checkpoint", checkpoint_then_crash)
    try:
        with pytest.raises(SimulatedCrash):
            deepclust(*args)
    finally:
        monkeypatch.setattr(Session, "checkpoint", save)
    return written
