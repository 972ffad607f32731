"""What every data source shares: ImageData (uint8 tensors in memory, batches drawn by
indexing), DataSource (the contract a source fulfils), DataError, and the helpers for image files
and caches. Imports no source: each source module builds on this one."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from models import Batch, DataInfo
from runner.errors import PermanentError


class DataError(PermanentError, ValueError):
    """A data set that cannot be loaded; the message names the key or file. Permanent: a trial
    that meets one fails at once, not after its retries."""


@dataclass
class ImageData:
    """Train and val images (N, C, H, W) uint8 and labels (N,) int64 (or None), on one device.

    Two-image sets (runner.data.pairs) add targets: for "paired" data the target of each image, for
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


# -- the contract of a source --------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """A source: its config class (the spec's `data:` section) and three functions: `describe`
    (shape and classes, without loading), `check` (cheap problems found before Ray starts: a
    missing directory, a damaged file) and `load`."""

    config_class: type
    describe: Callable[..., DataInfo]
    check: Callable[..., None]
    load: Callable[..., ImageData]


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


# -- caches and image files ----------------------------------------------------------------------
def cache_dir() -> Path:
    root = os.environ.get("GENSWEEP_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "gensweep"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


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
