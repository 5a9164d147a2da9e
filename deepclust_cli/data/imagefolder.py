"""Image folders too large to hold in memory, decoded on demand: ImageNet and its subsets, and
your own images (``dataset=images``: a flat folder, unlabelled, or one of class folders).

The labelled layout is torchvision's ImageFolder convention: ``<split>/<class>/<image>``, classes
numbered in sorted folder-name order, images found at any depth below their class folder. Both
splits use the train split's class numbering.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import PIL.Image
import torch

from deepclust_cli.data.base import Dataset, Split
from deepclust_cli.data.config import ImageFolderConfig, ImagesConfig
from deepclust_cli.data.vision import check_class_count, files_folder, image_dataset
from deepclust_cli.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageFiles:
    """Image files decoded on demand to uint8 RGB ``image_size``×``image_size`` tensors.

    Decoding resizes the short side to ``image_size`` and crops the center square, the usual
    evaluation transform for ImageNet-sized photographs.
    """

    def __init__(self, paths: Sequence[str], image_size: int) -> None:
        # Object dtype: a fixed-width str array would pad a million ImageNet paths to the longest one.
        self.paths = np.asarray(paths, dtype=object)
        self.image_size = image_size

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: torch.Tensor) -> ImageFiles:
        return ImageFiles(self.paths[index.cpu().numpy()], self.image_size)

    def concat(self, other: ImageFiles) -> ImageFiles:
        if other.image_size != self.image_size:
            raise DataError(f"cannot join images decoded at {self.image_size} and {other.image_size} pixels")
        return ImageFiles(np.concatenate([self.paths, other.paths]), self.image_size)

    def load(self, index: torch.Tensor) -> torch.Tensor:
        """The images at ``index`` as one uint8 tensor N×3×image_size×image_size."""
        import torchvision.transforms.v2.functional as TF  # deferred: the import costs seconds at start-up

        size = self.image_size
        images = torch.empty((len(index), 3, size, size), dtype=torch.uint8)
        for slot, path in enumerate(self.paths[index.cpu().numpy()]):
            images[slot] = TF.center_crop(TF.resize(self._decode(path), [size], antialias=True), [size, size])
        return images

    @staticmethod
    def _decode(path: str) -> torch.Tensor:
        import torchvision.transforms.v2.functional as TF
        from torchvision.io import ImageReadMode, decode_image

        try:
            if path.lower().endswith(".bmp"):  # torchvision.io decodes only JPEG, PNG, WebP and GIF
                with PIL.Image.open(path) as image:
                    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
            image = decode_image(path, mode=ImageReadMode.RGB)
        except (RuntimeError, OSError, ValueError) as error:
            raise DataError(f"{path}: not a readable image ({' '.join(str(error).split())})") from error
        return TF.to_dtype(image, torch.uint8, scale=True)  # 16-bit PNGs decode to uint16


def find_class_folders(split_dir: Path) -> dict[str, list[str]]:
    """Class name → sorted image paths, for every class folder in ``split_dir``, in sorted order."""
    classes = {}
    for class_dir in sorted(entry for entry in split_dir.iterdir() if entry.is_dir()):
        images = sorted(
            str(path) for path in class_dir.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        )
        if not images:
            raise DataError(f"{class_dir}: class folder without images ({', '.join(IMAGE_EXTENSIONS)})")
        classes[class_dir.name] = images
    if not classes:
        raise DataError(f"{split_dir}: no class folders (expected {split_dir}/<class>/<image>)")
    return classes


def labelled_files(
    split_dir: Path, classes: dict[str, list[str]], class_index: dict[str, int], image_size: int
) -> Split:
    """``classes`` (from :func:`find_class_folders`) as a lazy split labelled by ``class_index``."""
    unknown = sorted(set(classes) - set(class_index))
    if unknown:
        raise DataError(f"{split_dir}: class folder '{unknown[0]}' does not exist in the train split")
    paths = [path for images in classes.values() for path in images]
    labels = np.repeat([class_index[name] for name in classes], [len(images) for images in classes.values()])
    return Split(ImageFiles(paths, image_size), torch.as_tensor(labels, dtype=torch.int64))


def load_imagenet(config: ImageFolderConfig, data_dir: Path, seed: int) -> Dataset:
    """ImageNet (or any subset of its classes) from ``<data_dir>/imagenet/{train,val}/<class>/<image>``.

    The class count is the number of train class folders, so ImageNet-10 or ImageNet-Dogs are
    just folders holding fewer classes.
    """
    split_dirs = [config.train_dir] + ([config.test_dir] if config.test_dir is not None else [])
    folder = files_folder(config, data_dir, "imagenet", split_dirs, present=Path.is_dir)
    missing = [name for name in split_dirs if not (folder / name).is_dir()]
    if missing:
        raise DataError(
            f"dataset '{config.name}' not found: expected {folder / missing[0]}/<class>/<image>; "
            "ImageNet cannot be downloaded automatically: get it from https://image-net.org and sort "
            "each split into one folder per class (the val images by their ground-truth labels)"
        )
    train_dir = folder / config.train_dir
    train_classes = find_class_folders(train_dir)
    n_classes = check_class_count(config, len(train_classes), f" ({len(train_classes)} class folders in {train_dir})")
    class_index = {name: number for number, name in enumerate(train_classes)}
    train = labelled_files(train_dir, train_classes, class_index, config.image_size)
    test = None
    if config.test_dir is not None:
        test_dir = folder / config.test_dir
        test = labelled_files(test_dir, find_class_folders(test_dir), class_index, config.image_size)
    return image_dataset(config, train, test, n_classes, channels=3, class_names=list(train_classes))


def load_images(config: ImagesConfig, data_dir: Path, seed: int) -> Dataset:
    """Your own images in ``path``: a flat folder of images is unlabelled; a folder of class
    subfolders (``path/<class>/<image>``) is labelled by them. Images are decoded on demand,
    resized to ``image_size``; ``predictions/`` names each by its path."""
    folder = Path(config.path).expanduser()
    if not folder.is_dir():
        raise DataError(f"dataset 'images': no folder {folder}; set dataset.path to a folder of images")
    flat = sorted(str(p) for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    subfolders = [entry for entry in folder.iterdir() if entry.is_dir()]
    if flat or not subfolders:
        if not flat:
            raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}) and no class folders")
        return image_dataset(config, Split(ImageFiles(flat, config.image_size)), None, config.n_classes, channels=3)
    classes = find_class_folders(folder)
    n_classes = check_class_count(config, len(classes), f" ({len(classes)} class folders in {folder})")
    train = labelled_files(folder, classes, {name: number for number, name in enumerate(classes)}, config.image_size)
    return image_dataset(config, train, None, n_classes, channels=3, class_names=list(classes))
