"""Every conf/dataset/*.yaml composes with Hydra against its registered schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from deepclust_cli.data import DATASETS
from deepclust_cli.data.config import BlobsConfig, CirclesConfig, DatasetConfig, FeaturesConfig, GeneratedConfig, ImageFolderConfig, ReutersConfig, SplitMode, STL10Config, VisionConfig

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SCHEMAS = {
    "mnist": VisionConfig,
    "fashion_mnist": VisionConfig,
    "cifar10": VisionConfig,
    "cifar100": VisionConfig,
    "cifar100_20": VisionConfig,
    "svhn": VisionConfig,
    "stl10": STL10Config,
    "imagenet": ImageFolderConfig,
    "reuters": ReutersConfig,
    "features": FeaturesConfig,
    "twomoons": GeneratedConfig,
    "circles": CirclesConfig,
    "blobs": BlobsConfig,
    "digits": DatasetConfig,
}
IMAGE_CHANNELS = {"mnist": 1, "fashion_mnist": 1, "cifar10": 3, "cifar100": 3, "cifar100_20": 3, "svhn": 3, "stl10": 3}
REQUIRED_OVERRIDES = {"features": ["dataset.path=features.npy"]}


def compose_dataset(name: str) -> object:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name=f"dataset/{name}", overrides=REQUIRED_OVERRIDES.get(name, []))
    return cfg.dataset


def test_every_registered_dataset_has_a_yaml() -> None:
    assert set(DATASETS.names()) <= {path.stem for path in (CONF_DIR / "dataset").glob("*.yaml")}
    assert set(SCHEMAS) <= set(DATASETS.names())


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_yaml_composes_with_its_schema(name: str) -> None:
    node = compose_dataset(name)
    config = OmegaConf.to_object(node)
    assert type(config) is SCHEMAS[name] and config.name == name
    assert config.split is SplitMode.all
    assert set(OmegaConf.load(CONF_DIR / "dataset" / f"{name}.yaml")) - {"defaults"} <= set(node)
    if name in IMAGE_CHANNELS:
        assert len(config.mean) == len(config.std) == IMAGE_CHANNELS[name]


def test_image_statistics_and_class_counts() -> None:
    cifar100, cifar100_20 = (
        OmegaConf.to_object(compose_dataset("cifar100")),
        OmegaConf.to_object(compose_dataset("cifar100_20")),
    )
    assert cifar100.mean == cifar100_20.mean != OmegaConf.to_object(compose_dataset("cifar10")).mean
    assert (cifar100.n_classes, cifar100_20.n_classes) == (100, 20)
    imagenet = OmegaConf.to_object(compose_dataset("imagenet"))
    assert imagenet.mean == [0.485, 0.456, 0.406] and imagenet.image_size == 224 and imagenet.n_classes == 1000


def test_features_yaml_requires_a_path() -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="dataset/features")
    assert OmegaConf.is_missing(cfg.dataset, "path")
