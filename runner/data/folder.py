"""`folder`: any directory of images, searched recursively, centre-cropped if asked and resized
to a square (runner.data.base.decode_image)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

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


@config
class FolderData:
    path: str = Field(description="directory of images (searched recursively)")
    image_size: int = Field(64, ge=4, description="images are resized to image_size x image_size")
    channels: Literal[1, 3] = Field(1, description="1: grayscale, 3: RGB")
    crop: Literal["none", "center"] = Field(
        "none", description="none: each whole image, squeezed to a square; center: a centred square of crop_size, then resized"
    )
    crop_size: int | None = Field(
        None, ge=1, description="crop center: the square's side in the file's pixels; null: the image's shorter side"
    )
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of images held out for val")
    seed: int = Field(0, description="seed of the train/val split")
    cache: bool = Field(True, description="decode once into the shared cache every trial maps (gensweep prepare); false: each trial decodes")


def _describe_folder(data: FolderData) -> DataInfo:
    return DataInfo((data.channels, data.image_size, data.image_size), None)


def _folder_files(data: FolderData) -> list[Path]:
    """The files, in the order load decodes them: train, then val (each split a slice of one array)."""
    directory = Path(data.path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    files = image_files(directory)
    if len(files) < 2:
        raise DataError(f"data.path: {directory} holds {len(files)} images; need at least 2")
    train, val = split_indices(len(files), data.val_fraction, data.seed)
    return [files[index] for index in (*train, *val)]


def _check_folder(data: FolderData) -> None:
    """Before Ray starts: every file's header read (a damaged one named), unless the cache
    already holds them decoded."""
    settings = decode_settings(data)
    ordered = _folder_files(data)
    if not (data.cache and decoded.holds(ordered, settings)):
        check_image_headers(sorted(ordered), "data.path", settings.crop_size)


def _load_folder(data: FolderData) -> ImageArrays:
    # No header pass here: check did it before Ray started, and decoding names any file it cannot read.
    ordered = _folder_files(data)
    images = decoded.load_files(ordered, decode_settings(data), data.cache)
    train_count = split_counts(len(ordered), data.val_fraction)[0]
    return ImageArrays(images[:train_count], None, images[train_count:], None, None)


def _count_folder(data: FolderData) -> tuple[int, int]:
    return split_counts(len(image_files(Path(data.path))), data.val_fraction)


SOURCE = DataSource(FolderData, _describe_folder, _check_folder, _load_folder, _count_folder)
