"""decode_image (runner/data/base.py), the one way every image source turns a file into pixels:
photographs the project did not make (scikit-image's astronaut, chelsea and coffee, saved as JPEG
by PIL) through a centre crop and resize, against the same computed independently (PIL's decoder,
numpy slicing, the mean of each 4x4 block, which is what area resampling by a whole factor is)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image

from models.config import parse_config
from runner import data as data_sources
from runner.data import DataError, DecodeSettings, FolderData, ImageFolderData, decode_image, decoded

PHOTOS = {"astronaut": skimage.data.astronaut, "chelsea": skimage.data.chelsea, "coffee": skimage.data.coffee}


def _photo(directory: Path, name: str) -> Path:
    path = directory / f"{name}.jpg"
    Image.fromarray(PHOTOS[name]()).save(path, quality=92)
    return path


def _expected(path: Path, side: int, mode: str = "RGB") -> np.ndarray:
    """The centred side x side square of the decoded file, shrunk 4x by 4x4 block means: (C, H, W)."""
    pixels = np.asarray(Image.open(path).convert(mode), np.float64)
    pixels = pixels.reshape(*pixels.shape[:2], -1)
    height, width = pixels.shape[:2]
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[top : top + side, left : left + side]
    blocks = square.reshape(side // 4, 4, side // 4, 4, -1).mean(axis=(1, 3))
    return np.round(blocks).astype(np.uint8).transpose(2, 0, 1)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_a_centre_crop_of_a_photograph_matches_an_independent_one(tmp_path, name):
    path = _photo(tmp_path, name)
    decoded = decode_image(path, DecodeSettings(64, 3, "center", 256))
    expected = _expected(path, 256)
    assert decoded.shape == (3, 64, 64) and decoded.dtype == np.uint8
    difference = np.abs(decoded.astype(int) - expected)
    assert difference.max() <= 1, f"{name}: off by up to {difference.max()}"
    # the crop is where it should be: one pixel to the side is measurably another picture
    shifted = _expected_shifted(path, 256)
    assert np.abs(decoded.astype(int) - shifted).mean() > 3 * difference.mean()


def _expected_shifted(path: Path, side: int) -> np.ndarray:
    pixels = np.asarray(Image.open(path).convert("RGB"), np.float64)
    height, width = pixels.shape[:2]
    top, left = (height - side) // 2 + 4, (width - side) // 2 + 4  # one output pixel down and right
    square = pixels[top : top + side, left : left + side]
    return np.round(square.reshape(side // 4, 4, side // 4, 4, 3).mean(axis=(1, 3))).astype(np.uint8).transpose(2, 0, 1)


@pytest.mark.parametrize("name, shorter_side", [("chelsea", 300), ("coffee", 400)])
def test_crop_center_without_a_size_takes_the_shorter_side(tmp_path, name, shorter_side):
    path = _photo(tmp_path, name)
    decoded = decode_image(path, DecodeSettings(shorter_side // 4, 3, "center", None))
    assert np.abs(decoded.astype(int) - _expected(path, shorter_side)).max() <= 1


def test_grayscale_is_the_luma_of_the_crop(tmp_path):
    path = _photo(tmp_path, "astronaut")
    decoded = decode_image(path, DecodeSettings(32, 1, "center", 128))
    assert decoded.shape == (1, 32, 32)
    assert np.abs(decoded.astype(int) - _expected(path, 128, "L")).max() <= 2


def test_folder_and_imagefolder_crop_through_the_same_decode(tmp_path):
    for name in ("astronaut", "coffee"):
        (tmp_path / "photos" / name).mkdir(parents=True)
        _photo(tmp_path / "photos" / name, name)
    keys = {"path": str(tmp_path / "photos"), "channels": 3, "crop": "center", "crop_size": 256, "val_fraction": 0.5}
    files = sorted((tmp_path / "photos").rglob("*.jpg"))
    expected = decoded.load_files(files, DecodeSettings(64, 3, "center", 256), cache=False)
    for source, config_class in (("folder", FolderData), ("imagefolder", ImageFolderData)):
        config = parse_config(config_class, keys, "data")
        data_sources.SOURCES[source].check(config)
        loaded = data_sources.load(source, config)
        found = np.concatenate([loaded.train_images, loaded.val_images])
        assert sorted(map(bytes, found)) == sorted(map(bytes, expected)), source
        assert data_sources.SOURCES[source].count(config) == (1, 1)


def test_load_files_is_decode_image_file_by_file(tmp_path):
    paths = [_photo(tmp_path, name) for name in sorted(PHOTOS)]
    settings = DecodeSettings(48, 3, "center", 288)
    assert np.array_equal(decoded.load_files(paths, settings, cache=False), np.stack([decode_image(path, settings) for path in paths]))
    assert hash(settings) == hash(DecodeSettings(48, 3, "center", 288))  # a cache can key on it


def test_a_photograph_smaller_than_the_crop_is_named(tmp_path):
    path = _photo(tmp_path, "chelsea")
    with pytest.raises(DataError, match=r"chelsea.jpg: 451x300 pixels, smaller than data.crop_size 301$"):
        decode_image(path, DecodeSettings(64, 3, "center", 301))
    config = parse_config(FolderData, {"path": str(tmp_path), "crop": "center", "crop_size": 301}, "data")
    _photo(tmp_path, "astronaut")
    with pytest.raises(DataError, match=r"data.path: .*chelsea.jpg: 451x300 pixels, smaller than data.crop_size 301"):
        data_sources.SOURCES["folder"].check(config)


def test_a_crop_size_without_crop_center_is_refused(tmp_path):
    for name in ("astronaut", "coffee"):
        _photo(tmp_path, name)
    config = parse_config(FolderData, {"path": str(tmp_path), "crop_size": 128}, "data")
    with pytest.raises(DataError, match=r"^data.crop_size: 128 given, but data.crop is none; set data.crop: center$"):
        data_sources.SOURCES["folder"].check(config)
