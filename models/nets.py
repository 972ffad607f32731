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
