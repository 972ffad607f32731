"""Data sets as uint8 tensors in memory: loaded once per trial, batches drawn by indexing.

Each source is a name, a config dataclass (the `data:` section of a spec) and three functions:
`describe` (shape and classes, without loading), `check` (cheap problems found before Ray
starts: a missing directory, missing files) and `load`.
"""

from __future__ import annotations

import gzip
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from pydantic import Field

from models import Batch, DataInfo
from models.config import config
from runner import digits as digits_generator
from runner.errors import PermanentError
from runner.files import write_bytes


class DataError(PermanentError, ValueError):
    """A data set that cannot be loaded; the message names the key or file. Permanent: a trial
    that meets one fails at once, not after its retries."""


@dataclass
class ImageData:
    """Train and val images (N, C, H, W) uint8 and labels (N,) int64 (or None), on one device.

    Two-image sets (runner.pairs) add targets: for "paired" data the target of each image, for
    "unpaired" data a second domain of its own length, drawn independently.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor | None
    val_images: torch.Tensor
    val_labels: torch.Tensor | None
    num_classes: int | None
    train_targets: torch.Tensor | None = None
    val_targets: torch.Tensor | None = None
    pairing: str | None = None  # None, "paired" or "unpaired"

    @property
    def info(self) -> DataInfo:
        return DataInfo(tuple(self.train_images.shape[1:]), self.num_classes, self.pairing)

    def to(
        self, device: torch.device | str, memory_format: torch.memory_format = torch.preserve_format
    ) -> ImageData:
        """On `device`; image tensors (4-D) in `memory_format`, which every batch indexed from them keeps."""
        def move(t):
            if t is None:
                return None
            return t.to(device, memory_format=memory_format) if t.dim() == 4 else t.to(device)
        return ImageData(
            move(self.train_images), move(self.train_labels), move(self.val_images), move(self.val_labels),
            self.num_classes, move(self.train_targets), move(self.val_targets), self.pairing,
        )

    def batches(
        self, split: str, batch_size: int, generator: torch.Generator | None = None,
        max_batches: int | None = None, count: int | None = None,
    ) -> Iterator[Batch]:
        """Batches of the train or val split (its first `count` images), shuffled with a generator."""
        images, labels, targets = (getattr(self, f"{split}_{part}") for part in ("images", "labels", "targets"))
        if count is not None:
            images = images[:count]
            labels = None if labels is None else labels[:count]
            if targets is not None and self.pairing == "paired":  # unpaired: the whole other domain
                targets = targets[:count]
        return batches(images, labels, batch_size, generator, max_batches, targets, self.pairing)


def batches(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    generator: torch.Generator | None = None,
    max_batches: int | None = None,
    targets: torch.Tensor | None = None,
    pairing: str | None = None,
) -> Iterator[Batch]:
    """Batches of float images in [0, 1] on the images' device; shuffled when given a generator.

    Indexing a device tensor with a permutation replaces a DataLoader: no workers, no per-sample
    transforms, one gather and one conversion per batch. Paired targets follow their images;
    unpaired targets (another domain) are drawn in an order of their own, wrapping round.
    """
    count = len(images)
    order = _order(count, generator, images.device)
    if targets is not None and pairing == "unpaired":
        target_order = _order(len(targets), generator, targets.device).repeat(-(-count // len(targets)))
    starts = range(0, count, batch_size)
    if max_batches is not None:
        starts = starts[:max_batches]
    for start in starts:
        index = order[start : start + batch_size]
        batch_labels = None if labels is None else labels[index]
        batch_targets = None
        if targets is not None:
            target_index = target_order[start : start + len(index)] if pairing == "unpaired" else index
            batch_targets = targets[target_index].float().div_(255.0)
        yield Batch(images[index].float().div_(255.0), batch_labels, batch_targets)


def _order(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    if generator is None:
        return torch.arange(count, device=device)
    return torch.randperm(count, generator=generator, device=generator.device).to(device)


# -- digits: the embedded default ---------------------------------------------------------------
@config
class DigitsData:
    train_size: int = Field(10_000, ge=1, description="training images to draw")
    val_size: int = Field(2_000, ge=1, description="validation images, from a separate stream")
    seed: int = Field(0, description="same seed, same bytes")


def _describe_digits(_: DigitsData) -> DataInfo:
    return DataInfo((1, digits_generator.IMAGE_SIDE, digits_generator.IMAGE_SIDE), 10)


def _load_digits(data: DigitsData) -> ImageData:
    train = cached_digits(data.train_size, data.seed, "train")
    val = cached_digits(data.val_size, data.seed, "val")
    return as_tensors(train[0][:, None], train[1], val[0][:, None], val[1], 10)


def cached_digits(count: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """make_digits, kept on disk: drawing takes about a millisecond an image, loading far less."""
    path = digits_cache_path(count, seed, split)
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return stored["images"], stored["labels"]
    images, labels = digits_generator.make_digits(count, seed, split)
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels)
    write_bytes(path, buffer.getvalue())  # two trials may fill one entry at once: whole files only
    return images, labels


def digits_cache_path(count: int, seed: int, split: str) -> Path:
    return cache_dir() / f"digits-v{DIGITS_VERSION}-{split}-seed{seed}-n{count}.npz"


DIGITS_VERSION = 1  # bump when the generator changes, so stale caches are not reused


def cache_dir() -> Path:
    root = os.environ.get("GENSWEEP_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "gensweep"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- mnist: the standard IDX files --------------------------------------------------------------
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


_IDX_PARTS = {"train": ("train-images", "train-labels"), "t10k": ("t10k-images", "t10k-labels")}


def _mnist_files(directory: Path) -> dict[str, tuple[Path, Path]]:
    found = {}
    for where in (directory, directory / "MNIST" / "raw"):  # the latter is torchvision's layout
        for split, (image_prefix, label_prefix) in _IDX_PARTS.items():
            images = sorted(where.glob(f"{image_prefix}*"))
            labels = sorted(where.glob(f"{label_prefix}*"))
            if images and labels and split not in found:
                found[split] = (images[0], labels[0])
    return found


def _describe_mnist(_: MnistData) -> DataInfo:
    return DataInfo((1, 28, 28), 10)


def _check_mnist(data: MnistData) -> None:
    directory = Path(data.path)
    if data.download and "t10k" not in _mnist_files(directory):
        return  # fetched in the trial
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    files = _mnist_files(directory)
    if "t10k" not in files:
        raise DataError(
            f"data.path: no MNIST t10k-images*/t10k-labels* files in {directory} "
            "(set data.download: true to fetch them)"
        )
    for pair in files.values():
        for path in pair:
            check_idx_header(path)


def check_idx_header(path: Path) -> None:
    """An IDX file's magic and dimensions, and for a raw file its size: what read_idx would
    refuse, found without reading the data (a gzip file's length is known only by inflating it)."""
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


def _load_mnist(data: MnistData) -> ImageData:
    directory = Path(data.path)
    if data.download and "t10k" not in _mnist_files(directory):
        import torchvision  # only here: the one place gensweep may download anything

        torchvision.datasets.MNIST(str(directory), train=True, download=True)
        torchvision.datasets.MNIST(str(directory), train=False, download=True)
    _check_mnist(MnistData(path=data.path, download=False))
    files = _mnist_files(directory)
    test_images, test_labels = (read_idx(path) for path in files["t10k"])
    if "train" in files:
        train_images, train_labels = (read_idx(path) for path in files["train"])
        val_images, val_labels = test_images, test_labels
    else:
        order = np.random.default_rng(data.seed).permutation(len(test_images))
        val_count = round(len(order) * data.val_fraction)
        val_index, train_index = order[:val_count], order[val_count:]
        train_images, train_labels = test_images[train_index], test_labels[train_index]
        val_images, val_labels = test_images[val_index], test_labels[val_index]
    train_images, train_labels = train_images[: data.train_size], train_labels[: data.train_size]
    val_images, val_labels = val_images[: data.val_size], val_labels[: data.val_size]
    return as_tensors(train_images[:, None], train_labels, val_images[:, None], val_labels, 10)


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


# -- folder: any directory of images ------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@config
class FolderData:
    path: str = Field(description="directory of images (searched recursively)")
    image_size: int = Field(64, ge=4, description="images are resized to image_size x image_size")
    channels: Literal[1, 3] = Field(1, description="1: grayscale, 3: RGB")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="share of images held out for val")
    seed: int = Field(0, description="seed of the train/val split")


def image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def _describe_folder(data: FolderData) -> DataInfo:
    return DataInfo((data.channels, data.image_size, data.image_size), None)


def _check_folder(data: FolderData) -> None:
    directory = Path(data.path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    files = image_files(directory)
    if len(files) < 2:
        raise DataError(f"data.path: {directory} holds {len(files)} images; need at least 2")
    check_image_headers(files, "data.path")


_PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every complete PNG


def check_image_headers(files: list[Path], key: str) -> None:
    """Each file's image header, read without decoding pixels (about 0.1 s a thousand files):
    an empty, damaged or truncated file is named here, before Ray starts, not in every trial.

    PIL reads the header (format, size); a PNG must also end with its IEND chunk, since a PNG
    cut short keeps a good header and only fails to decode. Whatever passes and still does not
    decode (rarer damage deep inside a file) fails its trial once, naming the file.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError

    for path in files:
        try:
            if path.stat().st_size == 0:
                raise DataError("an empty file")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    if image.width < 1 or image.height < 1:
                        raise DataError("an image of no pixels")
                    if image.format == "PNG":
                        with open(path, "rb") as stream:
                            stream.seek(-len(_PNG_END), os.SEEK_END)
                            if stream.read() != _PNG_END:
                                raise DataError("a PNG cut short (no IEND chunk at its end)")
        except Image.DecompressionBombError:
            continue  # a header that reads: very large, which is not for this check to refuse
        except DataError as error:
            raise DataError(f"{key}: {path}: not a readable image: {error}") from None
        except UnidentifiedImageError:
            raise DataError(f"{key}: {path}: not a readable image: no image format recognised in its header") from None
        except (OSError, SyntaxError, ValueError) as error:  # PIL's header parsers raise these on damage
            text = str(error).strip()
            reason = getattr(error, "strerror", None) or (text.splitlines()[0] if text else type(error).__name__)
            raise DataError(f"{key}: {path}: not a readable image: {reason}") from None


def _load_folder(data: FolderData) -> ImageData:
    _check_folder(data)
    images = read_images(image_files(Path(data.path)), data.image_size, data.channels)
    train, val = split_indices(len(images), data.val_fraction, data.seed)
    return as_tensors(images[train], None, images[val], None, None)


def read_images(files: list[Path], size: int, channels: int) -> np.ndarray:
    """Image files as (N, C, size, size) uint8, RGB order; a file OpenCV cannot read is an error."""
    flag = cv2.IMREAD_GRAYSCALE if channels == 1 else cv2.IMREAD_COLOR
    images = np.empty((len(files), channels, size, size), np.uint8)
    for index, path in enumerate(files):
        image = cv2.imread(str(path), flag)
        if image is None:
            raise DataError(f"{path}: not a readable image")
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
        if channels == 3:
            images[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
        else:
            images[index, 0] = image
    return images


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a seeded shuffle, at least one image on each side."""
    order = np.random.default_rng(seed).permutation(count)
    val_count = min(count - 1, max(1, round(count * val_fraction)))
    return order[val_count:], order[:val_count]


# -- the table of sources -----------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    config_class: type
    describe: Callable[..., DataInfo]
    check: Callable[..., None]
    load: Callable[..., ImageData]


SOURCES: dict[str, DataSource] = {
    "digits": DataSource(DigitsData, _describe_digits, lambda _: None, _load_digits),
    "mnist": DataSource(MnistData, _describe_mnist, _check_mnist, _load_mnist),
    "folder": DataSource(FolderData, _describe_folder, _check_folder, _load_folder),
}


def load(name: str, data_config) -> ImageData:
    return SOURCES[name].load(data_config)


def as_tensors(
    train_images, train_labels, val_images, val_labels, num_classes, train_targets=None, val_targets=None, pairing=None
) -> ImageData:
    """numpy arrays -> ImageData; with targets and no pairing named, the pairing is "paired"."""
    as_labels = lambda labels: None if labels is None else torch.from_numpy(labels.astype(np.int64))
    as_images = lambda images: None if images is None else torch.from_numpy(np.ascontiguousarray(images))
    if train_targets is not None and pairing is None:
        pairing = "paired"
    return ImageData(
        as_images(train_images), as_labels(train_labels), as_images(val_images), as_labels(val_labels),
        num_classes, as_images(train_targets), as_images(val_targets), pairing,
    )


# Two-image sources live in their own module, which builds on this one: registered last.
from runner import pairs

SOURCES["paired"] = pairs.PAIRED
SOURCES["unpaired"] = pairs.UNPAIRED
