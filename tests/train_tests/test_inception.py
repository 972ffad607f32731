"""Inception FID and KID from a weights file in torch-fidelity's real format, written here offline:
a randomly initialised torch-fidelity Inception-v3's state dict, saved where torch.hub caches it.
Real torch-fidelity, real torchmetrics, a real sweep; no network (a proxy that refuses every
connection would fail any download)."""

from __future__ import annotations

import io
import json
import pickle

import cv2
import numpy as np
import pytest
import skimage.data
import torch
import yaml
from click.testing import CliRunner
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from models.config import ConfigError
from models.metrics import frechet_distance
from runner.cli import main
from runner.spec.quality import INCEPTION_WEIGHTS, default_inception_path, find_inception_weights
from runner.train.quality import InceptionFeatures, QualityError, QualityMeter
from runner.train.tensors import ImageData


class _BlankInception(FeatureExtractorInceptionV3):
    """torch-fidelity's network, left randomly initialised: its constructor insists on loading
    weights, and the empty dict torch.save({}) gives is taken as none."""

    def load_state_dict(self, state_dict, strict=True, assign=False):
        return None if not state_dict else super().load_state_dict(state_dict, strict, assign)


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub cache holds the Inception weights file."""
    home = tmp_path_factory.mktemp("torch_home")
    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    torch.manual_seed(0)
    network = _BlankInception("inception-v3-compat", ["2048"], feature_extractor_weights_path=empty)
    for module in network.modules():  # He init keeps the signal's size through ~20 ReLU layers (torch's default shrinks it to ~0)
        if isinstance(module, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    path = home / "hub" / "checkpoints" / INCEPTION_WEIGHTS
    path.parent.mkdir(parents=True)
    torch.save(network.state_dict(), path)
    return home


@pytest.fixture
def offline(monkeypatch, torch_home):
    """TORCH_HOME at the written weights; any download would meet a proxy that refuses it."""
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    for variable in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    for variable in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(variable, raising=False)
    return torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS


def _photo_crops(count: int, size: int, seed: int = 0) -> torch.Tensor:
    """(count, 3, size, size) uint8 crops of a real photograph."""
    photo = skimage.data.astronaut()
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 512 - size, size=(count, 2))
    crops = np.stack([photo[y : y + size, x : x + size] for y, x in corners])
    return torch.from_numpy(crops).permute(0, 3, 1, 2).contiguous()


@pytest.fixture(scope="module")
def real_and_fakes():
    real = _photo_crops(4, 48, seed=0)  # few: Inception runs at a few images/s on two CPU cores
    darker = (real.float() * 0.5).to(torch.uint8)  # a generator that draws everything too dark
    return real, darker


@pytest.fixture
def meter(offline, real_and_fakes):
    """Inception metrics on unlabelled RGB data, the weights found in the hub cache."""
    real, _ = real_and_fakes
    data = ImageData(real, None, real, None, None)
    return QualityMeter(data, len(real), torch.device("cpu"), class_features=False,
                        inception_weights=find_inception_weights(None))


def test_weights_in_the_hub_cache_give_fid_and_kid_and_nothing_else(meter, real_and_fakes, offline):
    assert find_inception_weights(None) == offline == default_inception_path()
    real, darker = real_and_fakes
    same = meter.measure_images(real.float() / 255)
    worse = meter.measure_images(darker.float() / 255)
    assert set(same) == set(worse) == {"fid", "kid_inception", "kid_inception_std"}  # unlabelled: no fd, ...
    assert all(np.isfinite(value) for value in [*same.values(), *worse.values()])
    # The very val images: the same features, FID zero up to round-off; a flaw costs.
    assert abs(same["fid"]) < 1e-6 * worse["fid"]
    assert worse["fid"] > 0 and worse["kid_inception"] > same["kid_inception"]  # of 4 images, KID only orders them


def test_grey_images_are_their_rgb_repeats(offline):
    features = InceptionFeatures(offline, torch.device("cpu"))
    grey = _photo_crops(1, 32)[:, :1]
    # Grey uint8 as Inception sees it: RGB repeats; [0, 1] floats: the same uint8 values.
    torch.testing.assert_close(features(grey), features(grey.expand(-1, 3, -1, -1).float() / 255), rtol=0, atol=0)


def test_features_and_fid_agree_with_torchmetrics(offline, real_and_fakes):
    from torchmetrics.image.fid import FrechetInceptionDistance

    real, darker = real_and_fakes
    # antialias off: torch-fidelity's TF1-exact resize, as FID was defined (torchmetrics' default differs).
    theirs = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(offline), antialias=False)
    ours = InceptionFeatures(offline, torch.device("cpu"))
    torch.testing.assert_close(ours(real[:1]), theirs.inception(real[:1]).float(), rtol=1e-4, atol=1e-5)
    # The formula on real Inception features: torchmetrics computes FID by a (D, D) general
    # eigenproblem, 40 s at D = 2048 on two busy cores; at 64 (the first pool), milliseconds, and
    # the network stops a quarter of the way in.
    theirs = FrechetInceptionDistance(feature=64, feature_extractor_weights_path=str(offline), antialias=False)
    theirs.update(real, real=True)
    theirs.update(darker, real=False)
    expected = theirs.compute().item()
    ours_fid = frechet_distance(theirs.inception(real), theirs.inception(darker)).item()
    assert ours_fid == pytest.approx(expected, rel=1e-3) and expected > 0


class _NotWeights:
    """What a foreign file may pickle: an object, whose unpickling could run code."""


def test_a_file_that_is_not_a_state_dict_is_refused_unread(tmp_path, offline):
    pickled_object = tmp_path / "object.pth"
    torch.save(_NotWeights(), pickled_object)  # a torch.save zip, so the spec check passes it
    with pytest.raises(QualityError, match=r"object.pth: not a state dict of tensors \(it pickles other objects\): refused unread$") as error:
        InceptionFeatures(pickled_object, torch.device("cpu"))
    assert "\n" not in str(error.value)
    bare_pickle = tmp_path / "bare.pth"
    bare_pickle.write_bytes(pickle.dumps({"fc.weight": _NotWeights()}))
    with pytest.raises(ConfigError, match=r"bare.pth is not a torch.save weights file"):
        find_inception_weights(str(bare_pickle))
    wrong_tensors = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(2)}, wrong_tensors)
    with pytest.raises(QualityError, match=r"other.pth: not torch-fidelity's Inception-v3 weights"):
        InceptionFeatures(wrong_tensors, torch.device("cpu"))


def test_missing_weights_are_one_line_naming_the_file_and_both_places(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError) as error:
        find_inception_weights(None)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "hub" / "checkpoints" / INCEPTION_WEIGHTS) in message
    assert "quality.inception_path" in message
    with pytest.raises(ConfigError, match=r"quality.inception_path: no file .*elsewhere.pth \(torch-fidelity's"):
        find_inception_weights(str(tmp_path / "elsewhere.pth"))


@pytest.mark.slow
def test_a_sweep_on_an_unlabelled_folder_ranks_by_fid(torch_home, tmp_path, ray_runtime):
    weights = torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS
    photos = tmp_path / "photos"
    photos.mkdir()
    for index, crop in enumerate(_photo_crops(40, 64, seed=1)):
        cv2.imwrite(str(photos / f"{index:02d}.{'png' if index % 2 else 'jpg'}"), crop.permute(1, 2, 0).numpy()[..., ::-1])
    spec = {
        "name": "by_fid",
        "model": {"name": "vae", "arch": "mlp", "hidden_dim": 32},
        "data": {"name": "folder", "path": str(photos), "image_size": 16, "channels": 3, "val_fraction": 0.1},
        "train": {"epochs": 1, "batch_size": 10, "steps_per_epoch": 2},
        "search": {"model.latent_dim": {"grid": [2, 4]}},
        # The path, not TORCH_HOME: Ray's workers began before a test could set the variable.
        "quality": {"fid": True, "samples": 10, "inception_path": str(weights)},
        "tune": {"metric": "val/fid", "mode": "min"},
    }
    (tmp_path / "by_fid.yaml").write_text(yaml.safe_dump(spec))
    validated = CliRunner().invoke(main, ["validate", str(tmp_path / "by_fid.yaml")])
    assert validated.exit_code == 0, validated.output
    assert "quality: fid, kid_inception, kid_inception_std (Inception-v3); not measured: fd, kid," in validated.output

    result = CliRunner().invoke(main, ["run", str(tmp_path / "by_fid.yaml"), "--storage-path", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output[-4000:]
    assert "gensweep: quality: fid, kid_inception, kid_inception_std (Inception-v3)" in result.output
    trials = json.loads(CliRunner().invoke(main, ["show", str(tmp_path / "out" / "by_fid"), "--json"]).output)
    assert len(trials) == 2
    fids = [trial["metrics"]["val/fid"] for trial in trials]
    assert all(np.isfinite(fid) and fid > 0 for fid in fids)
    assert all("val/kid_inception_std" in trial["metrics"] and "val/fd" not in trial["metrics"] for trial in trials)
    best = [trial for trial in trials if trial["best"]]
    assert len(best) == 1 and best[0]["metrics"]["val/fid"] == min(fids)
