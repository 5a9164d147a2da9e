import pytest
from hydra.core.config_store import ConfigStore

from deepclust_cli.data import DATASETS
from deepclust_cli.errors import ConfigError
from deepclust_cli.methods import METHODS
from deepclust_cli.registry import Registry


def test_unknown_name_lists_registered_names_and_suggests():
    registry = Registry("widget")
    registry.register("kmeans")(object)
    registry.register("spectral")(object)
    with pytest.raises(ConfigError) as error:
        registry.get("kmean")
    assert str(error.value) == "unknown widget 'kmean' (did you mean 'kmeans'?); registered widgets: kmeans, spectral"


def test_duplicate_registration_is_a_bug():
    registry = Registry("widget")
    registry.register("a")(object)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register("a")(object)


def test_schemas_go_to_the_config_store():
    repo = ConfigStore.instance().repo
    assert "kmeans.yaml" in repo["schema"]["method"]
    assert "twomoons.yaml" in repo["schema"]["dataset"]


def test_builtin_registries():
    assert {"kmeans", "spectral"} <= set(METHODS.names())
    assert {"twomoons", "circles", "blobs", "digits"} <= set(DATASETS.names())
