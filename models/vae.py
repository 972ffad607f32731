"""Variational autoencoder (Kingma & Welling 2014) with the beta weighting of Higgins et al. 2017."""

from __future__ import annotations

from typing import Literal

import torch
from pydantic import Field
from torch import Tensor
from torchvision.utils import make_grid

from models import losses, nets
from models.base import Batch, DataInfo, GenerativeModel, adam
from models.config import config
from models.metrics import active_units
from models.registry import register


@config
class VAEConfig:
    latent_dim: int = Field(8, ge=1, description="size of the latent code z")
    arch: Literal["mlp", "conv"] = Field(
        "mlp", description="mlp: 784-400-z-400-784 as in the paper; conv: two stride-2 conv stages"
    )
    hidden_dim: int = Field(400, ge=1, description="width of the hidden dense layer")
    beta: float = Field(1.0, ge=0, description="weight of the KL term; 1 is the plain ELBO")
    recon: Literal["bce", "mse"] = Field(
        "bce", description="bce: Bernoulli pixels (nats); mse: summed squared error"
    )


@register("vae", VAEConfig)
class VAE(GenerativeModel):
    """Variational autoencoder (beta-VAE), MLP or convolutional."""

    metric_names = ("loss", "recon", "kl", "active_units")

    def __init__(self, config: VAEConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        if config.arch == "conv":
            nets.check_conv_shape(data.image_shape, "model.arch")
        shape, hidden, latent = data.image_shape, config.hidden_dim, config.latent_dim
        self.encoder = nets.ENCODERS[config.arch](shape, hidden, 2 * latent)  # -> (mean, log var)
        self.decoder = nets.DECODERS[config.arch](latent, hidden, shape)  # -> pixel logits
        self.optimizers["vae"] = adam(self.parameters(), lr)

    def _forward(self, images: Tensor) -> dict[str, Tensor]:
        with self.autocast():
            mean, log_variance = nets.split_gaussian(self.encoder(images))
            logits = self.decoder(losses.reparameterize(mean, log_variance))
        if self.config.recon == "bce":
            recon = losses.bernoulli_nll(logits, images)
        else:
            recon = losses.squared_error(torch.sigmoid(logits.float()), images)
        kl = losses.gaussian_kl_to_standard_normal(mean, log_variance)
        return {"recon": recon, "kl": kl, "mean": mean}  # per-image (B,) and (B, Z)

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        parts = self._forward(batch.images)
        recon, kl = parts["recon"].mean(), parts["kl"].mean()
        loss = recon + self.config.beta * kl
        self.optimize(self.optimizers["vae"], loss)
        return {"loss": loss.detach(), "recon": recon.detach(), "kl": kl.detach()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        recon_sum = kl_sum = 0.0
        count = 0
        means = []
        for batch in batches:
            parts = self._forward(batch.images)
            recon_sum = recon_sum + parts["recon"].sum()
            kl_sum = kl_sum + parts["kl"].sum()
            count += len(batch.images)
            means.append(parts["mean"].float())
        recon, kl = float(recon_sum) / count, float(kl_sum) / count
        return {
            "loss": recon + self.config.beta * kl,
            "recon": recon,
            "kl": kl,
            "active_units": int(active_units(torch.cat(means))),
        }

    @torch.inference_mode()
    def decode(self, latents: Tensor) -> Tensor:
        with self.autocast():
            return torch.sigmoid(self.decoder(latents).float())

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(count, self.config.latent_dim, generator=generator, device=self.device)
        return self.decode(z)

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        with self.autocast():
            mean, _ = nets.split_gaussian(self.encoder(batch.images))
        originals_over_reconstructions = torch.cat([batch.images, self.decode(mean)])
        grids = {"reconstruction": make_grid(originals_over_reconstructions, nrow=len(batch.images))}
        if self.config.latent_dim == 2:
            grids["manifold"] = self._manifold()
        return grids

    def _manifold(self, side: int = 20) -> Tensor:
        # Equal-probability steps through the prior, as in the paper's figure 4.
        quantiles = torch.linspace(0.05, 0.95, side, device=self.device)
        values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
        grid_y, grid_x = torch.meshgrid(values.flip(0), values, indexing="ij")
        latents = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)  # (side^2, 2)
        return make_grid(self.decode(latents), nrow=side, padding=0)
