import dataclasses

import pytest
from hydra.core.config_store import ConfigStore

from deepclust_cli.data import DATASETS
from deepclust_cli.data.config import OBJECT_METRICS, OBJECT_TYPES
from deepclust_cli.errors import ConfigError
from deepclust_cli.methods import METHODS
from deepclust_cli.methods.base import ClusteringMethod
from deepclust_cli.nets import BACKBONES
from deepclust_cli.ops.geometry import FAMILIES, METRICS
from deepclust_cli.registry import Registry


def test_unknown_name_lists_registered_names_and_suggests():
    registry = Registry("widget")
    registry.add("kmeans", "builtins:object")
    registry.add("spectral", "builtins:object")
    with pytest.raises(ConfigError) as error:
        registry.get("kmean")
    assert str(error.value) == "unknown widget 'kmean' (did you mean 'kmeans'?); registered widgets: kmeans, spectral"


def test_duplicate_registration_and_a_target_without_attribute_are_bugs():
    registry = Registry("widget")
    registry.add("a", "builtins:object")
    with pytest.raises(ValueError, match="registered twice"):
        registry.add("a", "builtins:object")
    with pytest.raises(ValueError, match="must be 'module:attribute'"):
        registry.add("b", "builtins.object")


def test_an_implementation_is_imported_when_asked_for():
    registry = Registry("widget")
    registry.add("join", "os.path:join")
    import os.path

    assert registry.get("join") is os.path.join


def test_schemas_go_to_the_config_store():
    repo = ConfigStore.instance().repo
    assert "kmeans.yaml" in repo["schema"]["method"]
    assert "twomoons.yaml" in repo["schema"]["dataset"]


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_is_the_estimator_its_catalog_entry_names(name):
    method_class = METHODS.get(name)
    assert issubclass(method_class, ClusteringMethod)
    assert method_class.name == name
    assert method_class.Config is METHODS.schema(name)


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_has_a_loader_and_a_schema_with_a_name_field(name):
    assert callable(DATASETS.get(name))
    assert "name" in {field.name for field in dataclasses.fields(DATASETS.schema(name))}


def test_builtin_registries():
    assert {"kmeans", "spectral"} <= set(METHODS.names())
    assert {"twomoons", "circles", "blobs", "digits"} <= set(DATASETS.names())
    assert all(callable(BACKBONES.get(name)) for name in BACKBONES.names())


def test_object_types_of_the_dataset_schemas_are_the_geometry_families():
    assert tuple(FAMILIES) == OBJECT_TYPES
    assert {name: tuple(metrics) for name, metrics in METRICS.items()} == OBJECT_METRICS
