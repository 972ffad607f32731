"""What every data source shares: ImageArrays (what a source loads: uint8 numpy images, int64
labels), DataSource (the contract a source fulfils), DataError, and the helpers for image files
and caches. Imports no source: each source module builds on this one. No torch: the spec check
imports the sources (runner/train/tensors.py turns their arrays into the tensors training draws from)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from models.data_info import DataInfo
from runner.errors import PermanentError
from runner.files import cache_dir  # noqa: F401  (here since the sources came to use it; runner.data re-exports it)


class DataError(PermanentError, ValueError):
    """A data set that cannot be loaded; the message names the key or file. Permanent: a trial
    that meets one fails at once, not after its retries."""


@dataclass
class ImageArrays:
    """Train and val images (N, C, H, W) uint8 and labels (N,) int64 (or None), as numpy arrays:
    what a source loads. Training draws its batches from these as tensors (runner/train/tensors.py).

    Two-image sets (runner.data.pairs) add targets: for "paired" data the target of each image, for
    "unpaired" data a second domain of its own length, drawn independently. Targets with no
    pairing named are "paired".
    """

    train_images: np.ndarray
    train_labels: np.ndarray | None
    val_images: np.ndarray
    val_labels: np.ndarray | None
    num_classes: int | None
    train_targets: np.ndarray | None = None
    val_targets: np.ndarray | None = None
    pairing: str | None = None  # None, "paired" or "unpaired"

    def __post_init__(self):
        as_images = lambda images: None if images is None else np.ascontiguousarray(images)
        as_labels = lambda labels: None if labels is None else labels.astype(np.int64)
        self.train_images, self.val_images = as_images(self.train_images), as_images(self.val_images)
        self.train_targets, self.val_targets = as_images(self.train_targets), as_images(self.val_targets)
        self.train_labels, self.val_labels = as_labels(self.train_labels), as_labels(self.val_labels)
        if self.train_targets is not None and self.pairing is None:
            self.pairing = "paired"

    @property
    def info(self) -> DataInfo:
        return DataInfo(tuple(self.train_images.shape[1:]), self.num_classes, self.pairing)


# -- the contract of a source --------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """A source: its config class (the spec's `data:` section) and three functions: `describe`
    (shape and classes, without loading), `check` (cheap problems found before Ray starts: a
    missing directory, a damaged file) and `load`; and, where it is cheap to know without
    decoding, `count`: the (train, val) image counts `load` would give, called once `check`
    passed (None, or a count that returns None: not known before loading)."""

    config_class: type
    describe: Callable[..., DataInfo]
    check: Callable[..., None]
    load: Callable[..., ImageArrays]
    count: Callable[..., tuple[int, int] | None] | None = None


# -- caches and image files ----------------------------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def image_files(directory: Path) -> list[Path]:
    """The images below `directory` (symlinked folders not followed), in Path order. os.walk and a
    sort of text split at "/": the same order as sorting Paths, in two thirds of rglob's time
    (0.3 s for 50,000 files), which every trial pays to find its cache entry."""
    found = []
    for folder, _, names in os.walk(directory):
        found += [os.path.join(folder, name) for name in names if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES]
    found.sort(key=lambda text: text.split(os.sep))
    return [Path(text) for text in found]


_PNG_END = b"IEND\xaeB`\x82"  # the last chunk of every complete PNG


def check_image_headers(files: list[Path], key: str, crop_size: int | None = None) -> None:
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
                    width, height = image.width, image.height
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
        if crop_size is not None and min(width, height) < crop_size:
            raise DataError(f"{key}: {path}: {width}x{height} pixels, smaller than data.crop_size {crop_size}")


@dataclass(frozen=True)
class DecodeSettings:
    """How an image file becomes one (C, H, W) uint8 array: what decode_image needs, nothing else
    (hashable, so a cache of decoded images can key on it)."""

    image_size: int  # the side of the square result
    channels: int  # 1: grayscale, 3: RGB
    crop: str = "none"  # "none": the whole image, squeezed to a square; "center": a centred square
    crop_size: int | None = None  # crop "center": the square's side; None: the image's shorter side


def decode_image(path: Path, settings: DecodeSettings) -> np.ndarray:
    """One image file as (C, size, size) uint8, RGB order: decoded, centre-cropped if asked, then
    resized by area averaging (cv2.INTER_AREA: each output pixel the mean of the pixels it covers,
    no aliasing when shrinking). A file OpenCV cannot read, or smaller than the crop, is an error
    naming it. Pure: same file, same settings, same bytes."""
    flag = cv2.IMREAD_GRAYSCALE if settings.channels == 1 else cv2.IMREAD_COLOR
    image = cv2.imread(str(path), flag)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    if settings.crop == "center":
        image = center_crop(image, settings.crop_size, path)
    size = settings.image_size
    image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    if settings.channels == 3:
        return np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1))
    return image[np.newaxis]


def center_crop(image: np.ndarray, side: int | None, path: Path) -> np.ndarray:
    """The centred side x side square of an (H, W[, C]) image (side None: the shorter side's); an
    odd margin leaves its extra pixel at the bottom and right."""
    height, width = image.shape[:2]
    side = min(height, width) if side is None else side
    if side > height or side > width:
        raise DataError(f"{path}: {width}x{height} pixels, smaller than data.crop_size {side}")
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def decode_settings(data) -> DecodeSettings:
    """The DecodeSettings of a source config with image_size, channels, crop and crop_size keys
    (folder, imagefolder, celeba); a crop_size without crop: center is a mistake, named."""
    if data.crop_size is not None and data.crop != "center":
        raise DataError(f"data.crop_size: {data.crop_size} given, but data.crop is {data.crop}; set data.crop: center")
    return DecodeSettings(data.image_size, data.channels, data.crop, data.crop_size)


def split_indices(count: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) indices: a seeded shuffle, at least one image on each side."""
    order = np.random.default_rng(seed).permutation(count)
    val_count = split_counts(count, val_fraction)[1]
    return order[val_count:], order[:val_count]


def split_counts(count: int, val_fraction: float) -> tuple[int, int]:
    """(train, val) sizes of split_indices' split of `count` images."""
    val_count = min(count - 1, max(1, round(count * val_fraction)))
    return count - val_count, val_count
