"""Losses and metrics against closed forms and hand-computed values."""

from __future__ import annotations

import math

import torch
from torch.distributions import Normal, kl_divergence

from models.losses import bernoulli_nll, gaussian_kl_to_standard_normal, reparameterize, squared_error
from models.metrics import active_units


def test_kl_matches_closed_form_on_known_values():
    mean = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    variance = torch.tensor([[1.0, 1.0], [0.5, 4.0]])
    kl = gaussian_kl_to_standard_normal(mean, variance.log())
    # By hand: 0.5 * sum(mu^2 + var - log var - 1)
    by_hand = 0.5 * ((1 + 0.5 - math.log(0.5) - 1) + (4 + 4 - math.log(4) - 1))
    assert torch.allclose(kl, torch.tensor([0.0, by_hand]))
    reference = kl_divergence(Normal(mean, variance.sqrt()), Normal(0.0, 1.0)).sum(dim=1)
    assert torch.allclose(kl, reference)


def test_bernoulli_nll_on_known_inputs():
    logits = torch.tensor([[[[0.0, 2.0]]]])  # (1, 1, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]]]])
    expected = math.log(2) + math.log(1 + math.exp(2))  # -log sigmoid(0) - log(1 - sigmoid(2))
    assert torch.allclose(bernoulli_nll(logits, target), torch.tensor([expected]))


def test_squared_error_sums_per_image():
    prediction = torch.zeros(2, 1, 2, 2)
    target = torch.tensor([1.0, 0.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    assert torch.equal(squared_error(prediction, target), torch.tensor([4.0, 0.0]))


def test_reparameterize_has_the_right_moments():
    torch.manual_seed(0)
    mean = torch.full((200_000, 1), 2.0)
    log_variance = torch.full((200_000, 1), math.log(0.25))
    z = reparameterize(mean, log_variance)
    assert abs(z.mean().item() - 2.0) < 0.01 and abs(z.std().item() - 0.5) < 0.01


def test_active_units_counts_dimensions_that_vary():
    torch.manual_seed(0)
    means = torch.stack([torch.randn(500), torch.randn(500) * 0.05, torch.zeros(500)], dim=1)
    assert active_units(means).item() == 1
    assert active_units(means, threshold=0.001).item() == 2


def test_l1_sums_absolute_errors_per_image():
    from models.losses import l1_error

    prediction = torch.tensor([[[[0.5, 1.0]]], [[[0.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0]]], [[[0.25, 0.25]]]])
    assert torch.allclose(l1_error(prediction, target), torch.tensor([1.5, 0.5]))


def test_ssim_loss_is_zero_for_identical_images_and_grows_with_damage():
    from models.losses import ssim_loss

    torch.manual_seed(0)
    target = torch.rand(3, 1, 28, 28)
    assert torch.allclose(ssim_loss(target, target), torch.zeros(3), atol=1e-6)
    noisy = [(target + s * torch.randn_like(target)).clamp(0, 1) for s in (0.05, 0.2)]
    mild, strong = (ssim_loss(x, target) for x in noisy)
    assert torch.all(0 < mild) and torch.all(mild < strong)
    # Explicit data range: a uniformly brighter copy is judged by luminance, not rescaled away.
    assert torch.all(ssim_loss((target * 0.5 + 0.5), target) > 0.05)


def test_hfen_on_known_inputs():
    from models.losses import hfen, log_kernel

    kernel = log_kernel(15, 1.5)
    assert kernel.shape == (15, 15) and abs(kernel.sum().item()) < 1e-5
    assert kernel[7, 7] < 0 and kernel[7, 7] == kernel.min()  # the centre of the Mexican hat
    torch.manual_seed(0)
    target = torch.rand(2, 1, 28, 28)
    assert torch.allclose(hfen(target, target), torch.zeros(2))
    # A blank prediction misses every edge: ||LoG(0 - t)|| / ||LoG(t)|| = 1.
    assert torch.allclose(hfen(torch.zeros_like(target), target), torch.ones(2), atol=1e-5)
    # A constant offset has no high frequencies: HFEN ignores it.
    assert torch.allclose(hfen(target + 0.3, target), torch.zeros(2), atol=1e-4)


def test_reconstruction_mix_weights_each_term():
    from models.losses import reconstruction_mix

    logits = torch.zeros(2, 1, 4, 4)  # sigmoid 0.5 everywhere
    target = torch.ones(2, 1, 4, 4)
    total, parts = reconstruction_mix(logits, target, {"bce": 1.0, "mse": 2.0, "l1": 0.5})
    assert set(parts) == {"bce", "mse", "l1"}
    assert torch.allclose(parts["mse"], torch.full((2,), 16 * 0.25))
    assert torch.allclose(parts["l1"], torch.full((2,), 16 * 0.5))
    assert torch.allclose(total, parts["bce"] + 2.0 * parts["mse"] + 0.5 * parts["l1"])
