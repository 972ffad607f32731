"""Losses as pure functions of tensors: per-image values (B,), summed over pixels or latents.

Per-image sums keep the units honest: a VAE's reconstruction term is then the negative
log-likelihood of an image in nats, which is what the ELBO and the papers report.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bernoulli_nll(logits: Tensor, target: Tensor) -> Tensor:
    """-log p(target | logits) per image, pixels as Bernoullis: (B, ...) -> (B,) nats."""
    per_pixel = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none")
    return per_pixel.flatten(1).sum(dim=1)


def squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Sum of squared pixel errors per image: (B, ...) -> (B,)."""
    return (prediction.float() - target.float()).square().flatten(1).sum(dim=1)


def gaussian_kl_to_standard_normal(mean: Tensor, log_variance: Tensor) -> Tensor:
    """KL(N(mean, exp(log_variance)) || N(0, I)) per sample in nats: (B, Z) -> (B,).

    The closed form 0.5 * sum(mean^2 + var - log var - 1) (Kingma & Welling 2014, appendix B).
    """
    mean, log_variance = mean.float(), log_variance.float()
    return 0.5 * (mean.square() + log_variance.exp() - log_variance - 1.0).sum(dim=1)


def reparameterize(mean: Tensor, log_variance: Tensor) -> Tensor:
    """z = mean + sigma * eps, differentiable in mean and log_variance."""
    return mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
