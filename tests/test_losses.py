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
