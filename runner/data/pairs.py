"""Two-image data sets for image-to-image models: `paired` (input -> target) and `unpaired`
(domain A, domain B). Registered in runner.data's table of sources like any other.

paired: targets are clean images; inputs are the same images made worse by a documented
degradation ("crapify", as fastai called it): downscale by `scale`, blur, JPEG artefacts, back
up to full size by bicubic interpolation, then noise and a printed stamp. Or two folders whose
files match by name. The input is at full size, so a model maps like to like and "bicubic" is
the baseline to beat.

unpaired: two folders, or two embedded domains made without downloads: digits as drawn (A) and
the same kind of digits, other draws, bold and slanted (B).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from models.stamps import draw_stamps
from runner.data import decoded
from runner.data.base import (
    DataError,
    DataSource,
    DecodeSettings,
    ImageArrays,
    check_image_headers,
    image_files,
    split_counts,
    split_indices,
)
from runner.data.digits import cached_digits
from runner.data.drawn_digits import IMAGE_SIDE


# -- the degradation ----------------------------------------------------------------------------
@config
class PairedData:
    source: Literal["digits", "folder", "folders"] = Field(
        "digits",
        description="digits: the embedded set; folder: images under `path`; folders: input_path and "
        "target_path with matching file names (no degradation applied)",
    )
    path: str | None = Field(None, description="folder: directory of clean images")
    input_path: str | None = Field(None, description="folders: directory of inputs")
    target_path: str | None = Field(None, description="folders: directory of targets, same names")
    image_size: int = Field(64, ge=8, description="folder/folders: images resized to this side")
    channels: Literal[1, 3] = Field(1, description="folder/folders: 1 grayscale, 3 RGB")
    train_size: int = Field(4096, ge=1, description="digits: training pairs")
    val_size: int = Field(512, ge=1, description="digits: validation pairs")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="folder/folders: share held out for val")
    seed: int = Field(0, description="digits and the degradation's random draws")
    scale: Literal[1, 2, 4] = Field(2, description="super-resolution factor: downscale by it, then bicubic back up")
    blur: float = Field(0.0, ge=0, description="Gaussian blur sigma (low-resolution pixels) before upscaling")
    jpeg_quality: int | None = Field(None, ge=1, le=100, description="JPEG artefacts at this quality; null: none")
    noise: float = Field(0.0, ge=0, description="std of Gaussian noise added (pixel values in [0, 1])")
    stamp: bool = Field(False, description="print a date/time stamp over the input")
    cache: bool = Field(True, description="folder/folders: decode once into the shared cache every trial maps; false: each trial decodes")


def crapify(images: np.ndarray, data: PairedData, rng: np.random.Generator) -> np.ndarray:
    """Degraded copies of (N, C, H, W) uint8 images, same shape: the inputs of a paired set."""
    count, channels, height, width = images.shape
    small = (max(1, width // data.scale), max(1, height // data.scale))
    stamps = draw_stamps((channels, height, width), 64, seed=data.seed) if data.stamp else None
    out = np.empty_like(images)
    for index in range(count):
        image = np.ascontiguousarray(images[index].transpose(1, 2, 0))  # HWC for OpenCV
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
        if data.blur > 0:
            image = cv2.GaussianBlur(image, (0, 0), data.blur)
        if data.jpeg_quality is not None:
            _, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, data.jpeg_quality])
            image = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC).reshape(height, width, channels)
        degraded = image.transpose(2, 0, 1).astype(np.float32)
        if data.noise > 0:
            degraded += rng.normal(0.0, 255.0 * data.noise, degraded.shape)
        if stamps is not None:
            degraded = np.maximum(degraded, 255.0 * stamps[rng.integers(len(stamps))])
        out[index] = np.clip(degraded, 0, 255).round().astype(np.uint8)
    return out


def _describe_paired(data: PairedData) -> DataInfo:
    side = IMAGE_SIDE if data.source == "digits" else data.image_size
    channels = 1 if data.source == "digits" else data.channels
    return DataInfo((channels, side, side), None, pairing="paired", scale=data.scale if data.source != "folders" else 1)


def _check_paired(data: PairedData) -> None:
    needed = {"digits": (), "folder": ("path",), "folders": ("input_path", "target_path")}[data.source]
    for key in needed:
        value = getattr(data, key)
        if not value:
            raise DataError(f"data.{key}: needed when data.source is {data.source}")
        if not Path(value).is_dir():
            raise DataError(f"data.{key}: directory {value} does not exist")
    if data.source == "folders":
        pairs = _matching_files(data)
        check_image_headers([input_file for input_file, _ in pairs], "data.input_path")
        check_image_headers([target_file for _, target_file in pairs], "data.target_path")
    elif data.source == "folder":
        files = image_files(Path(data.path))
        if len(files) < 2:
            raise DataError(f"data.path: {data.path} holds {len(files)} images; need at least 2")
        check_image_headers(files, "data.path")


def _matching_files(data: PairedData) -> list[tuple[Path, Path]]:
    inputs = {p.relative_to(data.input_path).with_suffix(""): p for p in image_files(Path(data.input_path))}
    targets = {p.relative_to(data.target_path).with_suffix(""): p for p in image_files(Path(data.target_path))}
    names = sorted(inputs.keys() & targets.keys())
    if len(names) < 2:
        raise DataError(
            f"data.input_path, data.target_path: {len(names)} file names in common "
            f"({len(inputs)} inputs, {len(targets)} targets); pairs match by name without extension"
        )
    return [(inputs[name], targets[name]) for name in names]


def _count_paired(data: PairedData) -> tuple[int, int]:
    """(train, val) pairs, once check passed."""
    if data.source == "digits":
        return data.train_size, data.val_size
    count = len(_matching_files(data)) if data.source == "folders" else len(image_files(Path(data.path)))
    return split_counts(count, data.val_fraction)


def _load_paired(data: PairedData) -> ImageArrays:
    _check_paired(data)
    rng = np.random.default_rng([data.seed, 2])  # the degradation's own stream
    if data.source == "folders":
        pairs = _matching_files(data)
        settings = DecodeSettings(data.image_size, data.channels)
        train, val = split_indices(len(pairs), data.val_fraction, data.seed)
        train_inputs, val_inputs = decoded.load_split([i for i, _ in pairs], train, val, settings, data.cache)
        train_targets, val_targets = decoded.load_split([t for _, t in pairs], train, val, settings, data.cache)
        return ImageArrays(train_inputs, None, val_inputs, None, None, train_targets, val_targets)
    if data.source == "digits":
        train_targets = cached_digits(data.train_size, data.seed, "train")[0][:, None]
        val_targets = cached_digits(data.val_size, data.seed, "val")[0][:, None]
    else:
        files = image_files(Path(data.path))
        train, val = split_indices(len(files), data.val_fraction, data.seed)
        settings = DecodeSettings(data.image_size, data.channels)
        train_targets, val_targets = decoded.load_split(files, train, val, settings, data.cache)
    return ImageArrays(
        crapify(train_targets, data, rng), None, crapify(val_targets, data, rng), None, None, train_targets, val_targets
    )


# -- two domains -------------------------------------------------------------------------------
@config
class UnpairedData:
    source: Literal["digits", "folders"] = Field(
        "digits", description="digits: plain digits (A) vs bold slanted digits (B); folders: a_path and b_path"
    )
    a_path: str | None = Field(None, description="folders: directory of domain A images")
    b_path: str | None = Field(None, description="folders: directory of domain B images")
    image_size: int = Field(64, ge=8, description="folders: images resized to this side")
    channels: Literal[1, 3] = Field(1, description="folders: 1 grayscale, 3 RGB")
    train_size: int = Field(4096, ge=1, description="digits: training images per domain")
    val_size: int = Field(512, ge=1, description="digits: validation images per domain")
    val_fraction: float = Field(0.1, gt=0, lt=1, description="folders: share of each domain held out")
    seed: int = Field(0, description="digits: which draws")
    cache: bool = Field(True, description="folders: decode once into the shared cache every trial maps; false: each trial decodes")


def bold_slanted(images: np.ndarray) -> np.ndarray:
    """Domain B of the embedded pair: strokes thickened by a 3x3 dilation, sheared 0.3 to the right."""
    _, _, height, width = images.shape
    shear = np.float32([[1, -0.3, 0.3 * height / 2], [0, 1, 0]])
    kernel = np.ones((3, 3), np.uint8)
    out = np.empty_like(images)
    for index, image in enumerate(images[:, 0]):
        bold = cv2.dilate(image, kernel)
        out[index, 0] = cv2.warpAffine(bold, shear, (width, height), flags=cv2.INTER_LINEAR)
    return out


def _describe_unpaired(data: UnpairedData) -> DataInfo:
    if data.source == "digits":
        return DataInfo((1, IMAGE_SIDE, IMAGE_SIDE), None, pairing="unpaired")
    return DataInfo((data.channels, data.image_size, data.image_size), None, pairing="unpaired")


def _check_unpaired(data: UnpairedData) -> None:
    if data.source == "digits":
        return
    for key in ("a_path", "b_path"):
        value = getattr(data, key)
        if not value:
            raise DataError(f"data.{key}: needed when data.source is folders")
        if not Path(value).is_dir():
            raise DataError(f"data.{key}: directory {value} does not exist")
        files = image_files(Path(value))
        if len(files) < 2:
            raise DataError(f"data.{key}: {value} holds fewer than 2 images")
        check_image_headers(files, f"data.{key}")


def _load_unpaired(data: UnpairedData) -> ImageArrays:
    _check_unpaired(data)
    if data.source == "digits":
        # One stream of draws, split: the two domains never show the same digit drawing.
        train = cached_digits(2 * data.train_size, data.seed, "train")[0][:, None]
        val = cached_digits(2 * data.val_size, data.seed, "val")[0][:, None]
        a_train, b_train = train[: data.train_size], bold_slanted(train[data.train_size :])
        a_val, b_val = val[: data.val_size], bold_slanted(val[data.val_size :])
        return ImageArrays(a_train, None, a_val, None, None, b_train, b_val, pairing="unpaired")
    domains = []
    for path in (data.a_path, data.b_path):
        files = image_files(Path(path))
        train, val = split_indices(len(files), data.val_fraction, data.seed)
        domains.append(decoded.load_split(files, train, val, DecodeSettings(data.image_size, data.channels), data.cache))
    (a_train, a_val), (b_train, b_val) = domains
    return ImageArrays(a_train, None, a_val, None, None, b_train, b_val, pairing="unpaired")


PAIRED = DataSource(PairedData, _describe_paired, _check_paired, _load_paired, _count_paired)
UNPAIRED = DataSource(UnpairedData, _describe_unpaired, _check_unpaired, _load_unpaired)
