"""The wheel carries every package of the source tree (pyproject.toml lists them one by one)."""

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_package_and_config_group_is_listed_in_pyproject():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    packages = {".".join(path.parent.relative_to(REPO).parts) for top in ("deepclust_cli", "hydra_plugins") for path in (REPO / top).rglob("__init__.py")}
    groups = {"deepclust_cli.conf." + ".".join(path.relative_to(REPO / "conf").parts) for path in (REPO / "conf").rglob("*") if path.is_dir()}
    assert packages | groups | {"deepclust_cli.conf"} == listed
