"""`svhn`: the cropped digits of the Street View House Numbers (format 2): train_32x32.mat and
test_32x32.mat (MATLAB v5 files, read with scipy.io.loadmat). X holds the images as (32, 32, 3, N)
uint8, y the labels as (N, 1), with 10 for the digit 0: labels here are the digits 0-9."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from runner.data.base import DataError, DataSource, ImageArrays

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


@config
class SvhnData:
    path: str = Field(description="directory holding train_32x32.mat and test_32x32.mat")
    train_size: int | None = Field(None, ge=1, description="use only the first N training images")
    val_size: int | None = Field(None, ge=1, description="use only the first N val (test_32x32) images")


def _describe_svhn(_: SvhnData) -> DataInfo:
    return DataInfo((3, 32, 32), 10)


# What scipy's MATLAB readers raise on a file they cannot read: MatReadError (truncated),
# ValueError (not a .mat), NotImplementedError (v7.3, an HDF5 file), IndexError and KeyError (a
# header cut inside), OSError.
_MAT_ERRORS = (ValueError, TypeError, IndexError, KeyError, NotImplementedError, OSError, EOFError)


def _unreadable(path: Path, error: Exception) -> DataError:
    text = str(error).strip().splitlines()
    reason = text[0] if text else type(error).__name__
    if isinstance(error, (IndexError, KeyError)):
        reason = f"damaged or cut short: {reason}"
    return DataError(f"{path}: not a readable MATLAB file ({reason})")


def _mat_header(path: Path) -> dict[str, tuple[int, ...]]:
    """The variables of a .mat file and their shapes, read from its headers (no pixel data)."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        return {name: tuple(shape) for name, shape, _ in scipy.io.whosmat(str(path))}
    except (*_MAT_ERRORS, MatReadError) as error:
        raise _unreadable(path, error) from None


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError(f"{path}: missing (SVHN is {FILES['train']} and {FILES['test']})")
    header = _mat_header(path)
    x_shape, y_shape = header.get("X"), header.get("y")
    if x_shape is None or y_shape is None:
        raise DataError(f"{path}: no X and y variables (holds {sorted(header) or 'none'}): not an SVHN cropped-digits file")
    if len(x_shape) != 4 or x_shape[:3] != (32, 32, 3) or y_shape not in ((x_shape[3], 1), (x_shape[3],)):
        raise DataError(f"{path}: X is {x_shape} and y {y_shape}; SVHN's are (32, 32, 3, N) and (N, 1)")


def _check_svhn(data: SvhnData) -> None:
    directory = Path(data.path)
    if not directory.is_dir():
        raise DataError(f"data.path: directory {directory} does not exist")
    for name in FILES.values():
        _check_file(directory / name)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(str(path), variable_names=["X", "y"])
    except (*_MAT_ERRORS, MatReadError) as error:
        raise _unreadable(path, error) from None
    images = np.ascontiguousarray(mat["X"].transpose(3, 2, 0, 1)).astype(np.uint8, copy=False)
    labels = mat["y"].reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() > 10):
        raise DataError(f"{path}: labels {labels.min()}..{labels.max()} outside SVHN's 1..10")
    labels[labels == 10] = 0
    return images, labels


def _load_svhn(data: SvhnData) -> ImageArrays:
    _check_svhn(data)
    directory = Path(data.path)
    train_images, train_labels = _read(directory / FILES["train"])
    val_images, val_labels = _read(directory / FILES["test"])
    return ImageArrays(
        train_images[: data.train_size], train_labels[: data.train_size],
        val_images[: data.val_size], val_labels[: data.val_size], 10,
    )


def _count_svhn(data: SvhnData) -> tuple[int, int]:
    """(train, val) images, from the files' headers (X is (32, 32, 3, N))."""
    _check_svhn(data)
    directory = Path(data.path)
    train, val = (_mat_header(directory / FILES[split])["X"][3] for split in ("train", "test"))
    return min(train, data.train_size or train), min(val, data.val_size or val)


SOURCE = DataSource(SvhnData, _describe_svhn, _check_svhn, _load_svhn, _count_svhn)
