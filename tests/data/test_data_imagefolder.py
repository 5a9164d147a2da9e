"""Image folders (ImageNet layout) written as small PNG, JPEG and BMP files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.io import write_png

from deepclust_cli.data import load_dataset
from deepclust_cli.data.config import ImageFolderConfig, SplitMode
from deepclust_cli.data.imagefolder import ImageFiles
from deepclust_cli.errors import DataError

# torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they still work.
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")


def solid(color: tuple[int, int, int], height: int, width: int) -> torch.Tensor:
    return torch.tensor(color, dtype=torch.uint8).view(3, 1, 1).expand(3, height, width).contiguous()


def write_tree(top: Path) -> None:
    """train/{cat,dog}, val/{cat,dog}: flat colours, so resizing keeps known values."""
    (top / "train" / "cat").mkdir(parents=True)
    (top / "train" / "dog" / "nested").mkdir(parents=True)
    (top / "val" / "dog").mkdir(parents=True)
    write_png(solid((255, 0, 0), 12, 20), str(top / "train" / "cat" / "a.png"))
    Image.new("RGB", (16, 16), (0, 0, 255)).save(top / "train" / "cat" / "b.JPG", quality=100)
    Image.new("L", (8, 10), 77).save(top / "train" / "dog" / "nested" / "c.bmp")  # grey → RGB
    (top / "train" / "dog" / "notes.txt").write_text("not an image")
    write_png(solid((0, 200, 0), 30, 10), str(top / "val" / "dog" / "d.png"))


def test_imagenet_layout_labels_and_decoding(tmp_path: Path) -> None:
    write_tree(tmp_path / "imagenet")
    data = load_dataset(
        ImageFolderConfig(name="imagenet", image_size=8, mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
        tmp_path,
    )

    assert data.kind == "images" and data.n_classes == 2 and data.class_names == ["cat", "dog"]
    assert data.train.is_lazy and len(data.train) == 3 and len(data.test) == 1
    assert data.train.y.tolist() == [0, 0, 1] and data.test.y.tolist() == [1]
    images = data.train.images()
    assert images.shape == (3, 3, 8, 8) and images.dtype == torch.uint8
    assert images[0, :, 4, 4].tolist() == [255, 0, 0]
    assert (images[1, 2].int() - 255).abs().max() <= 2 and images[1, :2].max() <= 2  # JPEG is lossy
    assert images[2].eq(77).all()
    assert data.test.images()[0, :, 0, 7].tolist() == [0, 200, 0]


def test_short_side_resize_then_center_crop(tmp_path: Path) -> None:
    # 8 rows × 24 columns, thirds red | green | blue: halved to 4×12, the center 4×4 is the green third.
    image = torch.zeros(3, 8, 24, dtype=torch.uint8)
    image[0, :, :8] = 255
    image[1, :, 8:16] = 255
    image[2, :, 16:] = 255
    write_png(image, str(tmp_path / "wide.png"))
    decoded = ImageFiles([str(tmp_path / "wide.png")], image_size=4).load(torch.tensor([0]))
    assert decoded.shape == (1, 3, 4, 4)
    assert decoded[0, :, :, 1:3].flatten(1).float().mean(1).tolist() == [0.0, 255.0, 0.0]
    assert decoded[0, 0].max() < 128 and decoded[0, 2].max() < 128  # no red or blue column survives


def test_lazy_subset_and_concat(tmp_path: Path) -> None:
    write_tree(tmp_path / "imagenet")
    data = load_dataset(ImageFolderConfig(name="imagenet", image_size=4), tmp_path)
    fit, _ = data.partition(SplitMode.all)
    assert len(fit) == 4 and fit.y.tolist() == [0, 0, 1, 1]
    picked = fit.subset(torch.tensor([3, 0]))
    assert isinstance(picked.x, ImageFiles)
    assert picked.images()[:, :, 0, 0].tolist() == [[0, 200, 0], [255, 0, 0]]


def test_subset_of_classes_takes_its_class_count_from_folders(tmp_path: Path) -> None:
    write_tree(tmp_path / "imagenet")
    with pytest.raises(DataError, match=r"has 2 classes \(2 class folders in .*train\) but dataset.n_classes=1000"):
        load_dataset(ImageFolderConfig(name="imagenet", n_classes=1000), tmp_path)
    assert load_dataset(ImageFolderConfig(name="imagenet", n_classes=2), tmp_path).n_classes == 2


def test_root_pointing_at_the_split_folders(tmp_path: Path) -> None:
    write_tree(tmp_path / "photos")
    data = load_dataset(ImageFolderConfig(name="imagenet", root=str(tmp_path / "photos"), test_dir=None), tmp_path)
    assert data.test is None and len(data.train) == 3


def test_missing_and_inconsistent_folders(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_dataset(ImageFolderConfig(name="imagenet"), tmp_path)
    assert str(tmp_path / "imagenet" / "train") in str(caught.value) and "image-net.org" in str(caught.value)

    write_tree(tmp_path / "imagenet")
    (tmp_path / "imagenet" / "val" / "zebra").mkdir()
    with pytest.raises(DataError, match="zebra: class folder without images"):
        load_dataset(ImageFolderConfig(name="imagenet"), tmp_path)
    write_png(solid((1, 2, 3), 4, 4), str(tmp_path / "imagenet" / "val" / "zebra" / "z.png"))
    with pytest.raises(DataError, match="class folder 'zebra' does not exist in the train split"):
        load_dataset(ImageFolderConfig(name="imagenet"), tmp_path)


def test_undecodable_image_names_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(DataError, match="broken.jpg: not a readable image"):
        ImageFiles([str(broken)], image_size=4).load(torch.tensor([0]))


def test_concat_refuses_different_sizes() -> None:
    with pytest.raises(DataError, match="decoded at 4 and 8 pixels"):
        ImageFiles(np.array(["a.png"]), 4).concat(ImageFiles(np.array(["b.png"]), 8))
