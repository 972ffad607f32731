"""`digits`: the embedded default, MNIST-like digits drawn by runner/data/drawn_digits.py and
kept in the cache directory (same seed, same bytes)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data import drawn_digits
from runner.data.base import DataSource, ImageArrays, cache_dir
from runner.files import write_bytes


@config
class DigitsData:
    train_size: int = Field(10_000, ge=1, description="training images to draw")
    val_size: int = Field(2_000, ge=1, description="validation images, from a separate stream")
    seed: int = Field(0, description="same seed, same bytes")


def _describe_digits(_: DigitsData) -> DataInfo:
    return DataInfo((1, drawn_digits.IMAGE_SIDE, drawn_digits.IMAGE_SIDE), 10)


def _load_digits(data: DigitsData) -> ImageArrays:
    train = cached_digits(data.train_size, data.seed, "train")
    val = cached_digits(data.val_size, data.seed, "val")
    return ImageArrays(train[0][:, None], train[1], val[0][:, None], val[1], 10)


def cached_digits(count: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """make_digits, kept on disk: drawing takes about a millisecond an image, loading far less."""
    path = digits_cache_path(count, seed, split)
    if path.exists():
        with np.load(path, allow_pickle=False) as stored:
            return stored["images"], stored["labels"]
    images, labels = drawn_digits.make_digits(count, seed, split)
    buffer = io.BytesIO()
    np.savez(buffer, images=images, labels=labels)
    write_bytes(path, buffer.getvalue())  # two trials may fill one entry at once: whole files only
    return images, labels


def digits_cache_path(count: int, seed: int, split: str) -> Path:
    return cache_dir() / f"digits-v{DIGITS_VERSION}-{split}-seed{seed}-n{count}.npz"


DIGITS_VERSION = 1  # bump when the generator changes, so stale caches are not reused


SOURCE = DataSource(DigitsData, _describe_digits, lambda _: None, _load_digits, lambda data: (data.train_size, data.val_size))
