"""Network blocks shared by the models: one definition each, composed by the models' configs."""

from __future__ import annotations

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


def check_conv_shape(image_shape: tuple[int, int, int], arch_key: str) -> None:
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ValueError(
            f"{arch_key}: conv needs image sides divisible by 4 (two stride-2 stages), "
            f"got {height}x{width}; use arch: mlp or resize the data"
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
