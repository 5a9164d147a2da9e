import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepclust_cli import cli

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
