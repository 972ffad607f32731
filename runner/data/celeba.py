"""`celeba`: CelebA's aligned and cropped faces, in the layout the data set ships:

    path/img_align_celeba/000001.jpg ... 202599.jpg   178x218 JPEGs, the face centred
    path/list_eval_partition.txt    "000001.jpg 0" a line: 0 train, 1 val, 2 test (the official split)
    path/list_attr_celeba.txt       a count line, a line of the 40 attribute names, then rows
                                    "000001.jpg -1  1 ..." (1: has the attribute, -1: has not)

Train is partition 0; `val_partition` says whether val or test is the val split. The attribute
file is read only when `label_attribute` makes one attribute the labels (0/1, two classes).
Images are decoded as every image source decodes them (runner.data.base.decode_image): by
default the centred 178x178 square (the width of the image), resized to image_size.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

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
)

IMAGES = "img_align_celeba"
PARTITIONS = "list_eval_partition.txt"
ATTRIBUTES = "list_attr_celeba.txt"
PARTITION_NUMBERS = {"train": 0, "val": 1, "test": 2}


@config
class CelebaData:
    path: str = Field(
        description="directory holding img_align_celeba/, list_eval_partition.txt and (for labels) list_attr_celeba.txt"
    )
    image_size: int = Field(64, ge=4, description="images are resized to image_size x image_size")
    channels: Literal[1, 3] = Field(3, description="1: grayscale, 3: RGB")
    crop: Literal["none", "center"] = Field(
        "center", description="center: a centred square of crop_size, then resized; none: the whole 178x218 image, squeezed"
    )
    crop_size: int | None = Field(
        None, ge=1, description="crop center: the square's side (recipes use 178, 148, 140 or 108); null: 178, the width"
    )
    val_partition: Literal["val", "test"] = Field(
        "val", description="the official partition held out for val (1: val, 2: test); train is partition 0"
    )
    label_attribute: str | None = Field(
        None, description="one of the 40 attributes (Male, Smiling, ...) as labels: 1 has it, 0 has not; null: unlabelled"
    )
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val images")
    cache: bool = Field(True, description="decode once into the shared cache every trial maps (gensweep prepare); false: each trial decodes")


class _Listed(NamedTuple):  # a tuple: 200,000 of them are made in a fraction of a dataclass's time
    """An image the partition file names: its file name and the line that names it."""

    name: str
    line: int


def _describe_celeba(data: CelebaData) -> DataInfo:
    return DataInfo((data.channels, data.image_size, data.image_size), None if data.label_attribute is None else 2)


@dataclass(frozen=True)
class _Selection:
    """The images a config selects: where they are, and the train and val images the partition
    file lists (each cut to train_size, val_size), every one present."""

    directory: Path
    train: list[_Listed]
    val: list[_Listed]

    def files(self, listed: list[_Listed]) -> list[Path]:
        return [self.directory / item.name for item in listed]


def _select(data: CelebaData) -> _Selection:
    directory = Path(data.path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    partition_file = directory / PARTITIONS
    if not partition_file.is_file() and partition_file.with_suffix(".csv").is_file():
        raise DataError(
            f"data.path: {directory} holds {partition_file.with_suffix('.csv').name} (a CSV copy, such as Kaggle's), "
            f"not CelebA's own {PARTITIONS} and {ATTRIBUTES}: use the text files of the official release"
        )
    images = directory / IMAGES
    if (images / IMAGES).is_dir():
        images = images / IMAGES  # the Kaggle archive unpacks the folder inside one of its name
    if not images.is_dir():
        raise DataError(f"data.path: {directory} has no {IMAGES}/ (CelebA's aligned and cropped JPEGs)")
    partitions = _read_partitions(partition_file)
    train = partitions[PARTITION_NUMBERS["train"]][: data.train_size]
    val = partitions[PARTITION_NUMBERS[data.val_partition]][: data.val_size]
    for split, listed in (("train", train), (data.val_partition, val)):
        if not listed:
            raise DataError(f"{partition_file}: no image in the {split} partition")
    present = set(os.listdir(images))  # one listing, not 200,000 stat calls
    for item in train + val:
        if item.name not in present:
            raise DataError(f"{partition_file}: line {item.line}: {item.name} is not in {images}")
    return _Selection(images, train, val)


def _read_partitions(path: Path) -> dict[int, list[_Listed]]:
    """list_eval_partition.txt as {partition: images in file order}."""
    if not path.is_file():
        raise DataError(f"{path}: missing (CelebA's official split, lines such as '000001.jpg 0')")
    partitions: dict[int, list[_Listed]] = {0: [], 1: [], 2: []}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2 or fields[1] not in ("0", "1", "2"):
                raise DataError(f"{path}: line {number}: expected 'NAME.jpg PARTITION' with partition 0, 1 or 2, got {line.strip()[:60]!r}")
            partitions[int(fields[1])].append(_Listed(fields[0], number))
    return partitions


def _attribute_names(path: Path) -> tuple[int, list[str]]:
    """list_attr_celeba.txt's first two lines: the image count and the attribute names."""
    if not path.is_file():
        raise DataError(f"{path}: missing (needed by data.label_attribute: CelebA's attribute table)")
    with open(path, encoding="utf-8", errors="replace") as lines:
        count_line, names_line = next(lines, ""), next(lines, "")
    if not count_line.strip().isdigit():
        raise DataError(f"{path}: line 1: expected the number of images, got {count_line.strip()[:60]!r}")
    names = names_line.split()
    if not names:
        raise DataError(f"{path}: line 2: expected the attribute names, got {names_line.strip()[:60]!r}")
    return int(count_line), names


def _attribute_column(path: Path, attribute: str) -> int:
    """Which value of a row is `attribute`; a name not in the file is an error listing some that are."""
    _, names = _attribute_names(path)
    if attribute in names:
        return names.index(attribute)
    close = difflib.get_close_matches(attribute, names, n=3, cutoff=0.5)
    some = close + [name for name in ("Male", "Smiling", "Young", "Eyeglasses", "Blond_Hair") if name in names and name not in close]
    raise DataError(
        f"data.label_attribute: {attribute!r} is not one of the {len(names)} attributes of {path} "
        f"(such as {', '.join(some[:6])})"
    )


def _read_attribute(path: Path, attribute: str) -> dict[str, int]:
    """{image name: 1 if it has `attribute`, else 0}, every row of the attribute file checked."""
    count, names = _attribute_names(path)
    column = _attribute_column(path, attribute)
    values: dict[str, int] = {}
    with open(path, encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            fields = line.split()
            if number <= 2 or not fields:
                continue
            if len(fields) != len(names) + 1:
                hint = " (a row cut short?)" if len(fields) <= len(names) else ""
                raise DataError(f"{path}: line {number}: {len(fields) - 1} values for {len(names)} attributes{hint}")
            value = fields[column + 1]
            if value not in ("1", "-1"):
                raise DataError(f"{path}: line {number}: {attribute} is {value!r}; values are 1 or -1")
            values[fields[0]] = int(value == "1")
    if len(values) != count:
        raise DataError(f"{path}: line 1 says {count} images, but {len(values)} rows follow (a file cut short?)")
    return values


def _labels(values: dict[str, int], listed: list[_Listed], path: Path) -> np.ndarray:
    missing = next((item for item in listed if item.name not in values), None)
    if missing is not None:
        raise DataError(f"{path}: no row for {missing.name} (named on line {missing.line} of {PARTITIONS})")
    return np.array([values[item.name] for item in listed], np.int64)


def _checked(data: CelebaData) -> tuple[_Selection, dict[str, int] | None]:
    """What check finds and load uses: the selection (the partition file read whole, every image
    it lists for the splits used present, each split's first image's header and size read:
    decoding names any later one that fails) and, with label_attribute, the attribute's value
    for every image (the attribute file read whole, about a second for CelebA's 202,599 rows)."""
    settings = decode_settings(data)
    selection = _select(data)
    check_image_headers(selection.files([selection.train[0], selection.val[0]]), "data.path", settings.crop_size)
    if data.label_attribute is None:
        return selection, None
    path = Path(data.path) / ATTRIBUTES
    values = _read_attribute(path, data.label_attribute)
    _labels(values, selection.train + selection.val, path)  # a listed image without a row is named here
    return selection, values


def _check_celeba(data: CelebaData) -> None:
    _checked(data)


def _count_celeba(data: CelebaData) -> tuple[int, int]:
    selection = _select(data)
    return len(selection.train), len(selection.val)


def _load_celeba(data: CelebaData) -> ImageArrays:
    selection, values = _checked(data)
    settings = decode_settings(data)
    train_images = decoded.load_files(selection.files(selection.train), settings, data.cache)
    val_images = decoded.load_files(selection.files(selection.val), settings, data.cache)
    if values is None:
        return ImageArrays(train_images, None, val_images, None, None)
    path = Path(data.path) / ATTRIBUTES
    train_labels, val_labels = _labels(values, selection.train, path), _labels(values, selection.val, path)
    return ImageArrays(train_images, train_labels, val_images, val_labels, 2)


SOURCE = DataSource(CelebaData, _describe_celeba, _check_celeba, _load_celeba, _count_celeba)
