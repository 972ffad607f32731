"""LPIPS-VGG from weights on disk (models/lpips.py): torchmetrics' numbers, no download, and a
one-line note where the weights are missing.

The VGG-16 file is written here in torchvision's own format (its state_dict, torch.save'd
where torch hub keeps it), with random weights: nothing in this repository downloads them.
"""

from __future__ import annotations

import itertools
import math

import cv2
import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from skimage import data as photographs

import models
from models.cards import LPIPS_MIN_SIDE
from models.lpips import lpips, lpips_network
from models.vgg_weights import VGG16_FILE, hub_weights_path
from runner.cli import main
from runner.spec import SpecError, parse_document
from runner.train import loop

SIDE = 96  # photographs shrunk: LPIPS's VGG-16 pass on a 512-pixel image is seconds on a CPU


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds VGG-16 weights as torchvision saves them."""
    from torchvision.models import vgg16

    home = tmp_path_factory.mktemp("torch_home")
    torch.manual_seed(0)
    state = vgg16(weights=None).state_dict()
    # The classifier's 124 M weights (494 MB) are never read by LPIPS: each is saved as one
    # element broadcast to its shape, which loads as a tensor of the right shape all the same.
    state = {key: value if key.startswith("features.") else torch.zeros(1).expand(value.shape) for key, value in state.items()}
    (home / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(state, home / "hub" / "checkpoints" / VGG16_FILE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TORCH_HOME", str(home))
        yield home


@pytest.fixture
def empty_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    return tmp_path


def _photographs() -> torch.Tensor:
    """(3, 3, SIDE, SIDE) real photographs in [0, 1]: astronaut, cat, coffee."""
    images = [cv2.resize(picture(), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
              for picture in (photographs.astronaut, photographs.chelsea, photographs.coffee)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255


def _blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    pixels = images.permute(0, 2, 3, 1).numpy()
    blurred = np.stack([cv2.GaussianBlur(image, (0, 0), sigma) for image in pixels])
    return torch.from_numpy(blurred).permute(0, 3, 1, 2).contiguous()


def test_lpips_is_torchmetrics_lpips_given_the_same_vgg16(torch_home):
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    # torchmetrics reads the backbone from torch hub's cache (TORCH_HOME, where the fixture put
    # the file: nothing is downloaded) and its linear layers from its package.
    assert hub_weights_path().is_file()
    reference = LearnedPerceptualImagePatchSimilarity(net_type="vgg", reduction="none", normalize=True)
    network = lpips_network(hub_weights_path())
    assert torch.equal(reference.net.net.slice5[1].weight, network.net.slice5[1].weight)  # features.24: the same backbone

    images = _photographs()
    blurred = _blurred(images, sigma=1.5)
    ours = lpips(blurred, images, network)
    assert ours.shape == (3,)
    assert torch.allclose(ours, reference(blurred, images), rtol=1e-5, atol=1e-6)
    assert (ours > 0).all()


def test_identical_images_give_zero_and_more_blur_gives_more(torch_home):
    network = lpips_network(hub_weights_path())
    images = _photographs()
    assert torch.equal(lpips(images, images, network), torch.zeros(3))
    distances = [lpips(_blurred(images, sigma), images, network) for sigma in (0.7, 1.5, 3.0)]
    for sharper, blurrier in itertools.pairwise(distances):
        assert (blurrier > sharper).all(), distances


def test_gray_images_are_measured_as_rgb(torch_home):
    network = lpips_network(hub_weights_path())
    gray = _photographs().mean(dim=1, keepdim=True)
    blurred = _blurred(gray.expand(-1, 3, -1, -1), sigma=1.5)[:, :1]
    rgb = lpips(blurred.expand(-1, 3, -1, -1), gray.expand(-1, 3, -1, -1), network)
    assert torch.equal(lpips(blurred, gray, network), rgb)


def _paired_document(model: dict, **data) -> dict:
    return {
        "name": "sr", "model": model,
        "data": {"name": "paired", "train_size": 64, "val_size": 32, "scale": 2, **data},
        "train": {"epochs": 1, "batch_size": 32},
    }


def test_a_short_unet_sr_run_reports_val_lpips(torch_home):
    spec = parse_document(_paired_document({"name": "unet_sr", "width": 8}), "sr.yaml")
    assert "val/lpips" in spec.metric_names() and spec.notes() == []
    metrics = loop.train(spec)
    assert math.isfinite(metrics["val/lpips"]) and metrics["val/lpips"] > 0, metrics


def test_pix2pix_reports_lpips_and_keeps_vgg_out_of_its_checkpoints(torch_home):
    spec = parse_document(_paired_document({"name": "pix2pix", "width": 8, "disc_width": 8}), "p.yaml")
    data_info = spec.data_info
    model = models.build("pix2pix", spec.model, data_info, 1e-3)
    images = torch.rand(4, *data_info.image_shape)
    metrics = model.evaluate([models.Batch(images, targets=images.clone())])
    assert set(metrics) == set(model.card.reported_metrics(model.config)) and "lpips" in metrics
    assert not any("slice" in key or "lin0" in key for key in model.state_dict())
    off = models.build("pix2pix", {"width": 8, "disc_width": 8, "lpips": False}, data_info, 1e-3)
    assert "lpips" not in off.evaluate([models.Batch(images, targets=images)])


def test_images_too_small_for_vgg16_are_refused_in_one_line(torch_home):
    tiny = models.DataInfo(image_shape=(1, 8, 8), num_classes=None, pairing="paired")
    card = models.entry("unet_sr")
    with pytest.raises(ValueError, match=rf"^model.lpips: VGG-16 needs image sides of at least {LPIPS_MIN_SIDE} pixels, got 8x8; "):
        card.check(models.make_config("unet_sr", {"depth": 1}), tiny)
    card.check(models.make_config("unet_sr", {"depth": 1, "lpips": False}), tiny)
    smallest = torch.rand(2, 1, LPIPS_MIN_SIDE, LPIPS_MIN_SIDE, generator=torch.Generator().manual_seed(0))
    network = lpips_network(hub_weights_path())
    assert torch.isfinite(lpips(smallest, smallest.flip(0), network)).all()
    with pytest.raises(RuntimeError):  # one pixel less: the last pooling has nothing left to pool
        lpips(smallest[..., 1:, 1:], smallest[..., 1:, 1:], network)


def test_without_weights_validate_says_lpips_is_not_measured_and_why(empty_torch_home, tmp_path):
    spec_file = tmp_path / "sr.yaml"
    spec_file.write_text(yaml.safe_dump(_paired_document({"name": "unet_sr"})))
    result = CliRunner().invoke(main, ["validate", str(spec_file)])
    assert result.exit_code == 0, result.output
    notes = [line for line in result.output.splitlines() if "lpips" in line]
    expected = (f"  note: model.lpips: auto: val/lpips not measured: no VGG-16 weights ({VGG16_FILE}) at "
                f"{empty_torch_home / 'hub' / 'checkpoints' / VGG16_FILE} nor model.vgg_path "
                "(gensweep downloads nothing; model.lpips: false silences this)")
    assert notes == [expected]
    spec = parse_document(_paired_document({"name": "unet_sr"}), "sr.yaml")
    assert "val/lpips" not in spec.metric_names()

    quiet = CliRunner().invoke(main, ["validate", str(spec_file), "--set", "model.lpips=false"])
    assert quiet.exit_code == 0 and "lpips" not in quiet.output

    asked = CliRunner().invoke(main, ["validate", str(spec_file), "--set", "model.lpips=true"])
    assert asked.exit_code == 2
    assert f"model.lpips: needs pretrained VGG-16 weights: place {VGG16_FILE} at" in asked.output

    ranked = CliRunner().invoke(main, ["validate", str(spec_file), "--set", "tune.metric=val/lpips"])
    assert ranked.exit_code == 2 and "does not report 'val/lpips' (model.lpips: auto: val/lpips not measured" in ranked.output


def test_a_named_vgg_path_that_is_missing_stops_the_spec(empty_torch_home, tmp_path):
    with pytest.raises(SpecError, match="model.vgg_path: no file"):
        parse_document(_paired_document({"name": "pix2pix", "vgg_path": str(tmp_path / "nowhere.pth")}), "p.yaml")
