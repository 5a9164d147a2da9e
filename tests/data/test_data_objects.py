"""Object datasets: generated sets are seeded and sized by config; the user's .npy is checked."""

import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import GeneratedObjectsConfig, ObjectsConfig
from deepclust_cli.errors import ConfigError, DataError


@pytest.mark.parametrize("kind, width", [("squares", 4), ("cuboids", 6), ("segments2d", 4), ("segments3d", 6), ("ellipses", 4)])
def test_generated_sets_follow_their_config(kind, width):
    config = GeneratedObjectsConfig(name=kind, object_type=kind, n_objects=50, extent=10.0, size_min=0.2, size_max=0.4, seed=3)
    data = load_dataset(config, "unused")
    assert data.train.x.shape == (50, width) and data.train.y is None and data.kind == "objects"
    assert torch.equal(data.train.x, load_dataset(config, "unused").train.x)
    other = GeneratedObjectsConfig(name=kind, object_type=kind, n_objects=50, extent=10.0, size_min=0.2, size_max=0.4, seed=4)
    assert not torch.equal(data.train.x, load_dataset(other, "unused").train.x)


def test_user_objects_are_read_from_npy(tmp_path):
    segments = np.array([[0, 0, 1, 1], [2, 2, 3, 2]], dtype=np.float64)
    np.save(tmp_path / "segments.npy", segments)
    data = load_dataset(ObjectsConfig(name="objects", object_type="segments2d", path=str(tmp_path / "segments.npy")), "unused")
    assert torch.equal(data.train.x, torch.tensor(segments, dtype=torch.float32))


def test_user_objects_with_bad_values_are_refused(tmp_path):
    np.save(tmp_path / "ellipses.npy", np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 1.0, np.nan, 0.0]]))
    config = ObjectsConfig(name="objects", object_type="ellipses", path=str(tmp_path / "ellipses.npy"))
    with pytest.raises(DataError, match="1 NaN or inf values among the objects"):
        load_dataset(config, "unused")
    np.save(tmp_path / "ellipses.npy", np.array([[1.0, -1.0, 0.0, 0.0]]))
    with pytest.raises(DataError, match="1 semi-axes not positive"):
        load_dataset(config, "unused")
    with pytest.raises(DataError, match="objects file not found"):
        load_dataset(ObjectsConfig(name="objects", object_type="squares", path=str(tmp_path / "none.npy")), "unused")
    with pytest.raises(ConfigError, match="object_type must be one of squares, cuboids"):
        ObjectsConfig(name="objects", object_type="polygons", path="x.npy")
