"""Object datasets: generated sets are seeded and sized by config; the user's .npy is checked."""

import numpy as np
import pytest
import torch

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import GeneratedObjectsConfig, ObjectsConfig, ReferenceObjectsConfig
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


def test_reference_files_load_in_our_layout(tmp_path):
    # The reference's on-disk format: float64 rows, squares' rotations in degrees, cuboids with three rotations.
    folder = tmp_path / "geocluster"
    folder.mkdir()
    np.save(folder / "10sq_1_4.npy", np.array([[10.0, 20.0, 2.0, 45.0], [30.0, 5.0, 4.0, 90.0], [7.0, 7.0, 1.0, 0.0]]))
    cuboids = np.array([[1.0, 2.0, 3.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0], [9.0, 8.0, 7.0, 4.0, 4.0, 4.0, 0.0, 0.0, 0.0]])
    np.save(folder / "10cb_1_4.npy", cuboids)
    squares = load_dataset(ReferenceObjectsConfig(name="reference_squares", object_type="squares", file="10sq_1_4.npy"), tmp_path)
    assert squares.train.x.shape == (3, 4) and squares.kind == "objects"
    assert torch.allclose(squares.train.x[:, 3], torch.tensor([np.pi / 4, np.pi / 2, 0.0]))
    assert torch.equal(squares.train.x[:, :3], torch.tensor([[10.0, 20.0, 2.0], [30.0, 5.0, 4.0], [7.0, 7.0, 1.0]]))
    boxes = load_dataset(ReferenceObjectsConfig(name="reference_cuboids", object_type="cuboids", file="10cb_1_4.npy", root=str(folder)), "unused")
    assert torch.equal(boxes.train.x, torch.tensor(cuboids[:, :6], dtype=torch.float32))


def test_reference_files_that_do_not_fit_are_refused(tmp_path):
    config = ReferenceObjectsConfig(name="reference_cuboids", object_type="cuboids", file="cb.npy", root=str(tmp_path))
    with pytest.raises(DataError, match=f"reference cuboids file not found: {tmp_path / 'cb.npy'}; copy cb.npy there"):
        load_dataset(config, "unused")
    np.save(tmp_path / "cb.npy", np.array([[1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 0.0, 0.0, 30.0]]))
    with pytest.raises(DataError, match="1 cuboids are rotated; only axis-aligned"):
        load_dataset(config, "unused")
    np.save(tmp_path / "cb.npy", np.zeros((2, 6)))
    with pytest.raises(DataError, match=r"reference cuboids are 9 numbers per row, got float64 of shape \(2, 6\)"):
        load_dataset(config, "unused")
    with pytest.raises(ConfigError, match="dataset reference_squares holds squares, not cuboids"):
        ReferenceObjectsConfig(name="reference_squares", object_type="cuboids", file="cb.npy")
