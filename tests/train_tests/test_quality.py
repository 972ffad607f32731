"""Sample-quality metrics: formulas on known inputs, and sanity on real digits made worse."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms.functional as TF

from models.metrics import (
    classifier_score,
    frechet_distance,
    kernel_inception_distance,
    kid_subset_estimates,
    precision_recall,
)
from runner import data as data_sources
from runner.data import DigitsData, MnistData
from runner.train.quality import QualityError, QualityMeter, load_feature_net, real_features
from runner.train.quality_keys import class_features_cached
from runner.train.tensors import from_arrays, load_tensors


def test_frechet_distance_of_known_gaussians():
    torch.manual_seed(0)
    a = torch.randn(20000, 3)
    b = torch.randn(20000, 3) * 2 + torch.tensor([1.0, 0.0, 0.0])
    # Closed form for N(0, I) vs N(m, 4I): |m|^2 + 3 * (1 + 4 - 2 * 2) = 1 + 3 = 4
    assert frechet_distance(a, b).item() == pytest.approx(4.0, rel=0.05)
    assert frechet_distance(a, a).item() == pytest.approx(0.0, abs=1e-6)


def _direct_frechet_distance(real, fake):
    real, fake = real.double(), fake.double()
    cov_real, cov_fake = torch.cov(real.T), torch.cov(fake.T)
    root_trace = torch.linalg.eigvals(cov_real @ cov_fake).real.clamp_min(0).sqrt().sum()
    return ((real.mean(0) - fake.mean(0)).square().sum() + cov_real.trace() + cov_fake.trace() - 2 * root_trace).item()


@pytest.mark.parametrize("sizes", [(30, 40), (40, 30), (100, 120)], ids=["m<n<D", "n<m<D", "D<m<n"])
def test_frechet_distance_is_the_direct_formula(sizes):
    # Fewer samples than dimensions (Inception's 2048-d features of a few hundred samples) take
    # the Gram-matrix route, more the (D, D) symmetric one: both are the general eigenproblem's figure.
    torch.manual_seed(0)
    real = torch.randn(sizes[0], 64) @ torch.randn(64, 64)
    fake = torch.randn(sizes[1], 64) @ torch.randn(64, 64) + 0.3
    assert frechet_distance(real, fake).item() == pytest.approx(_direct_frechet_distance(real, fake), rel=1e-6)


def test_kid_is_unbiased_near_zero_for_one_distribution():
    torch.manual_seed(0)
    same = kernel_inception_distance(torch.randn(1000, 8), torch.randn(1000, 8)).item()
    shifted = kernel_inception_distance(torch.randn(1000, 8), torch.randn(1000, 8) + 0.5).item()
    assert abs(same) < 0.01 < shifted


def test_kid_over_subsets_of_one_and_of_two_distributions():
    torch.manual_seed(0)
    real, same, shifted = torch.randn(1000, 8), torch.randn(1000, 8), torch.randn(1000, 8) + 0.5

    def estimates(fake, seed=0):
        return kid_subset_estimates(real, fake, subsets=50, subset_size=200, generator=torch.Generator().manual_seed(seed))

    one, two = estimates(same), estimates(shifted)
    assert one.shape == (50,) and torch.isfinite(one).all() and torch.isfinite(two).all()
    # One distribution: about zero, the subsets scattered about it by a little.
    assert abs(one.mean().item()) < 0.01 and 0 < one.std(correction=0).item() < 0.05
    # Shifted: clearly positive on every subset; the spread small beside the gap.
    assert (two > 0).all() and two.std(correction=0).item() < 0.25 * two.mean().item()
    # The subset mean estimates the all-features figure; a seed gives the same subsets.
    assert two.mean().item() == pytest.approx(kernel_inception_distance(real, shifted).item(), rel=0.05)
    assert torch.equal(estimates(shifted), two) and not torch.equal(estimates(shifted, seed=1), two)
    # Subsets of everything are the whole set, every time: no spread.
    whole = kid_subset_estimates(real[:50], same[:50], subsets=5, subset_size=50)
    assert torch.allclose(whole, kernel_inception_distance(real[:50], same[:50]).expand(5).double())
    with pytest.raises(ValueError, match="KID subsets of 60 need 2 to 50"):
        kid_subset_estimates(real[:50], same, subset_size=60)


def test_precision_recall_of_a_collapsed_generator():
    torch.manual_seed(0)
    real = torch.randn(500, 2)
    collapsed = real[:50].repeat(10, 1) + 0.001 * torch.randn(500, 2)  # a tenth of the modes
    precision, recall = precision_recall(real, collapsed)
    assert precision.item() > 0.95 and recall.item() < 0.5


def test_classifier_score_bounds():
    confident_balanced = torch.eye(10).repeat(5, 1)
    assert classifier_score(confident_balanced).item() == pytest.approx(10.0, rel=1e-6)
    assert classifier_score(torch.full((50, 10), 0.1)).item() == pytest.approx(1.0)
    assert classifier_score(torch.eye(10)[[3] * 50]).item() == pytest.approx(1.0)  # one class only


@pytest.fixture(scope="module")
def digits():
    return load_tensors("digits", DigitsData(train_size=6000, val_size=1000, seed=0))


@pytest.fixture(scope="module")
def meter(digits):
    return QualityMeter(digits, samples=1000, device=torch.device("cpu"))


def test_held_out_real_images_score_near_the_best(meter, digits):
    real = digits.train_images[:1000].float() / 255  # other real digits than the val reference
    scores = meter.measure_images(real)
    torch.manual_seed(0)
    noisy = meter.measure_images((real + 0.2 * torch.randn_like(real)).clamp(0, 1))
    # Two samples of 1,000 from one distribution still differ a little (FD's small-sample
    # bias): "near the best" is measured against what a visible flaw costs.
    assert scores["fd"] < 0.3 * noisy["fd"]
    assert abs(scores["kid"]) < 0.01  # unbiased: about zero for one distribution
    assert 0 < scores["kid_std"] < 0.01 and 0 < noisy["kid_std"] < noisy["kid"]  # subsets of 500
    assert meter.measure_images(real)["kid_std"] == scores["kid_std"]  # the subsets come from a fixed seed
    assert scores["precision"] > 0.85 and scores["recall"] > 0.85
    assert scores["class_score"] > 9  # a confident, balanced classifier on real digits


@pytest.mark.parametrize("damage", ["noise", "blur"])
def test_scores_worsen_steadily_with_damage(meter, digits, damage):
    real = digits.train_images[:1000].float() / 255
    torch.manual_seed(0)
    if damage == "noise":
        versions = [(real + s * torch.randn_like(real)).clamp(0, 1) for s in (0.0, 0.1, 0.2, 0.4)]
    else:
        versions = [real] + [TF.gaussian_blur(real, 9, s) for s in (0.8, 1.4, 2.5)]
    scores = [meter.measure_images(images) for images in versions]
    fd = [s["fd"] for s in scores]
    kid = [s["kid"] for s in scores]
    assert fd == sorted(fd) and fd[-1] > 10 * max(fd[0], 1.0), fd
    assert kid == sorted(kid), kid
    assert scores[-1]["precision"] < scores[0]["precision"]
    assert scores[-1]["class_score"] < scores[0]["class_score"]


def test_feature_network_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    data = load_tensors("digits", DigitsData(train_size=300, val_size=50, seed=4))
    first = load_feature_net(data)
    assert len(list(tmp_path.glob("feature-net-*.pt"))) == 1
    for path in tmp_path.glob("feature-net-*.pt"):
        path.unlink()
    retrained = load_feature_net(data)
    for a, b in zip(first.state_dict().values(), retrained.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # same data, same seed, same weights



def test_the_drivers_check_finds_the_files_a_meter_cached_and_not_one_cut_short(tmp_path, monkeypatch):
    """runner.train.quality_keys names the files without torch (the driver's check before a
    sweep) as the meter names them when it writes and reads them."""
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    arrays = data_sources.load("digits", DigitsData(train_size=300, val_size=50, seed=4))
    assert not class_features_cached(arrays, 50)
    QualityMeter(from_arrays(arrays), samples=50, device=torch.device("cpu"))
    assert class_features_cached(arrays, 50)
    assert not class_features_cached(arrays, 40)  # other val images: their features are not cached
    (network,) = tmp_path.glob("feature-net-*.pt")
    network.write_bytes(network.read_bytes()[:-100])  # a disk that filled mid-write
    assert not class_features_cached(arrays, 50)

def test_real_mnist_digits_score_well_against_each_other(mnist_dir):
    mnist = load_tensors("mnist", MnistData(path=str(mnist_dir)))
    meter = QualityMeter(mnist, samples=1000, device=torch.device("cpu"))
    scores = meter.measure_images(mnist.train_images[:1000].float() / 255)
    blurred = meter.measure_images(TF.gaussian_blur(mnist.train_images[:1000].float() / 255, 9, 1.4))
    assert scores["fd"] < 0.3 * blurred["fd"] and abs(scores["kid"]) < 0.01 and scores["class_score"] > 8
    # The driver's torch-free check names the files this meter cached from the real files' arrays.
    assert class_features_cached(data_sources.load("mnist", MnistData(path=str(mnist_dir))), 1000)


def test_unlabelled_data_has_no_quality_metrics(tmp_path):
    from runner.train.tensors import ImageData

    unlabelled = ImageData(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), None, torch.zeros(2, 1, 8, 8, dtype=torch.uint8), None, None)
    with pytest.raises(QualityError, match="quality metrics need labelled data"):
        load_feature_net(unlabelled)


def test_the_val_images_features_are_computed_once_and_kept_per_network_and_images(digits, tmp_path, monkeypatch):
    """Every trial on the same data compares with the same real features, read from the cache
    rather than computed again; other images or another network are another entry; a damaged
    entry is computed and written again."""
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    real = digits.val_images[:300]
    calls = []

    def compute(scale: float = 1.0):
        calls.append(scale)
        return torch.arange(len(real) * 4, dtype=torch.float32).reshape(len(real), 4) * scale

    first = real_features("net-a", real, torch.device("cpu"), compute)
    again = real_features("net-a", real, torch.device("cpu"), lambda: compute(2.0))
    assert calls == [1.0] and torch.equal(first, again)
    entries = sorted(tmp_path.glob("real-features-*.pt"))
    assert len(entries) == 1
    real_features("net-b", real, torch.device("cpu"), lambda: compute(3.0))  # another network
    real_features("net-a", digits.val_images[:200], torch.device("cpu"), lambda: compute(4.0))  # other images
    assert calls == [1.0, 3.0, 4.0] and len(list(tmp_path.glob("real-features-*.pt"))) == 3
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # cut short
    assert torch.equal(real_features("net-a", real, torch.device("cpu"), lambda: compute(5.0)), compute(5.0))
    assert calls[-2:] == [5.0, 5.0]
    assert torch.equal(real_features("net-a", real, torch.device("cpu"), lambda: compute(6.0)), compute(5.0))


def test_a_meter_reads_the_real_features_a_first_meter_computed(digits, tmp_path, monkeypatch):
    """The cached features are the ones the feature network gives: a second meter (a second
    trial) measures the same scores without computing them."""
    first = QualityMeter(digits, samples=500, device=torch.device("cpu"))
    second = QualityMeter(digits, samples=500, device=torch.device("cpu"))
    assert torch.equal(first.real_features, second.real_features)
    fake = digits.val_images[500:1000].float() / 255
    assert first.measure_images(fake) == second.measure_images(fake)
    direct, _ = first._features([digits.val_images[:500].float() / 255])
    assert torch.allclose(first.real_features, direct, atol=1e-5)
