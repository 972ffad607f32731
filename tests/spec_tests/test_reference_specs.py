"""The reference runs (RESULTS.md) stay runnable: their specs validate, each has its make target,
and the data they make for themselves reads back as the specs say (the runs themselves are not
tests: they take minutes)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from runner import data as data_sources
from runner.data import Cifar10Data, MnistData, PairedData
from runner.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
REFERENCE_SPECS = sorted((ROOT / "search_spaces" / "reference").glob("*.yaml"))


def _bench_module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", REFERENCE_SPECS, ids=lambda p: p.stem)
def test_reference_spec_validates_and_has_its_make_target(path):
    spec = load_spec(path)
    assert spec.train.precision == "fp32"  # figures that do not depend on the CPU's bf16
    assert f"$(call REFERENCE_RUN,{path.stem})" in (ROOT / "Makefile").read_text()
    assert "make results-" in path.read_text()  # the comment names the command that reproduces it


def test_reference_specs_are_the_ones_results_md_needs():
    assert {p.stem for p in REFERENCE_SPECS} >= {"vae_mnist", "dcgan_mnist", "wgan_gp_mnist", "unet_sr_mnist",
                                                  "cifar10_format", "celeba_format"}


def test_drawn_cifar10_batches_read_back_through_the_cifar10_source(tmp_path):
    formats = _bench_module("reference_formats")
    formats.write_cifar10(tmp_path, per_file=20)
    config = Cifar10Data(path=str(tmp_path))
    data_sources.SOURCES["cifar10"].check(config)
    loaded = data_sources.load("cifar10", config)
    assert loaded.train_images.shape == (100, 3, 32, 32) and loaded.val_images.shape == (20, 3, 32, 32)
    assert set(loaded.train_labels.tolist()) <= set(range(10)) and len(set(loaded.train_labels.tolist())) > 5
    # The same seed draws the same bytes, and the drawn shape is brighter than its background.
    again = tmp_path / "again"
    formats.write_cifar10(again, per_file=20)
    first = tmp_path / "cifar-10-batches-bin" / "test_batch.bin"
    assert first.read_bytes() == (again / "cifar-10-batches-bin" / "test_batch.bin").read_bytes()
    image = loaded.val_images[0].astype(int)
    assert image.max() > image[:, :4, :4].max() + 50  # a corner is background


def test_drawn_celeba_tree_reads_back_through_the_celeba_source_with_its_drawn_attribute(tmp_path):
    formats = _bench_module("reference_formats")
    formats.write_celeba(tmp_path, train=12, val=4, test=4)
    lines = (tmp_path / "list_attr_celeba.txt").read_text().splitlines()
    assert lines[0] == "20" and tuple(lines[1].split()) == formats.CELEBA_ATTRIBUTES and len(lines) == 22
    assert cv2.imread(str(tmp_path / "img_align_celeba" / "000001.jpg")).shape == (218, 178, 3)
    assert (tmp_path / "list_eval_partition.txt").read_text().splitlines()[12] == "000013.jpg 1"

    spec = load_spec(ROOT / "search_spaces" / "reference" / "celeba_format.yaml", [f"data.path={tmp_path}", "data.cache=false"])
    data_sources.SOURCES["celeba"].check(spec.data)
    loaded = data_sources.load("celeba", spec.data)
    assert loaded.train_images.shape == (12, 3, 32, 32) and loaded.val_images.shape == (4, 3, 32, 32)
    # The labels are the Smiling column, and a smile is in the picture: the mouth (lips red, at
    # rows about 160 of 218 in the file) curves down in its middle, so a smiling face has more
    # red below the mouth's line than a flat one.
    smiling = [line.split()[1 + formats.CELEBA_ATTRIBUTES.index("Smiling")] == "1" for line in lines[2:]]
    assert loaded.train_labels.tolist() == [int(value) for value in smiling[:12]] and 0 < sum(smiling[:12]) < 12
    for index, smiles in enumerate(smiling[:12]):
        face = cv2.cvtColor(cv2.imread(str(tmp_path / "img_align_celeba" / f"{index + 1:06d}.jpg")), cv2.COLOR_BGR2RGB).astype(int)
        red = (face[..., 0] - face[..., 1] > 70) & (face[..., 0] < 200)  # lips (150, 40, 50), not skin or background
        rows = np.flatnonzero(red[100:].any(axis=1))
        assert (rows.max() - rows.min() > 12) == smiles, index  # an arc spans rows; a flat mouth is a line
    # The same seed writes the same files.
    formats.write_celeba(tmp_path / "again", train=12, val=4, test=4)
    for name in ("list_attr_celeba.txt", "img_align_celeba/000007.jpg"):
        assert (tmp_path / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_exported_mnist_pngs_split_as_the_mnist_source_does(tmp_path):
    """unet_sr_mnist.yaml's claim: paired over the exported PNGs holds out the very val images
    the mnist source holds out of t10k (same rule, same seed)."""
    images = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = np.zeros(50, np.uint8)
    mnist_dir = tmp_path / "mnist"
    mnist_dir.mkdir()
    for name, array in (("t10k-images-idx3-ubyte.gz", images), ("t10k-labels-idx1-ubyte.gz", labels)):
        header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
        (mnist_dir / name).write_bytes(gzip.compress(header + array.tobytes()))
    _bench_module("reference_sr").export(mnist_dir, tmp_path / "png")
    assert np.array_equal(cv2.imread(str(tmp_path / "png" / "00007.png"), cv2.IMREAD_GRAYSCALE), images[7])

    mnist = data_sources.load("mnist", MnistData(path=str(mnist_dir), val_fraction=0.2, seed=0))
    paired = data_sources.load("paired", PairedData(source="folder", path=str(tmp_path / "png"), image_size=28,
                                                    channels=1, val_fraction=0.2, seed=0, scale=2))
    assert np.array_equal(paired.val_targets, mnist.val_images)
    assert np.array_equal(paired.train_targets, mnist.train_images)
