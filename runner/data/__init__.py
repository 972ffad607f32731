"""Data sets as uint8 numpy arrays in memory (ImageArrays): loaded once per trial. No torch, so the
spec check can import the sources; training turns the arrays into tensors (runner/train/tensors.py).

The registry of sources by name. Each source is a module of its own (runner/data/NAME.py, or
pairs.py for the two two-image sources) that builds on runner/data/base.py and exports SOURCE, a
DataSource: its config class (the spec's `data:` section), `describe`, `check` and `load`.
"""

from __future__ import annotations

from runner.data import digits, folder, mnist, pairs
from runner.data.base import (
    DataError,
    DataSource,
    ImageArrays,
    cache_dir,
    check_image_headers,
    image_files,
    read_images,
    split_indices,
)
from runner.data.digits import DigitsData, cached_digits, digits_cache_path
from runner.data.folder import FolderData
from runner.data.mnist import MnistData, check_idx_header, read_idx
from runner.data.pairs import PairedData, UnpairedData

SOURCES: dict[str, DataSource] = {
    "digits": digits.SOURCE,
    "mnist": mnist.SOURCE,
    "folder": folder.SOURCE,
    "paired": pairs.PAIRED,
    "unpaired": pairs.UNPAIRED,
}


def load(name: str, data_config) -> ImageArrays:
    return SOURCES[name].load(data_config)


__all__ = [
    "SOURCES", "DataError", "DataSource", "DigitsData", "FolderData", "ImageArrays", "MnistData", "PairedData",
    "UnpairedData", "cache_dir", "cached_digits", "check_idx_header", "check_image_headers",
    "digits_cache_path", "image_files", "load", "read_idx", "read_images", "split_indices",
]
