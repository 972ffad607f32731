"""Variational autoencoder (Kingma & Welling 2014) with the beta weighting of Higgins et al. 2017."""

from __future__ import annotations

import torch
from torch import Tensor

from models import losses, nets
from models.autoencoders import Autoencoder
from models.cards import VAEConfig
from models.registry import register


@register("vae")
class VAE(Autoencoder):
    """Variational autoencoder (beta-VAE), MLP or convolutional."""

    code_factor = 2  # the encoder gives a mean and a log-variance per latent dimension
    fits_code_distribution = False  # samples come from the prior N(0, I)

    def __init__(self, config: VAEConfig, data, lr: float):
        super().__init__(config, data, lr)
        self.beta = config.beta if config.beta_warmup == 0 else 0.0

    def on_epoch_start(self, epoch: int) -> None:
        if self.config.beta_warmup:
            self.beta = self.config.beta * min(1.0, (epoch - 1) / self.config.beta_warmup)

    def latent(self, code: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        mean, log_variance = nets.split_gaussian(code)
        z = losses.reparameterize(mean, log_variance)
        return z, mean, {"kl": losses.gaussian_kl_to_standard_normal(mean, log_variance)}

    def reconstruction(self, logits: Tensor, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        # The likelihood term, plus any extra weighted terms of the mix (reported one by one).
        if self.config.recon == "bce":
            recon = losses.bernoulli_nll(logits, images)
        else:
            recon = losses.squared_error(torch.sigmoid(logits.float()), images)
        extra, terms = losses.reconstruction_mix(logits, images, self.config.loss)
        return recon + extra, {"recon": recon, **terms}

    def objective(self, reconstruction: Tensor, extras: dict[str, Tensor]) -> Tensor:
        return reconstruction + self.beta * extras["kl"]
