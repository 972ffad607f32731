"""Autoencoders: plain (ae), adversarial (aae) and denoising (dae). The VAE builds on these.

They share one shape: an encoder to a code, a decoder to pixel logits, and a reconstruction
loss that is a weighted mix of pure terms (`loss: {bce: 1.0}` or `{mse: 1.0, ssim: 0.2}`),
each term reported on its own. A deterministic code has no prior to sample from, so ae and dae
sample from a Gaussian fitted to their val codes at each evaluation.
"""

from __future__ import annotations

from typing import Annotated, Literal

import torch
from pydantic import Field
from torch import Tensor

from models import losses, nets
from models.base import Batch, DataInfo, GenerativeModel, adam
from models.config import config
from models.grids import make_grid
from models.metrics import active_units
from models.registry import register
from models.stamps import draw_stamps

TermName = Literal["bce", "mse", "l1", "ssim", "hfen"]
LossMix = dict[TermName, Annotated[float, Field(ge=0)]]


@config
class AEConfig:
    latent_dim: int = Field(8, ge=1, description="size of the code")
    arch: Literal["mlp", "conv"] = Field("mlp", description="mlp: one hidden layer; conv: two stride-2 conv stages")
    hidden_dim: int = Field(400, ge=1, description="width of the hidden dense layer")
    loss: LossMix = Field(
        default_factory=lambda: {"bce": 1.0}, min_length=1,
        description="weighted reconstruction terms: bce, mse, l1 (sums per image), ssim (1-SSIM), hfen",
    )


@register("ae", AEConfig)
class Autoencoder(GenerativeModel):
    """Autoencoder with a reconstruction loss mix; samples from a Gaussian fitted to its codes."""

    code_factor = 1  # encoder outputs code_factor * latent_dim numbers
    fits_code_distribution = True  # no prior: sample from N(mean, std) of the val codes
    pack_fields = ()  # packs differ only in learning rate

    @classmethod
    def reported_metrics(cls, config) -> tuple[str, ...]:
        return ("loss", *sorted(config.loss))

    def __init__(self, config, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        if config.arch == "conv":
            nets.check_conv_shape(data.image_shape, "model.arch")
        shape, hidden, latent = data.image_shape, config.hidden_dim, config.latent_dim
        self.encoder = nets.ENCODERS[config.arch](shape, hidden, self.code_factor * latent)
        self.decoder = nets.DECODERS[config.arch](latent, hidden, shape)  # -> pixel logits
        self.register_buffer("code_mean", torch.zeros(latent))
        self.register_buffer("code_std", torch.ones(latent))
        autoencoder_parameters = [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizers["autoencoder"] = adam(autoencoder_parameters, lr)

    # -- the pieces subclasses change ------------------------------------------------------
    def corrupt(self, images: Tensor) -> Tensor:
        """What the encoder sees; the denoising autoencoder damages it."""
        return images

    def latent(self, code: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Encoder output -> (code to decode, code's mean, per-image extra loss terms)."""
        return code, code, {}

    def reconstruction(self, logits: Tensor, images: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Per-image reconstruction loss (B,) and the terms to report, from pixel logits."""
        return losses.reconstruction_mix(logits, images, self.config.loss)

    def objective(self, reconstruction: Tensor, extras: dict[str, Tensor]) -> Tensor:
        """Per-image loss (B,) from the reconstruction loss and the extra terms."""
        return reconstruction

    # -- shared mechanics ------------------------------------------------------------------
    def per_image(self, batch: Batch) -> dict[str, Tensor]:
        """Every reported quantity per image (B,), plus the code means under "_codes"."""
        with self.autocast():
            code = self.encoder(self.corrupt(batch.images))
        z, mean, extras = self.latent(code.float())
        with self.autocast():
            logits = self.decoder(z)
        reconstruction, terms = self.reconstruction(logits, batch.images)
        return {"loss": self.objective(reconstruction, extras), **terms, **extras, "_codes": mean}

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        """per_image(): the call a pack makes with each member's weights (torch.func.functional_call)."""
        return self.per_image(batch)

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        values = self.per_image(batch)
        loss = values["loss"].mean()
        self.optimize(self.optimizers["autoencoder"], loss)
        return {name: value.detach().mean() for name, value in values.items() if not name.startswith("_")}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        sums: dict[str, Tensor] = {}
        codes = []
        count = 0
        for batch in batches:
            values = self.per_image(batch)
            codes.append(values.pop("_codes"))
            for name, value in values.items():
                sums[name] = sums.get(name, 0) + value.float().sum()
            count += len(batch.images)
        metrics = {name: float(total) / count for name, total in sums.items()}
        all_codes = torch.cat(codes)
        if self.fits_code_distribution:
            self.code_mean.copy_(all_codes.mean(dim=0))
            self.code_std.copy_(all_codes.std(dim=0).clamp_min(1e-4))
        if "active_units" in self.reported_metrics(self.config):
            metrics["active_units"] = int(active_units(all_codes))
        return metrics

    @torch.inference_mode()
    def decode(self, latents: Tensor) -> Tensor:
        with self.autocast():
            return torch.sigmoid(self.decoder(latents).float())

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        noise = torch.randn(count, self.config.latent_dim, generator=generator, device=self.device)
        return self.decode(self.code_mean + noise * self.code_std)

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        inputs = self.corrupt(batch.images)
        with self.autocast():
            _, mean, _ = self.latent(self.encoder(inputs).float())
        rows = [batch.images, self.decode(mean)]
        if inputs is not batch.images:  # denoising: damaged, cleaned, original
            rows = [inputs, rows[1], batch.images]
        grids = {"reconstruction": make_grid(torch.cat(rows), nrow=len(batch.images))}
        if self.config.latent_dim == 2:
            grids["manifold"] = self._manifold()
        return grids

    def _manifold(self, side: int = 20) -> Tensor:
        # Equal-probability steps through the code distribution (the prior, for VAE and AAE).
        quantiles = torch.linspace(0.05, 0.95, side, device=self.device)
        values = torch.distributions.Normal(0.0, 1.0).icdf(quantiles)
        grid_y, grid_x = torch.meshgrid(values.flip(0), values, indexing="ij")
        latents = torch.stack([grid_x.flatten(), grid_y.flatten()], dim=1)  # (side^2, 2)
        return make_grid(self.decode(self.code_mean + latents * self.code_std), nrow=side, padding=0)


# -- adversarial autoencoder ---------------------------------------------------------------------
@config
class AAEConfig(AEConfig):
    adv_weight: float = Field(1.0, ge=0, description="weight of the encoder's adversarial term")
    disc_hidden: int = Field(256, ge=2, description="width of the latent discriminator")
    lr_d: float | None = Field(None, gt=0, description="discriminator learning rate; null: train.lr")


@register("aae", AAEConfig)
class AdversarialAutoencoder(Autoencoder):
    """Adversarial autoencoder (Makhzani et al. 2016): a discriminator pulls codes to N(0, I)."""

    fits_code_distribution = False  # the prior is N(0, I) by construction
    pack_fields = None  # two optimizers, stepped in turn: not one packed step

    @classmethod
    def reported_metrics(cls, config) -> tuple[str, ...]:
        return (*super().reported_metrics(config), "adv", "d_loss")

    def __init__(self, config: AAEConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        self.discriminator = nets.mlp_critic(config.latent_dim, config.disc_hidden)
        self.optimizers["discriminator"] = adam(self.discriminator.parameters(), config.lr_d or lr)

    def latent(self, code: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        prior = torch.randn_like(code)
        fooled = losses.generator_loss("gan", self.discriminator(code))
        # The discriminator's own loss, on detached codes: what its step minimizes.
        judged = losses.discriminator_loss("gan", self.discriminator(prior), self.discriminator(code.detach()))
        batch = code.shape[0]
        return code, code, {"adv": fooled.expand(batch), "d_loss": judged.expand(batch)}

    def objective(self, reconstruction: Tensor, extras: dict[str, Tensor]) -> Tensor:
        return reconstruction + self.config.adv_weight * extras["adv"]

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        values = self.per_image(batch)
        autoencoder_loss = values["loss"].mean()
        discriminator_loss = values["d_loss"].mean()
        # The discriminator's loss only reaches its own weights (codes were detached in it),
        # and the encoder's adversarial term is only stepped by the autoencoder's optimizer.
        self.optimize(self.optimizers["autoencoder"], autoencoder_loss)
        self.optimize(self.optimizers["discriminator"], discriminator_loss)
        return {name: value.detach().mean() for name, value in values.items() if not name.startswith("_")}


# -- denoising autoencoder -----------------------------------------------------------------------
@config
class DAEConfig(AEConfig):
    corruption: Literal["noise", "mask", "stamp"] = Field(
        "noise", description="noise: Gaussian; mask: pixels dropped; stamp: a date stamp printed over"
    )
    noise_std: float = Field(0.3, ge=0, description="noise: std of the added Gaussian noise")
    mask_fraction: float = Field(0.25, ge=0, lt=1, description="mask: share of pixels set to 0")
    stamp_intensity: float = Field(1.0, gt=0, le=1, description="stamp: brightness of the printed text")


STAMP_BANK = 256  # pre-drawn stamps, picked per image: drawing text per batch would cost a CPU trip


@register("dae", DAEConfig)
class DenoisingAutoencoder(Autoencoder):
    """Denoising autoencoder (Vincent et al. 2008): reconstructs clean images from damaged ones."""

    def __init__(self, config: DAEConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        if config.corruption == "stamp":
            self.register_buffer("stamps", torch.from_numpy(draw_stamps(data.image_shape, STAMP_BANK)), persistent=False)

    def corrupt(self, images: Tensor) -> Tensor:
        if self.config.corruption == "noise":
            return (images + self.config.noise_std * torch.randn_like(images)).clamp(0, 1)
        if self.config.corruption == "mask":
            return images * (torch.rand_like(images) >= self.config.mask_fraction)
        picks = torch.randint(len(self.stamps), (images.shape[0],), device=images.device)
        return torch.maximum(images, self.stamps[picks] * self.config.stamp_intensity)
