"""Data sources: deterministic digits, IDX parsing, folders of real image files, all as numpy with no
torch imported; their arrays as tensors and batches (runner/train/tensors.py)."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from runner import data as data_sources
from runner.data import DataError, DigitsData, FolderData, ImageArrays, MnistData, read_idx
from runner.data.drawn_digits import make_digits
from runner.train.tensors import batches, from_arrays, load_tensors

ROOT = Path(__file__).resolve().parents[2]


def test_digits_same_seed_same_bytes():
    a_images, a_labels = make_digits(40, seed=3, split="train")
    b_images, b_labels = make_digits(40, seed=3, split="train")
    assert a_images.tobytes() == b_images.tobytes() and np.array_equal(a_labels, b_labels)
    c_images, _ = make_digits(40, seed=4, split="train")
    assert not np.array_equal(a_images, c_images)


def test_digits_prefix_and_independent_val():
    small, _ = make_digits(20, seed=0, split="train")
    large, _ = make_digits(50, seed=0, split="train")
    assert np.array_equal(small, large[:20])  # growing train_size keeps the images it had
    val, _ = make_digits(20, seed=0, split="val")
    assert not np.array_equal(val, small)


def test_digits_shape_labels_and_centring():
    images, labels = make_digits(300, seed=0, split="train")
    assert images.shape == (300, 28, 28) and images.dtype == np.uint8
    assert set(labels.tolist()) == set(range(10))
    # MNIST framing: ink inside the central 20x20 box plus a little slack, centred by mass.
    mass = images.astype(np.float64)
    rows = (mass.sum(axis=2) * np.arange(28)).sum(axis=1) / mass.sum(axis=(1, 2))
    assert np.all(np.abs(rows - 13.5) < 2.5)
    assert images[:, :2, :].max() == 0 or images[:, :2, :].mean() < 1


def test_digits_vary_within_a_class_and_differ_between():
    images, labels = make_digits(1000, seed=1, split="train")
    flat = images.reshape(len(images), -1).astype(np.float32) / 255
    centroids = np.stack([flat[labels == d].mean(axis=0) for d in range(10)])
    within = np.mean([flat[labels == d].std(axis=0).mean() for d in range(10)])
    assert within > 0.1  # not one stamp per class
    test_images, test_labels = make_digits(300, seed=1, split="val")
    test_flat = test_images.reshape(len(test_images), -1).astype(np.float32) / 255
    nearest = ((test_flat[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    assert (nearest == test_labels).mean() > 0.7  # classes are still recognisably distinct


def test_digits_source_loads_arrays_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    loaded = data_sources.load("digits", DigitsData(train_size=30, val_size=10, seed=2))
    assert isinstance(loaded, ImageArrays)
    assert loaded.train_images.shape == (30, 1, 28, 28) and loaded.train_images.dtype == np.uint8
    assert loaded.val_labels.shape == (10,) and loaded.val_labels.dtype == np.int64 and loaded.num_classes == 10
    assert loaded.info == data_sources.SOURCES["digits"].describe(DigitsData(train_size=30, val_size=10, seed=2))
    assert len(list(tmp_path.glob("digits-*.npz"))) == 2
    again = data_sources.load("digits", DigitsData(train_size=30, val_size=10, seed=2))
    assert np.array_equal(again.train_images, loaded.train_images)


def test_data_sources_import_no_torch():
    """The spec check imports runner.data (config classes, describe, check): `gensweep validate`
    must not pay for torch (nor Ray). In a fresh interpreter; a failure names the module that
    pulled it in. (mnist's opt-in `download: true` imports torchvision, when it loads: exempt.)"""
    probe = textwrap.dedent("""
        import builtins, sys
        FORBIDDEN = ("torch", "torchvision", "ray")
        culprits = []
        real_import = builtins.__import__

        def spying_import(name, globals=None, *args, **kwargs):
            top = name.split(".")[0]
            if top in FORBIDDEN and top not in sys.modules:
                culprits.append(f"{top} (imported by {(globals or {}).get('__name__')})")
            return real_import(name, globals, *args, **kwargs)

        builtins.__import__ = spying_import
        import runner.data
        leaked = sorted({m.split(".")[0] for m in sys.modules} & set(FORBIDDEN))
        print("; ".join(culprits) or ", ".join(leaked))
    """)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=False, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"importing runner.data pulled in {result.stdout.strip()}"


def _write_idx(path, array, compress):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    body = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(body)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_round_trip(tmp_path, compress):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / ("x.idx.gz" if compress else "x.idx")
    _write_idx(path, array, compress)
    assert np.array_equal(read_idx(path), array)


def test_idx_truncated_is_a_clear_error(tmp_path):
    path = tmp_path / "t10k-images-idx3-ubyte"
    _write_idx(path, np.zeros((2, 2, 2)), compress=False)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(DataError, match="header says"):
        read_idx(path)


def test_mnist_with_train_and_test_files(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, count in (("train", 50), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (count, 28, 28)), True)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", rng.integers(0, 10, count), True)
    loaded = data_sources.load("mnist", MnistData(path=str(tmp_path)))
    assert loaded.train_images.shape == (50, 1, 28, 28) and loaded.val_images.shape == (20, 1, 28, 28)


def test_mnist_missing_directory_is_found_before_loading(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data_sources.SOURCES["mnist"].check(MnistData(path=str(tmp_path / "nope")))
    with pytest.raises(DataError, match="no MNIST t10k"):
        data_sources.SOURCES["mnist"].check(MnistData(path=str(tmp_path)))


def test_real_mnist_test_set_split(mnist_dir):
    loaded = data_sources.load("mnist", MnistData(path=str(mnist_dir), val_fraction=0.2))
    assert loaded.train_images.shape == (8000, 1, 28, 28) and loaded.val_images.shape == (2000, 1, 28, 28)
    labels = np.concatenate([loaded.train_labels, loaded.val_labels])
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert 30 < loaded.train_images.mean() < 36  # MNIST's mean intensity is 33.3


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for index in range(10):
        image = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
        name = tmp_path / ("sub" if index % 2 else "") / f"frame_{index:02d}.{'png' if index % 3 else 'jpg'}"
        cv2.imwrite(str(name), image)
    return tmp_path


@pytest.mark.parametrize("channels", [1, 3])
def test_folder_resizes_and_splits(image_folder, channels):
    loaded = data_sources.load("folder", FolderData(path=str(image_folder), image_size=16, channels=channels, val_fraction=0.2))
    assert loaded.train_images.shape == (8, channels, 16, 16) and loaded.val_images.shape == (2, channels, 16, 16)
    assert loaded.train_labels is None and loaded.num_classes is None


def test_folder_with_a_corrupt_image_names_the_file(image_folder):
    (image_folder / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"broken\.png: not a readable image"):
        data_sources.load("folder", FolderData(path=str(image_folder), image_size=16))


def test_batches_cover_every_image_once_per_epoch():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    labels = torch.arange(10)
    generator = torch.Generator().manual_seed(0)
    drawn = list(batches(images, labels, 4, generator))
    assert [len(b.images) for b in drawn] == [4, 4, 2]
    seen = torch.cat([b.labels for b in drawn])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    assert torch.equal(torch.cat([b.images for b in drawn]).flatten() * 255, seen.float())
    assert len(list(batches(images, labels, 4, generator, max_batches=2))) == 2


def test_arrays_become_tensors_sharing_their_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    arrays = data_sources.load("digits", DigitsData(train_size=30, val_size=10, seed=2))
    tensors = from_arrays(arrays)
    assert tensors.train_images.dtype == torch.uint8 and tensors.val_labels.dtype == torch.int64
    assert np.shares_memory(tensors.train_images.numpy(), arrays.train_images)  # no copy of the images
    assert tensors.info == arrays.info and tensors.train_targets is None
    loaded = load_tensors("digits", DigitsData(train_size=30, val_size=10, seed=2))
    assert torch.equal(loaded.train_images, tensors.train_images) and torch.equal(loaded.val_labels, tensors.val_labels)


def test_image_arrays_hold_int64_labels_and_name_targets_paired():
    images = np.zeros((4, 1, 2, 2), np.uint8)
    plain = ImageArrays(images, np.arange(4, dtype=np.uint8), images[:2], np.arange(2, dtype=np.int32), 4)
    assert plain.train_labels.dtype == np.int64 and plain.val_labels.dtype == np.int64 and plain.pairing is None
    paired = ImageArrays(images, None, images[:2], None, None, images, images[:2])
    assert paired.pairing == "paired" and paired.info.pairing == "paired"
    unpaired = ImageArrays(images, None, images[:2], None, None, images[:3], images[:1], pairing="unpaired")
    assert unpaired.pairing == "unpaired"
    assert from_arrays(unpaired).pairing == "unpaired"
