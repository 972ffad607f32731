"""`imagefolder`: labelled images, one sub-folder per class (torchvision's ImageFolder layout:
root/cat/x.png, root/dog/y.jpg). Class indices follow the sorted folder names; images are found
recursively within each class folder and read as `folder` reads them (runner/data/folder.py);
files directly in the root belong to no class and are ignored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data import decoded
from runner.data.base import (
    DataError,
    DataSource,
    ImageArrays,
    check_image_headers,
    decode_settings,
    image_files,
    split_counts,
    split_indices,
)
from runner.data.folder import FolderData


@config
class ImageFolderData(FolderData):
    """`folder`'s keys; `path` holds one sub-folder per class."""

    path: str = Field(description="directory with one sub-folder of images per class")


def class_folders(directory: Path) -> list[Path]:
    """The class folders, sorted by name (their index is the label); hidden folders skipped."""
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    folders = sorted((p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
    if len(folders) < 2:
        raise DataError(f"data.path: {directory} holds {len(folders)} class folders; need at least 2 (one sub-folder per class)")
    return folders


def _files_and_labels(directory: Path) -> tuple[list[Path], np.ndarray]:
    files, labels = [], []
    for index, folder in enumerate(class_folders(directory)):
        found = image_files(folder)
        if not found:
            raise DataError(f"data.path: class folder {folder} holds no images")
        files += found
        labels += [index] * len(found)
    return files, np.array(labels, np.int64)


def _describe_imagefolder(data: ImageFolderData) -> DataInfo:
    return DataInfo((data.channels, data.image_size, data.image_size), len(class_folders(Path(data.path))))


def _check_imagefolder(data: ImageFolderData) -> None:
    """Before Ray starts: the headers read, unless the cache holds the files decoded."""
    settings = decode_settings(data)
    files, _ = _files_and_labels(Path(data.path))
    train, val = split_indices(len(files), data.val_fraction, data.seed)
    if not (data.cache and decoded.holds([files[index] for index in (*train, *val)], settings)):
        check_image_headers(files, "data.path", settings.crop_size)


def _load_imagefolder(data: ImageFolderData) -> ImageArrays:
    # No header pass here: check did it before Ray started, and decoding names any file it cannot read.
    files, labels = _files_and_labels(Path(data.path))
    train, val = split_indices(len(files), data.val_fraction, data.seed)
    train_images, val_images = decoded.load_split(files, train, val, decode_settings(data), data.cache)
    classes = int(labels.max()) + 1
    return ImageArrays(train_images, labels[train], val_images, labels[val], classes)


def _count_imagefolder(data: ImageFolderData) -> tuple[int, int]:
    return split_counts(len(_files_and_labels(Path(data.path))[0]), data.val_fraction)


SOURCE = DataSource(ImageFolderData, _describe_imagefolder, _check_imagefolder, _load_imagefolder, _count_imagefolder)
