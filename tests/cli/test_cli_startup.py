"""The CLI answers --help, --cfg and config errors from the schemas alone: torch is never imported."""

import subprocess
import sys

import pytest

# Importing torch raises inside this interpreter; deepclust runs as usual otherwise.
WITHOUT_TORCH = """
import sys
sys.modules["torch"] = None
from deepclust_cli import cli
cli.main(sys.argv[1:])
"""


def deepclust_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TORCH, *args], capture_output=True, text=True, timeout=120)


def test_importing_the_cli_imports_no_torch():
    code = "import sys, deepclust_cli.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job", "method=kmeans"], ["--cfg", "job", "experiment=and_cifar10"]])
def test_help_and_cfg_answer_without_torch(args):
    result = deepclust_without_torch(*args)
    assert result.returncode == 0, result.stderr
    assert "method" in result.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["method=nosuch"], "unknown method 'nosuch'"),
        (["trainer.precision=fp8"], "Invalid value 'fp8'"),
        (["method.n_neighbors=-1"], "method: n_neighbors must be >= 1, got -1"),
        (["method=and", "dataset=mnist", "method.backbone=resnet7"], "backbone must be one of"),
        (["method=geocluster", "dataset=squares", "dataset.object_type=cuboids"], "dataset squares holds squares, not cuboids"),
    ],
)
def test_config_errors_answer_without_torch(args, message, tmp_path):
    result = deepclust_without_torch(*args, f"output_dir={tmp_path}")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("deepclust: error: ") and message in result.stderr, result.stderr
    assert not any(tmp_path.iterdir())  # a refused command writes nothing


def test_composing_a_tracker_or_a_search_imports_neither_library():
    code = (
        "import sys\nfrom deepclust_cli import cli\n"
        "try:\n    cli.main(['--cfg', 'job', 'logger=mlflow', 'hparams_search=spectralnet_ae_mnist'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(name for name in ('torch', 'mlflow', 'optuna', 'wandb') if name in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "logger:\n  name: mlflow" in result.stdout, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
