"""Network blocks shared by the models: one definition each, composed by the models' configs."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def mlp_encoder(image_shape: tuple[int, int, int], hidden_dim: int, out_dim: int) -> nn.Module:
    """(B, C, H, W) -> (B, out_dim) through one hidden layer, as in Kingma & Welling's MNIST VAE."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(channels * height * width, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


def mlp_decoder(in_dim: int, hidden_dim: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """(B, in_dim) -> (B, C, H, W) logits."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, channels * height * width),
        nn.Unflatten(1, image_shape),
    )


def conv_encoder(image_shape: tuple[int, int, int], hidden_dim: int, out_dim: int) -> nn.Module:
    """(B, C, H, W) -> (B, out_dim): two stride-2 convolutions, then a hidden dense layer."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Conv2d(channels, 32, 4, stride=2, padding=1),  # (B, 32, H/2, W/2)
        nn.ReLU(),
        nn.Conv2d(32, 64, 4, stride=2, padding=1),  # (B, 64, H/4, W/4)
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64 * (height // 4) * (width // 4), hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


def conv_decoder(in_dim: int, hidden_dim: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """(B, in_dim) -> (B, C, H, W) logits: the mirror of conv_encoder."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.ReLU(),
        nn.Linear(hidden_dim, 64 * (height // 4) * (width // 4)),
        nn.ReLU(),
        nn.Unflatten(1, (64, height // 4, width // 4)),
        nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1),  # (B, 32, H/2, W/2)
        nn.ReLU(),
        nn.ConvTranspose2d(32, channels, 4, stride=2, padding=1),  # (B, C, H, W)
    )


ENCODERS = {"mlp": mlp_encoder, "conv": conv_encoder}
DECODERS = {"mlp": mlp_decoder, "conv": conv_decoder}


def split_gaussian(params: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 2Z) encoder output -> mean (B, Z) and log-variance (B, Z)."""
    mean, log_variance = params.chunk(2, dim=1)
    return mean, log_variance


def mlp_critic(in_dim: int, hidden_dim: int) -> nn.Module:
    """(B, in_dim) -> (B, 1) score: two LeakyReLU layers, as GAN discriminators use."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, hidden_dim // 2),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim // 2, 1),
    )


def mlp_generator(in_dim: int, hidden_dim: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """(B, in_dim) -> (B, C, H, W) in [-1, 1] (Goodfellow et al. 2014's fully connected G)."""
    channels, height, width = image_shape
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim // 2),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim // 2, hidden_dim),
        nn.LeakyReLU(0.2),
        nn.Linear(hidden_dim, channels * height * width),
        nn.Tanh(),
        nn.Unflatten(1, image_shape),
    )


def conv_generator(in_dim: int, width: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """DCGAN's generator (Radford et al. 2016) at H/4 -> H/2 -> H: transposed convs, batch norm, ReLU."""
    channels, height, image_width = image_shape
    return nn.Sequential(
        nn.Linear(in_dim, 2 * width * (height // 4) * (image_width // 4), bias=False),
        nn.Unflatten(1, (2 * width, height // 4, image_width // 4)),
        nn.BatchNorm2d(2 * width),
        nn.ReLU(),
        nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False),  # (B, w, H/2, W/2)
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1),  # (B, C, H, W)
        nn.Tanh(),
    )


def conv_critic(image_shape: tuple[int, int, int], width: int, norm: str = "batch") -> nn.Module:
    """DCGAN's discriminator: strided convs and LeakyReLU -> (B, 1) score.

    norm: "batch" as in DCGAN; "layer" or "none" for WGAN-GP, whose penalty is per sample and
    so must not mix samples through batch statistics.
    """
    channels, height, image_width = image_shape
    norms = {
        "batch": lambda: nn.BatchNorm2d(2 * width),
        "layer": lambda: nn.GroupNorm(1, 2 * width),
        "none": nn.Identity,
    }
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, stride=2, padding=1),  # (B, w, H/2, W/2)
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=norm == "none"),  # (B, 2w, H/4, W/4)
        norms[norm](),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(2 * width * (height // 4) * (image_width // 4), 1),
    )


# -- image-to-image and diffusion -----------------------------------------------------------------
def _groups(channels: int) -> int:
    return math.gcd(channels, 8)  # GroupNorm: up to 8 groups that divide the channels


class UNetBlock(nn.Module):
    """Two 3x3 convs with GroupNorm and SiLU; an embedding (a diffusion timestep, a class) is
    projected to a per-channel shift added between them, as in Ho et al. 2020's U-Net."""

    def __init__(self, in_channels: int, out_channels: int, embedding_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        self.first = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.GroupNorm(_groups(out_channels), out_channels), nn.SiLU()
        )
        self.shift = nn.Linear(embedding_dim, out_channels) if embedding_dim else None
        self.second = nn.Sequential(
            nn.Dropout(dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.SiLU(),
        )

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        x = self.first(x)
        if self.shift is not None:
            x = x + self.shift(embedding)[:, :, None, None]
        return self.second(x)


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015): `depth` halvings down, as many doublings up, each level's
    features concatenated into the way up. (B, in, H, W) [+ (B, E) embedding] -> (B, out, H, W).

    One network for super-resolution, pix2pix's and CycleGAN's generators and DDPM's noise
    predictor; the output has no activation (the model decides what it means).
    """

    def __init__(self, in_channels: int, out_channels: int, width: int = 32, depth: int = 2,
                 embedding_dim: int = 0, dropout: float = 0.0):
        super().__init__()
        widths = [width * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList()
        previous = in_channels
        for level in range(depth):
            self.down.append(UNetBlock(previous, widths[level], embedding_dim))
            previous = widths[level]
        self.pool = nn.AvgPool2d(2)
        self.middle = UNetBlock(widths[depth - 1], widths[depth], embedding_dim, dropout)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.up = nn.ModuleList(
            UNetBlock(widths[level + 1] + widths[level], widths[level], embedding_dim, dropout)
            for level in reversed(range(depth))
        )
        self.out = nn.Conv2d(widths[0], out_channels, 1)

    def forward(self, x: Tensor, embedding: Tensor | None = None) -> Tensor:
        skips = []
        for block in self.down:
            x = block(x, embedding)
            skips.append(x)
            x = self.pool(x)
        x = self.middle(x, embedding)
        for block in self.up:
            x = block(torch.cat([self.upsample(x), skips.pop()], dim=1), embedding)
        return self.out(x)


def sinusoidal_embedding(steps: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style position encoding of integer steps: (B,) -> (B, dim) (Vaswani et al. 2017)."""
    half = dim // 2
    frequencies = torch.exp(-math.log(max_period) * torch.arange(half, device=steps.device) / half)
    angles = steps.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def patch_critic(in_channels: int, width: int = 64, layers: int = 2) -> nn.Module:
    """PatchGAN discriminator (Isola et al. 2017): strided 4x4 convs, one real/fake logit per
    overlapping patch -> (B, 1, h, w). InstanceNorm as in pix2pix and CycleGAN."""
    modules: list[nn.Module] = [nn.Conv2d(in_channels, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
    channels = width
    for _ in range(1, layers):
        modules += [nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
                    nn.InstanceNorm2d(2 * channels, affine=True), nn.LeakyReLU(0.2)]
        channels *= 2
    modules += [nn.Conv2d(channels, channels, 3, padding=1), nn.InstanceNorm2d(channels, affine=True),
                nn.LeakyReLU(0.2), nn.Conv2d(channels, 1, 3, padding=1)]
    return nn.Sequential(*modules)
