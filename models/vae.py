"""Variational autoencoder (Kingma & Welling 2014) with the beta weighting of Higgins et al. 2017."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor

from models import losses, nets
from models.autoencoders import AEConfig, Autoencoder, LossMix
from models.config import config
from models.registry import register


@config
class VAEConfig(AEConfig):
    latent_dim: int = Field(8, ge=1, description="size of the latent code z")
    arch: Literal["mlp", "conv"] = Field(
        "mlp", description="mlp: 784-400-z-400-784 as in the paper; conv: two stride-2 conv stages"
    )
    beta: float = Field(1.0, ge=0, description="weight of the KL term; 1 is the plain ELBO")
    beta_warmup: int = Field(0, ge=0, description="epochs over which beta rises linearly from 0")
    recon: Literal["bce", "mse"] = Field(
        "bce", description="the likelihood term: bce (Bernoulli pixels, nats) or mse (summed)"
    )
    loss: LossMix = Field(
        default_factory=dict, description="extra weighted terms added to the likelihood (mse, l1, ssim, hfen)"
    )


@register("vae", VAEConfig)
class VAE(Autoencoder):
    """Variational autoencoder (beta-VAE), MLP or convolutional."""

    code_factor = 2  # the encoder gives a mean and a log-variance per latent dimension
    fits_code_distribution = False  # samples come from the prior N(0, I)
    pack_fields = ("beta",)  # a pack's members may differ in beta (and learning rate)

    @classmethod
    def reported_metrics(cls, config) -> tuple[str, ...]:
        return ("loss", "recon", "kl", "active_units", *sorted(config.loss))

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
