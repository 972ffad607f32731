"""`mnist`: the standard IDX files (LeCun's layout, .gz or raw; torchvision's folder too).

Also the shared reader of every IDX set (IdxLayout, check_idx_set, load_idx_set): Fashion-MNIST,
KMNIST and EMNIST (runner/data/mnist_family.py) differ from MNIST only in their file names, their
torchvision folder, their classes and (EMNIST) transposed images and 1-based labels."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data.base import DataError, DataSource, ImageArrays


@config
class MnistData:
    path: str = Field(description="directory with train-* and/or t10k-* IDX files (.gz or raw)")
    download: bool = Field(False, description="fetch the files with torchvision if absent")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of t10k held out for val when there are no train files"
    )
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val images")
    seed: int = Field(0, description="seed of the t10k train/val split")


@dataclass(frozen=True)
class IdxLayout:
    """One IDX set on disk: its name (for messages), torchvision's folder (<path>/<folder>/raw),
    the prefixes of its image and label files (train, test), its classes, and how its bytes
    differ from MNIST's: images stored transposed, labels counted from `first_label`."""

    name: str
    torchvision_folder: str
    train: tuple[str, str]
    test: tuple[str, str]
    num_classes: int
    transposed: bool = False
    first_label: int = 0


MNIST = IdxLayout("MNIST", "MNIST", ("train-images", "train-labels"), ("t10k-images", "t10k-labels"), 10)


def idx_files(directory: Path, layout: IdxLayout) -> dict[str, tuple[Path, Path]]:
    """{"train": (images, labels), "test": (images, labels)}: those present, in `directory` or
    in torchvision's layout below it."""
    found = {}
    for where in (directory, directory / layout.torchvision_folder / "raw"):
        for split, (image_prefix, label_prefix) in (("train", layout.train), ("test", layout.test)):
            images = sorted(where.glob(f"{image_prefix}*"))
            labels = sorted(where.glob(f"{label_prefix}*"))
            if images and labels and split not in found:
                found[split] = (images[0], labels[0])
    return found


def check_idx_set(data, layout: IdxLayout, hint: str = "") -> None:
    """The directory, the test files (train files are optional) and every file's IDX header."""
    directory = Path(data.path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    files = idx_files(directory, layout)
    if "test" not in files:
        image_prefix, label_prefix = layout.test
        raise DataError(f"data.path: no {layout.name} {image_prefix}*/{label_prefix}* files in {directory}{hint}")
    for pair in files.values():
        for path in pair:
            check_idx_header(path)


def count_idx_set(data, layout: IdxLayout) -> tuple[int, int]:
    """(train, val) images load_idx_set gives, from the image files' headers."""
    check_idx_set(data, layout)
    files = idx_files(Path(data.path), layout)
    test = check_idx_header(files["test"][0])[0]
    if "train" in files:
        train, val = check_idx_header(files["train"][0])[0], test
    else:
        val = round(test * data.val_fraction)
        train = test - val
    return min(train, data.train_size or train), min(val, data.val_size or val)


def load_idx_set(data, layout: IdxLayout) -> ImageArrays:
    """Train files and the test files as val; with only the test files, `val_fraction` of them
    held out (seeded); then the train_size/val_size caps."""
    check_idx_set(data, layout)
    files = idx_files(Path(data.path), layout)
    test_images, test_labels = _read_pair(*files["test"], layout)
    if "train" in files:
        train_images, train_labels = _read_pair(*files["train"], layout)
        val_images, val_labels = test_images, test_labels
    else:
        order = np.random.default_rng(data.seed).permutation(len(test_images))
        val_count = round(len(order) * data.val_fraction)
        val_index, train_index = order[:val_count], order[val_count:]
        train_images, train_labels = test_images[train_index], test_labels[train_index]
        val_images, val_labels = test_images[val_index], test_labels[val_index]
    train_images, train_labels = train_images[: data.train_size], train_labels[: data.train_size]
    val_images, val_labels = val_images[: data.val_size], val_labels[: data.val_size]
    return ImageArrays(train_images[:, None], train_labels, val_images[:, None], val_labels, layout.num_classes)


def _read_pair(image_path: Path, label_path: Path, layout: IdxLayout) -> tuple[np.ndarray, np.ndarray]:
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3:
        raise DataError(f"{image_path}: holds an array of shape {images.shape}, not (N, H, W) images")
    if labels.shape != images.shape[:1]:
        raise DataError(f"{label_path}: holds {labels.shape} labels for {len(images)} images in {image_path.name}")
    if layout.transposed:
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    labels = labels.astype(np.int64) - layout.first_label
    if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
        raise DataError(
            f"{label_path}: labels {labels.min() + layout.first_label}..{labels.max() + layout.first_label} "
            f"outside {layout.first_label}..{layout.num_classes - 1 + layout.first_label}"
        )
    return images, labels


def _describe_mnist(_: MnistData) -> DataInfo:
    return DataInfo((1, 28, 28), 10)


def _check_mnist(data: MnistData) -> None:
    if data.download and "test" not in idx_files(Path(data.path), MNIST):
        return  # fetched in the trial
    check_idx_set(data, MNIST, hint=" (set data.download: true to fetch them)")


def check_idx_header(path: Path) -> tuple[int, ...]:
    """An IDX file's magic and dimensions, and for a raw file its size: what read_idx would
    refuse, found without reading the data (a gzip file's length is known only by inflating it).
    Returns the shape its header gives."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            head = stream.read(4)
            dims = head[3] if len(head) == 4 else 0
            shape_bytes = stream.read(4 * dims)
    except (OSError, EOFError) as error:
        raise DataError(f"{path}: cannot read ({getattr(error, 'strerror', None) or error})") from None
    if len(head) < 4 or head[:3] != b"\x00\x00\x08" or len(shape_bytes) < 4 * dims:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    shape = [int.from_bytes(shape_bytes[4 * i : 4 * i + 4], "big") for i in range(dims)]
    if path.suffix != ".gz" and path.stat().st_size != 4 + 4 * dims + int(np.prod(shape)):
        raise DataError(f"{path}: header says {tuple(shape)} but the file holds {path.stat().st_size:,} bytes")
    return tuple(shape)


def _load_mnist(data: MnistData) -> ImageArrays:
    directory = Path(data.path)
    if data.download and "test" not in idx_files(directory, MNIST):
        # The one exempt edge of runner/data/'s no-torch rule (issue 15): torchvision (and torch
        # with it) only on this opt-in path, the one place gensweep may download anything.
        import torchvision

        torchvision.datasets.MNIST(str(directory), train=True, download=True)
        torchvision.datasets.MNIST(str(directory), train=False, download=True)
    return load_idx_set(data, MNIST)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (LeCun's format: magic, dimensions, big-endian data) as a uint8 array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except OSError as error:
        raise DataError(f"{path}: cannot read ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims))
    body = np.frombuffer(raw, np.uint8, offset=4 + 4 * dims)
    if body.size != int(np.prod(shape)):
        raise DataError(f"{path}: header says {shape} but holds {body.size} bytes of data")
    return body.reshape(shape).copy()  # frombuffer is read-only; tensors want to own their memory


def _count_mnist(data: MnistData) -> tuple[int, int] | None:
    if data.download and "test" not in idx_files(Path(data.path), MNIST):
        return None  # not fetched yet
    return count_idx_set(data, MNIST)


SOURCE = DataSource(MnistData, _describe_mnist, _check_mnist, _load_mnist, _count_mnist)
