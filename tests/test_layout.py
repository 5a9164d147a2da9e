"""The folder layout is the architecture: imports point down. The engine imports no method, data
or network; a method package imports no other method; shared numerics and networks import no
method; nothing imports the CLI."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "deepclust_cli"
SHARED_METHOD_MODULES = ("base", "config", "stage", "autoencoder")  # methods/*.py: what methods share


def part_of(module: str) -> str:
    """``engine``, ``ops``, ``methods`` (the shared modules and the catalog), ``methods.lnscc`` ..."""
    parts = module.split(".")[1:]
    if not parts:
        return "deepclust_cli"
    if parts[0] == "methods" and len(parts) > 1 and parts[1] not in SHARED_METHOD_MODULES:
        return f"methods.{parts[1]}"
    return parts[0]


def imports() -> dict[str, set[str]]:
    """Each part of the package → the other parts it imports."""
    edges: dict[str, set[str]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("deepclust_cli"):
                names = [node.module] if node.module != "deepclust_cli" else [f"deepclust_cli.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names if alias.name.startswith("deepclust_cli")]
            edges[part_of(module)].update(part_of(name) for name in names if part_of(name) != part_of(module))
    return edges


EDGES = imports()
ABOVE_THE_ENGINE = {"cli", "run", "summary", "plots", "data", "nets", "ops", "methods", "registry"}


def test_the_engine_imports_no_method_data_or_network():
    assert not EDGES["engine"] & (ABOVE_THE_ENGINE | {part for part in EDGES if part.startswith("methods.")})


@pytest.mark.parametrize("package", sorted(part for part in EDGES if part.startswith("methods.")))
def test_a_method_package_imports_no_other_method(package):
    assert not {part for part in EDGES[package] if part.startswith("methods.")}, EDGES[package]
    assert not EDGES[package] & {"cli", "run", "summary"}


@pytest.mark.parametrize("shared", ["ops", "nets", "data", "config", "registry", "errors"])
def test_shared_code_imports_no_method_and_no_runner(shared):
    assert not {part for part in EDGES[shared] if part.startswith("methods")} and not EDGES[shared] & {"cli", "run", "summary"}


def test_nothing_but_the_entry_point_imports_the_cli():
    assert [part for part, targets in EDGES.items() if "cli" in targets] == ["__main__"]
