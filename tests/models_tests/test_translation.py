"""Image-to-image: paired and unpaired data, the image losses, the perceptual loss's plumbing,
and unet_sr / pix2pix / cyclegan each learning what it should on a fixed batch."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

import models
from models import losses
from models.translation import ImagePool
from models.vgg_weights import VGG16_FILE, hub_weights_path
from runner.data import DataError
from runner.data.pairs import PairedData, UnpairedData, crapify
from runner.spec import (
    SpecError,
    parse_document,
)
from runner.train.tensors import load_tensors

SMALL = {"width": 8}


def _paired(**fields):
    return load_tensors("paired", PairedData(train_size=64, val_size=32, **fields))


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(losses.psnr(a.float() / 255, b.float() / 255).mean())


# -- data ---------------------------------------------------------------------------------------
def test_crapify_degrades_as_documented():
    clean = _paired(scale=1).train_targets
    assert torch.equal(_paired(scale=1).train_images, clean)  # no degradation asked: identical
    halved, quartered = _paired(scale=2), _paired(scale=4)
    assert halved.train_images.shape == clean.shape and torch.equal(halved.train_targets, clean)
    assert 15 < _psnr(quartered.train_images, clean) < _psnr(halved.train_images, clean) < 40
    noisy = _paired(scale=2, noise=0.1)
    assert _psnr(noisy.train_images, clean) < _psnr(halved.train_images, clean) - 2
    stamped = _paired(scale=1, stamp=True)
    assert (stamped.train_images.int() - clean.int()).clamp_min(0).sum() > 0  # bright text added
    jpeg = _paired(scale=1, jpeg_quality=10)
    assert not torch.equal(jpeg.train_images, clean)
    assert torch.equal(_paired(scale=2, noise=0.1).train_images, noisy.train_images)  # seeded


def test_crapify_keeps_colour_images_whole():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    out = crapify(images, PairedData(scale=2, blur=1.0, jpeg_quality=50, noise=0.02), rng)
    assert out.shape == images.shape and out.dtype == np.uint8


def test_paired_folders_match_by_name(tmp_path):
    for folder in ("in", "out"):
        (tmp_path / folder).mkdir()
    for index in range(4):
        image = np.full((16, 16), 40 * index, np.uint8)
        cv2.imwrite(str(tmp_path / "in" / f"frame{index}.png"), image)
        cv2.imwrite(str(tmp_path / "out" / f"frame{index}.jpg"), 255 - image)  # other extension, same name
    cv2.imwrite(str(tmp_path / "in" / "unmatched.png"), np.zeros((16, 16), np.uint8))
    data = load_tensors("paired", PairedData(source="folders", input_path=str(tmp_path / "in"),
                                     target_path=str(tmp_path / "out"), image_size=16, val_fraction=0.25))
    inputs = torch.cat([data.train_images, data.val_images]).float().mean(dim=(1, 2, 3))
    targets = torch.cat([data.train_targets, data.val_targets]).float().mean(dim=(1, 2, 3))
    assert len(inputs) == 4 and torch.allclose(inputs + targets, torch.full_like(inputs, 255), atol=2)
    (tmp_path / "in" / "frame0.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="frame0.png: not a readable image"):
        load_tensors("paired", PairedData(source="folders", input_path=str(tmp_path / "in"),
                                  target_path=str(tmp_path / "out"), image_size=16))
    with pytest.raises(DataError, match="data.target_path: directory .* does not exist"):
        load_tensors("paired", PairedData(source="folders", input_path=str(tmp_path / "in"), target_path=str(tmp_path / "no")))


def test_unpaired_digits_are_two_styles_of_different_drawings():
    data = load_tensors("unpaired", UnpairedData(train_size=128, val_size=32))
    a, b = data.train_images.float(), data.train_targets.float()
    assert data.pairing == "unpaired" and a.shape == b.shape
    assert (b > 127).float().mean() > 1.4 * (a > 127).float().mean()  # bold: more ink
    # slanted: ink's centre of mass moves right going up the image (a right shear)
    columns = torch.arange(28.0)[None, :]

    def slant(images):
        centre = lambda part: (part * columns).sum() / part.sum()
        return float(centre(images[:, 0, :14]) - centre(images[:, 0, 14:]))

    assert slant(b) > slant(a) + 1.0
    batch = next(data.batches("train", 16, torch.Generator().manual_seed(0)))
    assert batch.targets.shape == batch.images.shape  # B drawn on its own, as many as A
    head = next(data.batches("val", 8, count=8))  # the loop's fixed batch: B still comes along
    assert head.targets is not None and head.targets.shape == head.images.shape


# -- losses -------------------------------------------------------------------------------------
def test_image_terms_on_known_inputs():
    target = torch.full((2, 1, 8, 8), 0.5)
    off = target + 0.1
    assert torch.allclose(losses.psnr(off, target), torch.full((2,), 20.0), atol=1e-4)  # MSE 0.01
    assert torch.allclose(losses.IMAGE_TERMS["psnr"](off, target), torch.full((2,), -20.0), atol=1e-4)
    assert torch.allclose(losses.mean_squared_error(off, target), torch.full((2,), 0.01), atol=1e-6)
    assert torch.allclose(losses.mean_absolute_error(off, target), torch.full((2,), 0.1), atol=1e-6)
    for name in ("mse", "l1", "hfen"):
        assert float(losses.IMAGE_TERMS[name](target, target).abs().max()) < 1e-6


def test_perceptual_compares_features_of_the_given_network():
    torch.manual_seed(0)
    layers = [nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()), nn.Sequential(nn.Conv2d(4, 4, 3, stride=2), nn.ReLU())]
    target = torch.rand(3, 1, 16, 16)
    prediction = target.clone().requires_grad_(True)
    assert float(losses.perceptual(prediction, target, layers).detach().abs().max()) == 0
    moved = (target + 0.2 * torch.randn_like(target)).requires_grad_(True)
    value = losses.perceptual(moved, target, layers)
    assert value.shape == (3,) and (value > 0).all()
    value.sum().backward()
    assert moved.grad is not None and moved.grad.abs().sum() > 0


def _spec(model: dict, data: dict | None = None):
    document = {
        "name": "t", "model": model, "data": data or {"name": "paired", "train_size": 64, "val_size": 32},
        "train": {"epochs": 1, "batch_size": 16},
    }
    return parse_document(document, "t.yaml")


@pytest.mark.skipif(hub_weights_path().exists(), reason="VGG-16 weights are in torch hub's cache here")
def test_perceptual_without_weights_names_the_file_to_place():
    with pytest.raises(SpecError, match=rf"needs pretrained VGG-16 weights: place {VGG16_FILE} at .*checkpoints"):
        _spec({"name": "unet_sr", "loss": {"mse": 1.0, "perceptual": 0.1}})


def test_perceptual_with_weights_at_a_path(tmp_path):
    """The plumbing with a VGG-16 the test makes (random weights, saved as torchvision's file is):
    the loss is computed, reported, and kept out of the trial's checkpoints."""
    from torchvision.models import vgg16

    weights = tmp_path / VGG16_FILE
    torch.save({f"features.{k}": v for k, v in vgg16(weights=None).features[:16].state_dict().items()}, weights)
    # lpips: false, since this file holds only the layers the loss reads (LPIPS reads to relu5_3).
    spec = _spec({"name": "unet_sr", "width": 8, "loss": {"mse": 1.0, "perceptual": 0.1}, "vgg_path": str(weights), "lpips": False})
    data = load_tensors("paired", spec.data)
    model = models.build("unet_sr", spec.model, spec.data_info, 1e-3)
    values = model.train_step(next(data.batches("train", 8)))
    assert values["perceptual"] > 0 and set(values) == {"loss", "mse", "perceptual"}
    assert not any(key.startswith("_feature") or "features" in key for key in model.state_dict())
    weights.write_bytes(b"truncated")
    with pytest.raises(SpecError, match="is not a readable weights file"):
        _spec({"name": "unet_sr", "loss": {"perceptual": 1.0}, "vgg_path": str(weights)})
    with pytest.raises(SpecError, match="model.vgg_path: no file"):
        _spec({"name": "unet_sr", "loss": {"perceptual": 1.0}, "vgg_path": str(tmp_path / "missing.pth")})


def test_a_model_refuses_the_wrong_kind_of_data():
    with pytest.raises(SpecError, match="trains on paired data .*not on images alone"):
        _spec({"name": "unet_sr"}, {"name": "digits", "train_size": 64, "val_size": 32})
    with pytest.raises(SpecError, match="trains on two domains"):
        _spec({"name": "cyclegan"})
    with pytest.raises(SpecError, match="trains on images alone"):
        _spec({"name": "vae"})


# -- the models learn ---------------------------------------------------------------------------
def test_unet_sr_beats_bicubic_after_training():
    spec = _spec({"name": "unet_sr", **SMALL}, {"name": "paired", "train_size": 256, "val_size": 64, "scale": 2})
    data = load_tensors("paired", spec.data)
    torch.manual_seed(0)
    model = models.build("unet_sr", spec.model, spec.data_info, 3e-3)
    generator = torch.Generator().manual_seed(0)
    for _ in range(6):
        for batch in data.batches("train", 32, generator):
            model.train_step(batch)
    metrics = model.evaluate(data.batches("val", 32))
    assert metrics["psnr_gain"] > 1.0, metrics  # dB over bicubic upscaling, on images it never saw
    assert metrics["psnr_gain"] == pytest.approx(metrics["psnr"] - metrics["psnr_bicubic"])
    grid = model.log_images(next(data.batches("val", 4)))["input_bicubic_output_target"]
    assert grid.shape[1] > 4 * 28  # four rows: low-res pixels, bicubic, output, target


def test_pix2pix_generator_fits_a_fixed_batch():
    data = _paired(scale=1, stamp=True)
    batch = next(data.batches("train", 16))
    torch.manual_seed(0)
    model = models.build("pix2pix", {"width": 8, "disc_width": 8}, _spec({"name": "pix2pix"}).data_info, 2e-3)
    first = model.train_step(batch)
    for _ in range(40):
        last = model.train_step(batch)
    assert last["l1"] < 0.75 * first["l1"], (first, last)
    assert set(model.evaluate([batch])) == set(model.card.reported_metrics(model.config))


def test_cyclegan_cycle_error_falls_and_rows_are_logged():
    data = load_tensors("unpaired", UnpairedData(train_size=16, val_size=16))
    batch = next(data.batches("train", 16))
    torch.manual_seed(0)
    info = _spec({"name": "cyclegan"}, {"name": "unpaired", "train_size": 16, "val_size": 16}).data_info
    model = models.build("cyclegan", {"width": 8, "disc_width": 8, "pool_size": 8}, info, 2e-3)
    first = model.train_step(batch)
    for _ in range(40):
        last = model.train_step(batch)
    assert last["cycle"] < 0.7 * first["cycle"] and last["identity"] < first["identity"], (first, last)
    grids = model.log_images(batch)
    assert set(grids) == {"cycle_a_b_a", "cycle_b_a_b"} and grids["cycle_a_b_a"].shape[1] > 3 * 28


def test_image_pool_fills_then_swaps_about_half():
    torch.manual_seed(0)
    pool = ImagePool(4, (1, 2, 2))
    first = torch.ones(4, 1, 2, 2)
    assert torch.equal(pool.exchange(first), first) and int(pool.count) == 4  # filling: fresh ones
    swapped = 0
    for step in range(50):
        fresh = torch.full((4, 1, 2, 2), float(step + 2))
        judged = pool.exchange(fresh)
        swapped += int((judged[:, 0, 0, 0] != step + 2).sum())
    assert 60 < swapped < 140  # half of 200, give or take
    assert "images" in dict(pool.named_buffers()) and "count" in dict(pool.named_buffers())
    assert torch.equal(ImagePool(0, (1, 2, 2)).exchange(first), first)
    restored = ImagePool(4, (1, 2, 2))
    restored.load_state_dict(pool.state_dict())  # a checkpoint's pool is full: no refilling
    fresh = torch.full((64, 1, 2, 2), -1.0)
    assert (restored.exchange(fresh)[:, 0, 0, 0] != -1).any()
