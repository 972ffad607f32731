"""The offline sources in the layouts people have on disk: each test writes tiny files in the real
format (IDX magic numbers, CIFAR records, a .mat with SVHN's variables, folders of PNGs), reads
them back through the registry, and checks pixels and labels exactly; a malformed file is one
DataError line naming it."""

from __future__ import annotations

import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from models.config import parse_config
from runner import data as data_sources
from runner.data import (
    Cifar10Data,
    Cifar100Data,
    DataError,
    EmnistData,
    IdxData,
    ImageFolderData,
    SvhnData,
)

RNG = np.random.default_rng(0)


def _check_and_load(name, config):
    source = data_sources.SOURCES[name]
    source.check(config)
    loaded = data_sources.load(name, config)
    assert loaded.info == source.describe(config)
    return loaded


def _one_line_error(name, config, match):
    with pytest.raises(DataError, match=match) as caught:
        data_sources.SOURCES[name].check(config)
    assert "\n" not in str(caught.value)
    return str(caught.value)


# -- IDX: fashion_mnist, kmnist, emnist --------------------------------------------------------------
def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    body = header + array.astype(np.uint8).tobytes()
    (gzip.open if path.suffix == ".gz" else open)(path, "wb").write(body)


def _idx_set(directory: Path, names: dict, counts: dict, classes: range, gz: bool) -> dict:
    """IDX image and label files named as `names` says ({split: (images stem, labels stem)})."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, (image_stem, label_stem) in names.items():
        images = RNG.integers(0, 256, (counts[split], 28, 28), dtype=np.uint8)
        labels = RNG.integers(classes.start, classes.stop, counts[split], dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write_idx(directory / f"{image_stem}{suffix}", images)
        _write_idx(directory / f"{label_stem}{suffix}", labels)
        written[split] = (images, labels)
    return written


MNIST_NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


@pytest.mark.parametrize("name, torchvision_folder", [("fashion_mnist", "FashionMNIST"), ("kmnist", "KMNIST")])
@pytest.mark.parametrize("layout", ["flat", "torchvision"])
def test_fashion_mnist_and_kmnist_read_back_exactly(tmp_path, name, torchvision_folder, layout):
    where = tmp_path if layout == "flat" else tmp_path / torchvision_folder / "raw"
    written = _idx_set(where, MNIST_NAMES, {"train": 12, "test": 5}, range(10), gz=layout == "flat")
    loaded = _check_and_load(name, IdxData(path=str(tmp_path)))
    assert np.array_equal(loaded.train_images[:, 0], written["train"][0])
    assert np.array_equal(loaded.train_labels, written["train"][1]) and loaded.train_labels.dtype == np.int64
    assert np.array_equal(loaded.val_images[:, 0], written["test"][0])
    assert np.array_equal(loaded.val_labels, written["test"][1])
    assert loaded.num_classes == 10 and loaded.val_images.shape == (5, 1, 28, 28)
    capped = data_sources.load(name, IdxData(path=str(tmp_path), train_size=3, val_size=2))
    assert np.array_equal(capped.train_images[:, 0], written["train"][0][:3]) and len(capped.val_labels) == 2


def test_idx_set_of_only_test_files_is_split(tmp_path):
    written = _idx_set(tmp_path, {"test": MNIST_NAMES["test"]}, {"test": 10}, range(10), gz=False)
    loaded = data_sources.load("kmnist", IdxData(path=str(tmp_path), val_fraction=0.3))
    assert len(loaded.train_labels) == 7 and len(loaded.val_labels) == 3
    together = np.concatenate([loaded.train_images, loaded.val_images])[:, 0]
    assert sorted(map(bytes, together)) == sorted(map(bytes, written["test"][0]))


@pytest.mark.parametrize("split, classes", [("balanced", 47), ("digits", 10), ("letters", 26), ("byclass", 62)])
def test_emnist_is_upright_and_letters_count_from_zero(tmp_path, split, classes):
    first = 1 if split == "letters" else 0
    names = {part: (f"emnist-{split}-{part}-images-idx3-ubyte", f"emnist-{split}-{part}-labels-idx1-ubyte") for part in ("train", "test")}
    written = _idx_set(tmp_path, names, {"train": 6, "test": 4}, range(first, first + classes), gz=True)
    loaded = _check_and_load("emnist", EmnistData(path=str(tmp_path), split=split))
    assert loaded.num_classes == classes
    assert np.array_equal(loaded.train_images[:, 0], written["train"][0].transpose(0, 2, 1))  # stored transposed
    assert np.array_equal(loaded.val_images[:, 0], written["test"][0].transpose(0, 2, 1))
    assert np.array_equal(loaded.train_labels, written["train"][1].astype(np.int64) - first)
    assert np.array_equal(loaded.val_labels, written["test"][1].astype(np.int64) - first)


def test_emnist_upright_means_a_row_stays_a_row(tmp_path):
    stored = np.zeros((1, 28, 28), np.uint8)
    stored[0, :, 3] = 255  # a column in the file: a row (the 4th) of the upright image
    for part in ("train", "test"):
        _write_idx(tmp_path / f"emnist-mnist-{part}-images-idx3-ubyte", stored)
        _write_idx(tmp_path / f"emnist-mnist-{part}-labels-idx1-ubyte", np.array([7], np.uint8))
    image = data_sources.load("emnist", EmnistData(path=str(tmp_path), split="mnist")).train_images[0, 0]
    assert (image[3] == 255).all() and image.sum() == 28 * 255


def test_idx_malformed_or_missing_is_one_line_naming_the_file(tmp_path):
    _idx_set(tmp_path, MNIST_NAMES, {"train": 3, "test": 2}, range(10), gz=False)
    bad = tmp_path / "train-images-idx3-ubyte"
    bad.write_bytes(b"\x00\x00\x0d\x03" + bad.read_bytes()[4:])  # float magic: not unsigned bytes
    message = _one_line_error("fashion_mnist", IdxData(path=str(tmp_path)), "not an unsigned-byte IDX file")
    assert str(bad) in message
    message = _one_line_error("emnist", EmnistData(path=str(tmp_path), split="letters"), "no EMNIST letters")
    assert "emnist-letters-test-images*" in message


def test_emnist_label_out_of_range_names_the_file(tmp_path):
    names = {part: (f"emnist-letters-{part}-images-idx3-ubyte", f"emnist-letters-{part}-labels-idx1-ubyte") for part in ("train", "test")}
    _idx_set(tmp_path, names, {"train": 3, "test": 2}, range(1), gz=False)  # a 0: not a letter
    with pytest.raises(DataError, match=r"emnist-letters-test-labels-idx1-ubyte: labels 0\.\.0 outside 1\.\.26"):
        data_sources.load("emnist", EmnistData(path=str(tmp_path), split="letters"))


# -- CIFAR binary ------------------------------------------------------------------------------------
def _cifar_records(count: int, label_columns: list[np.ndarray]) -> tuple[bytes, np.ndarray]:
    images = RNG.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    records = np.concatenate([*(column[:, None] for column in label_columns), images.reshape(count, -1)], axis=1)
    return records.astype(np.uint8).tobytes(), images


@pytest.mark.parametrize("nested", [True, False])
def test_cifar10_binary_records_read_back_exactly(tmp_path, nested):
    directory = tmp_path / "cifar-10-batches-bin" if nested else tmp_path
    directory.mkdir(exist_ok=True)
    train_images, train_labels = [], []
    for index in range(1, 6):
        labels = RNG.integers(0, 10, 2, dtype=np.uint8)
        body, images = _cifar_records(2, [labels])
        (directory / f"data_batch_{index}.bin").write_bytes(body)
        train_images.append(images), train_labels.append(labels)
    test_labels = RNG.integers(0, 10, 3, dtype=np.uint8)
    body, test_images = _cifar_records(3, [test_labels])
    (directory / "test_batch.bin").write_bytes(body)
    loaded = _check_and_load("cifar10", Cifar10Data(path=str(tmp_path)))
    assert np.array_equal(loaded.train_images, np.concatenate(train_images))  # batches 1..5 in order
    assert np.array_equal(loaded.train_labels, np.concatenate(train_labels))
    assert np.array_equal(loaded.val_images, test_images) and np.array_equal(loaded.val_labels, test_labels)
    assert loaded.num_classes == 10 and loaded.train_images.shape == (10, 3, 32, 32)
    capped = data_sources.load("cifar10", Cifar10Data(path=str(tmp_path), train_size=4, val_size=1))
    assert capped.train_images.shape[0] == 4 and capped.val_images.shape[0] == 1


def test_cifar10_red_plane_comes_first(tmp_path):
    record = np.zeros(1 + 3072, np.uint8)
    record[0], record[1 : 1 + 1024] = 3, 200  # label 3, the red plane all 200
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(record.tobytes())
    image = data_sources.load("cifar10", Cifar10Data(path=str(tmp_path))).val_images[0]
    assert (image[0] == 200).all() and (image[1:] == 0).all()


@pytest.mark.parametrize("label, column, classes", [("fine", 1, 100), ("coarse", 0, 20)])
def test_cifar100_fine_and_coarse_labels(tmp_path, label, column, classes):
    directory = tmp_path / "cifar-100-binary"
    directory.mkdir()
    written = {}
    for name, count in (("train.bin", 4), ("test.bin", 2)):
        coarse, fine = RNG.integers(0, 20, count, dtype=np.uint8), RNG.integers(0, 100, count, dtype=np.uint8)
        body, images = _cifar_records(count, [coarse, fine])
        (directory / name).write_bytes(body)
        written[name] = (images, (coarse, fine)[column])
    loaded = _check_and_load("cifar100", Cifar100Data(path=str(tmp_path), label=label))
    assert loaded.num_classes == classes
    assert np.array_equal(loaded.train_images, written["train.bin"][0]) and np.array_equal(loaded.train_labels, written["train.bin"][1])
    assert np.array_equal(loaded.val_images, written["test.bin"][0]) and np.array_equal(loaded.val_labels, written["test.bin"][1])


def test_cifar_truncated_or_missing_file_is_one_line_naming_it(tmp_path):
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        (tmp_path / name).write_bytes(bytes(3073 * 2))
    (tmp_path / "data_batch_3.bin").write_bytes(bytes(3073 * 2 - 5))
    message = _one_line_error("cifar10", Cifar10Data(path=str(tmp_path)), "not a whole number of CIFAR-10 records")
    assert str(tmp_path / "data_batch_3.bin") in message
    (tmp_path / "data_batch_3.bin").unlink()
    assert str(tmp_path / "data_batch_3.bin") in _one_line_error("cifar10", Cifar10Data(path=str(tmp_path)), "missing")


@pytest.mark.parametrize("name, folder, config", [
    ("cifar10", "cifar-10-batches-py", Cifar10Data), ("cifar100", "cifar-100-python", Cifar100Data),
])
def test_cifar_python_version_is_refused_never_unpickled(tmp_path, name, folder, config):
    (tmp_path / folder).mkdir()
    (tmp_path / folder / ("test_batch" if name == "cifar10" else "test")).write_bytes(b"\x80\x04not to be unpickled")
    message = _one_line_error(name, config(path=str(tmp_path)), "Python \\(pickled\\) version")
    assert ("cifar-10-batches-bin/data_batch_1.bin" if name == "cifar10" else "cifar-100-binary/train.bin") in message
    assert "binary version" in _one_line_error(name, config(path=str(tmp_path / folder)), "does not unpickle")


# -- SVHN .mat -----------------------------------------------------------------------------------------
def _svhn_file(path: Path, count: int) -> tuple[np.ndarray, np.ndarray]:
    images = RNG.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    digits = np.arange(count) % 10
    y = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]  # SVHN's label for the digit 0 is 10
    scipy.io.savemat(str(path), {"X": images.transpose(2, 3, 1, 0), "y": y})  # X: (32, 32, 3, N)
    return images, digits


def test_svhn_mat_files_read_back_with_ten_as_zero(tmp_path):
    train_images, train_digits = _svhn_file(tmp_path / "train_32x32.mat", 12)
    test_images, test_digits = _svhn_file(tmp_path / "test_32x32.mat", 4)
    loaded = _check_and_load("svhn", SvhnData(path=str(tmp_path)))
    assert np.array_equal(loaded.train_images, train_images) and np.array_equal(loaded.train_labels, train_digits)
    assert np.array_equal(loaded.val_images, test_images) and np.array_equal(loaded.val_labels, test_digits)
    assert loaded.train_labels[0] == 0 and loaded.num_classes == 10
    assert data_sources.load("svhn", SvhnData(path=str(tmp_path), train_size=5)).train_images.shape == (5, 3, 32, 32)


def test_svhn_malformed_file_is_one_line_naming_it(tmp_path):
    _svhn_file(tmp_path / "train_32x32.mat", 2)
    (tmp_path / "test_32x32.mat").write_bytes(b"MATLAB 5.0 MAT-file, but cut" + bytes(10))
    assert str(tmp_path / "test_32x32.mat") in _one_line_error("svhn", SvhnData(path=str(tmp_path)), "not a readable MATLAB file")
    scipy.io.savemat(str(tmp_path / "test_32x32.mat"), {"X": np.zeros((28, 28, 1, 2), np.uint8), "y": np.ones((2, 1))})
    assert str(tmp_path / "test_32x32.mat") in _one_line_error("svhn", SvhnData(path=str(tmp_path)), r"X is \(28, 28, 1, 2\)")
    (tmp_path / "test_32x32.mat").unlink()
    _one_line_error("svhn", SvhnData(path=str(tmp_path)), "test_32x32.mat: missing")


# -- imagefolder ---------------------------------------------------------------------------------------
@pytest.fixture
def class_folders(tmp_path):
    """zebra/ with 3 images, ant/ with 2 (one a level down), bee/ with 1: labels by sorted name."""
    written = {}
    for name, count in (("zebra", 3), ("ant", 2), ("bee", 1)):
        for index in range(count):
            image = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            path = tmp_path / name / ("deeper" if name == "ant" and index else "") / f"{index}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), image)
            written[image[:, :, ::-1].transpose(2, 0, 1).tobytes()] = ["ant", "bee", "zebra"].index(name)
    (tmp_path / "stray.png").write_bytes(b"not in a class folder: ignored")
    return tmp_path, written


def test_imagefolder_labels_by_sorted_folder_and_exact_pixels(class_folders):
    root, written = class_folders
    loaded = _check_and_load("imagefolder", ImageFolderData(path=str(root), image_size=8, channels=3, val_fraction=0.3))
    assert loaded.num_classes == 3 and loaded.train_images.shape == (4, 3, 8, 8) and loaded.val_images.shape == (2, 3, 8, 8)
    images = np.concatenate([loaded.train_images, loaded.val_images])
    labels = np.concatenate([loaded.train_labels, loaded.val_labels])
    assert {image.tobytes(): int(label) for image, label in zip(images, labels, strict=True)} == written


def test_imagefolder_problems_are_one_line(class_folders):
    root, _ = class_folders
    (root / "bee" / "0.png").write_bytes(b"\x89PNG cut")
    assert str(root / "bee" / "0.png") in _one_line_error("imagefolder", ImageFolderData(path=str(root)), "not a readable image")
    (root / "bee" / "0.png").unlink()
    _one_line_error("imagefolder", ImageFolderData(path=str(root)), "class folder .*bee holds no images")
    _one_line_error("imagefolder", ImageFolderData(path=str(root / "zebra")), "0 class folders; need at least 2")


# -- gensweep validate names the data ------------------------------------------------------------------
def _write_source(name: str, root: Path) -> dict:
    """Tiny real files for source `name` under root; its `data:` section."""
    if name in ("fashion_mnist", "kmnist"):
        _idx_set(root, MNIST_NAMES, {"train": 3, "test": 2}, range(10), gz=True)
    elif name == "emnist":
        names = {part: (f"emnist-letters-{part}-images-idx3-ubyte", f"emnist-letters-{part}-labels-idx1-ubyte") for part in ("train", "test")}
        _idx_set(root, names, {"train": 3, "test": 2}, range(1, 27), gz=False)
        return {"name": name, "path": str(root), "split": "letters"}
    elif name == "cifar10":
        root.mkdir()
        for file in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
            (root / file).write_bytes(bytes(3073))
    elif name == "cifar100":
        root.mkdir()
        for file in ("train.bin", "test.bin"):
            (root / file).write_bytes(bytes(3074))
        return {"name": name, "path": str(root), "label": "coarse"}
    elif name == "svhn":
        root.mkdir()
        _svhn_file(root / "train_32x32.mat", 2), _svhn_file(root / "test_32x32.mat", 2)
    else:
        for folder in ("a", "b"):
            (root / folder).mkdir(parents=True)
            cv2.imwrite(str(root / folder / "x.png"), np.zeros((8, 8), np.uint8))
        return {"name": name, "path": str(root), "image_size": 16}
    return {"name": name, "path": str(root)}


@pytest.mark.parametrize("name, described", [
    ("fashion_mnist", "(1x28x28, 10 classes), 3 train + 2 val images"),
    ("kmnist", "(1x28x28, 10 classes), 3 train + 2 val images"),
    ("emnist", "(1x28x28, 26 classes), 3 train + 2 val images"),
    ("cifar10", "(3x32x32, 10 classes), 5 train + 1 val images"),
    ("cifar100", "(3x32x32, 20 classes), 1 train + 1 val images"),
    ("svhn", "(3x32x32, 10 classes), 2 train + 2 val images"),
    ("imagefolder", "(1x16x16, 2 classes), 1 train + 1 val images"),
])
def test_validate_prints_the_data_it_found(tmp_path, name, described):
    import yaml
    from click.testing import CliRunner

    from runner.cli import main

    spec = {"name": "formats", "model": {"name": "vae", "hidden_dim": 32}, "data": _write_source(name, tmp_path / "data")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(f"ok: 1 trial of vae on {name} {described}")


# -- count: what load gives, known before it -----------------------------------------------------------
def _count_case(name: str, root: Path) -> dict:
    """A `data:` section for source `name` on tiny files under root (mnist-like: the t10k files
    alone, so the val_fraction split is counted)."""
    if name in ("mnist", "fashion_mnist", "kmnist"):
        _idx_set(root, {"test": MNIST_NAMES["test"]}, {"test": 7}, range(10), gz=False)
        return {"name": name, "path": str(root), "val_fraction": 0.3}
    if name in ("digits", "paired"):
        return {"name": name, "train_size": 5, "val_size": 3}
    if name == "folder":
        root.mkdir()
        for index in range(7):
            cv2.imwrite(str(root / f"{index}.png"), np.full((8, 8), index, np.uint8))
        return {"name": name, "path": str(root), "image_size": 8, "val_fraction": 0.3}
    if name == "celeba":
        from test_celeba import _celeba_tree

        _celeba_tree(root)
        return {"name": name, "path": str(root), "val_size": 1}
    return _write_source(name, root)


@pytest.mark.parametrize("name", [name for name, source in data_sources.SOURCES.items() if source.count is not None])
def test_count_is_what_load_gives(tmp_path, name):
    keys = _count_case(name, tmp_path / "data")
    source = data_sources.SOURCES[name]
    config = parse_config(source.config_class, {k: v for k, v in keys.items() if k != "name"}, "data")
    source.check(config)
    loaded = source.load(config)
    assert source.count(config) == (len(loaded.train_images), len(loaded.val_images))


def test_every_source_but_unpaired_counts_before_loading():
    assert [name for name, source in data_sources.SOURCES.items() if source.count is None] == ["unpaired"]
