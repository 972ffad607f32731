"""Data sets as uint8 numpy arrays in memory (ImageArrays): loaded once per trial. No torch, so the
spec check can import the sources; training turns the arrays into tensors (runner/train/tensors.py).

The registry of sources by name. Each source is a module of its own (runner/data/NAME.py), or one
module a family: pairs.py (paired, unpaired), mnist_family.py (fashion_mnist, kmnist, emnist, on
mnist.py's IDX reader), cifar.py (cifar10, cifar100). Each builds on runner/data/base.py and
exports its DataSource(s): a config class (the spec's `data:` section), `describe`, `check`, `load`.
"""

from __future__ import annotations

from runner.data import celeba, cifar, decoded, digits, folder, imagefolder, mnist, mnist_family, pairs, svhn
from runner.data.base import (
    DataError,
    DataSource,
    DecodeSettings,
    ImageArrays,
    cache_dir,
    check_image_headers,
    decode_image,
    image_files,
    split_indices,
)
from runner.data.celeba import CelebaData
from runner.data.cifar import Cifar10Data, Cifar100Data
from runner.data.digits import DigitsData, cached_digits, digits_cache_path
from runner.data.folder import FolderData
from runner.data.imagefolder import ImageFolderData
from runner.data.mnist import IdxLayout, MnistData, check_idx_header, read_idx
from runner.data.mnist_family import EmnistData, IdxData
from runner.data.pairs import PairedData, UnpairedData
from runner.data.svhn import SvhnData

SOURCES: dict[str, DataSource] = {
    "digits": digits.SOURCE,
    "mnist": mnist.SOURCE,
    "fashion_mnist": mnist_family.FASHION_MNIST_SOURCE,
    "kmnist": mnist_family.KMNIST_SOURCE,
    "emnist": mnist_family.EMNIST_SOURCE,
    "cifar10": cifar.SOURCE_10,
    "cifar100": cifar.SOURCE_100,
    "svhn": svhn.SOURCE,
    "folder": folder.SOURCE,
    "imagefolder": imagefolder.SOURCE,
    "celeba": celeba.SOURCE,
    "paired": pairs.PAIRED,
    "unpaired": pairs.UNPAIRED,
}


def load(name: str, data_config) -> ImageArrays:
    return SOURCES[name].load(data_config)


__all__ = [
    "SOURCES", "CelebaData", "Cifar10Data", "Cifar100Data", "DataError", "DataSource", "DecodeSettings", "DigitsData", "EmnistData", "FolderData",
    "IdxData", "IdxLayout", "ImageArrays", "ImageFolderData", "MnistData", "PairedData", "SvhnData", "UnpairedData", "cache_dir", "cached_digits", "check_idx_header", "check_image_headers",
    "decode_image", "decoded", "digits_cache_path", "image_files", "load", "read_idx", "split_indices",
]
