"""`cifar10`, `cifar100`: the binary versions of CIFAR (Krizhevsky's "binary version" files).

CIFAR-10: cifar-10-batches-bin/data_batch_1.bin ... data_batch_5.bin (train) and test_batch.bin
(val), records of 1 label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32
row-major: channels first, as ImageArrays keeps them). CIFAR-100: cifar-100-binary/train.bin and
test.bin, records of 2 label bytes (coarse, fine) and the same 3072.

The Python versions (cifar-10-batches-py/, cifar-100-python/) are pickles: refused, never
unpickled (loading a pickle runs whatever code it names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data.base import DataError, DataSource, ImageArrays

PIXELS = 3 * 32 * 32


@config
class Cifar10Data:
    path: str = Field(description="directory holding cifar-10-batches-bin/ (or its .bin files themselves)")
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val (test_batch) images")


@config
class Cifar100Data:
    path: str = Field(description="directory holding cifar-100-binary/ (or its train.bin and test.bin)")
    label: Literal["fine", "coarse"] = Field("fine", description="fine: 100 classes; coarse: 20 superclasses")
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val (test.bin) images")


@dataclass(frozen=True)
class _Layout:
    name: str
    folder: str  # the binary version's folder, as its tarball unpacks
    python_folder: str  # the pickled version's folder, refused
    python_marker: str  # a file only the pickled version has
    train: tuple[str, ...]
    test: str
    label_bytes: int

    @property
    def files_text(self) -> str:
        train = f"{self.train[0]} ... {self.train[-1]}" if len(self.train) > 1 else self.train[0]
        return f"{self.folder}/{train}, {self.test}"


CIFAR10 = _Layout(
    "CIFAR-10", "cifar-10-batches-bin", "cifar-10-batches-py", "batches.meta",
    tuple(f"data_batch_{i}.bin" for i in range(1, 6)), "test_batch.bin", 1,
)
CIFAR100 = _Layout("CIFAR-100", "cifar-100-binary", "cifar-100-python", "meta", ("train.bin",), "test.bin", 2)


def _directory(data, layout: _Layout) -> Path:
    """The directory of the binary files: data.path or its binary folder. A directory holding
    only the Python version is refused, pointing to the binary files."""
    root = Path(data.path)
    if not root.is_dir():
        raise DataError(f"data.path: directory {root} does not exist")
    for where in (root, root / layout.folder):
        if (where / layout.test).is_file():
            return where
    pickled = [root / layout.python_marker, root / Path(layout.test).stem]  # batches.meta, test_batch; meta, test
    if root.name == layout.python_folder or (root / layout.python_folder).is_dir() or any(p.is_file() for p in pickled):
        raise DataError(
            f"data.path: {root} holds the Python (pickled) version of {layout.name}, which gensweep does not "
            f"unpickle; use the binary version ({layout.files_text})"
        )
    raise DataError(f"data.path: no {layout.name} binary files ({layout.files_text}) in {root}")


def _files(data, layout: _Layout) -> tuple[list[Path], Path]:
    """(train files, test file), each checked: present, and a whole number of records."""
    directory = _directory(data, layout)
    record = layout.label_bytes + PIXELS
    train = [directory / name for name in layout.train]
    test = directory / layout.test
    for path in (*train, test):
        if not path.is_file():
            raise DataError(f"{path}: missing ({layout.name} is {layout.files_text})")
        size = path.stat().st_size
        if size == 0 or size % record:
            raise DataError(f"{path}: {size:,} bytes is not a whole number of {layout.name} records ({record} bytes each)")
    return train, test


def _read_records(paths: list[Path], layout: _Layout, label_byte: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    records = np.concatenate([np.fromfile(path, np.uint8).reshape(-1, layout.label_bytes + PIXELS) for path in paths])
    labels = records[:, label_byte].astype(np.int64)
    if labels.size and labels.max() >= num_classes:
        raise DataError(f"{paths[0].parent}: a {layout.name} label of {labels.max()} (classes are 0..{num_classes - 1})")
    return records[:, layout.label_bytes :].reshape(-1, 3, 32, 32), labels


def _load(data, layout: _Layout, label_byte: int, num_classes: int) -> ImageArrays:
    train, test = _files(data, layout)
    train_images, train_labels = _read_records(train, layout, label_byte, num_classes)
    val_images, val_labels = _read_records([test], layout, label_byte, num_classes)
    return ImageArrays(
        train_images[: data.train_size], train_labels[: data.train_size],
        val_images[: data.val_size], val_labels[: data.val_size], num_classes,
    )


def _count(data, layout: _Layout) -> tuple[int, int]:
    """(train, val) images, from the files' sizes."""
    train, test = _files(data, layout)
    records = lambda paths: sum(path.stat().st_size for path in paths) // (layout.label_bytes + PIXELS)
    cap = lambda count, size: count if size is None else min(count, size)
    return cap(records(train), data.train_size), cap(records([test]), data.val_size)


def _cifar100_classes(data: Cifar100Data) -> int:
    return 100 if data.label == "fine" else 20


def _describe_10(_: Cifar10Data) -> DataInfo:
    return DataInfo((3, 32, 32), 10)


def _check_10(data: Cifar10Data) -> None:
    _files(data, CIFAR10)


def _load_10(data: Cifar10Data) -> ImageArrays:
    return _load(data, CIFAR10, 0, 10)


def _describe_100(data: Cifar100Data) -> DataInfo:
    return DataInfo((3, 32, 32), _cifar100_classes(data))


def _check_100(data: Cifar100Data) -> None:
    _files(data, CIFAR100)


def _load_100(data: Cifar100Data) -> ImageArrays:  # records: coarse label byte, fine label byte, pixels
    return _load(data, CIFAR100, 1 if data.label == "fine" else 0, _cifar100_classes(data))


SOURCE_10 = DataSource(Cifar10Data, _describe_10, _check_10, _load_10, lambda data: _count(data, CIFAR10))
SOURCE_100 = DataSource(Cifar100Data, _describe_100, _check_100, _load_100, lambda data: _count(data, CIFAR100))
