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


# -- reconstruction terms: each (prediction logits, target) -> (B,) per image -------------------
# A model's `loss:` mix names these and weights them; every term is also reported on its own.
# Predictions come as logits so that bce stays exact; the others compare sigmoid(logits).


def l1_error(prediction: Tensor, target: Tensor) -> Tensor:
    """Sum of absolute pixel errors per image: (B, ...) -> (B,)."""
    return (prediction.float() - target.float()).abs().flatten(1).sum(dim=1)


SSIM_SIGMA = 1.5  # Wang et al. 2004's Gaussian window
SSIM_WINDOW = 11  # 2 * int(3.5 * 1.5 + 0.5) + 1: scikit-image's window for sigma 1.5 (truncate 3.5)
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> Tensor:
    """The normalised 1-D Gaussian (size,) in float64; SSIM's 2-D window is its outer product."""
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    weights = torch.exp(-0.5 * (coords / sigma) ** 2)
    return weights / weights.sum()


def ssim(prediction: Tensor, target: Tensor) -> Tensor:
    """Mean SSIM per image (Wang et al. 2004), images (B, C, H, W) in [0, 1] -> (B,).

    scikit-image's `structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=...)`: an 11x11 Gaussian window of
    sigma 1.5, population (co)variances, K1 = 0.01, K2 = 0.03, the SSIM map averaged over the
    windows that lie inside the image (a valid convolution: no padded border) and then over
    channels. Differentiable; computed in float32 (float64 stays float64) on the input's device.
    """
    if prediction.shape != target.shape or prediction.dim() != 4:
        raise ValueError(f"SSIM compares two (B, C, H, W) batches of one shape, got {tuple(prediction.shape)} "
                         f"and {tuple(target.shape)}")
    height, width = prediction.shape[-2:]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels (its Gaussian "
                         f"window), got {height}x{width}")
    dtype = torch.promote_types(torch.promote_types(prediction.dtype, target.dtype), torch.float32)
    with torch.autocast(prediction.device.type, enabled=False):  # variances by subtraction: no half precision
        x, y = prediction.to(dtype), target.to(dtype)
        channels = x.shape[1]
        maps = torch.cat([x, y, x * x, y * y, x * y], dim=1)  # (B, 5C, H, W): one filtering pass
        window = ssim_window().to(device=x.device, dtype=dtype)
        groups = 5 * channels
        maps = F.conv2d(maps, window.view(1, 1, -1, 1).expand(groups, 1, -1, 1), groups=groups)
        maps = F.conv2d(maps, window.view(1, 1, 1, -1).expand(groups, 1, 1, -1), groups=groups)
        mean_x, mean_y, mean_xx, mean_yy, mean_xy = maps.split(channels, dim=1)
        var_x = mean_xx - mean_x * mean_x
        var_y = mean_yy - mean_y * mean_y
        cov_xy = mean_xy - mean_x * mean_y
        c1, c2 = SSIM_K1**2, SSIM_K2**2  # data range 1
        similarity = ((2 * mean_x * mean_y + c1) * (2 * cov_xy + c2)) / (
            (mean_x * mean_x + mean_y * mean_y + c1) * (var_x + var_y + c2)
        )
        return similarity.flatten(2).mean(dim=2).mean(dim=1)


def ssim_loss(prediction: Tensor, target: Tensor) -> Tensor:
    """1 - SSIM per image (see `ssim`: scikit-image's Gaussian-window SSIM), images in [0, 1]: (B,)."""
    return 1.0 - ssim(prediction, target)


def log_kernel(size: int = 15, sigma: float = 1.5) -> Tensor:
    """Laplacian-of-Gaussian kernel (size, size), zero-sum so flat regions give no response."""
    half = (size - 1) / 2
    coords = torch.arange(size, dtype=torch.float64) - half
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")
    radius2 = (xx**2 + yy**2) / (2 * sigma**2)
    kernel = -(1 - radius2) * torch.exp(-radius2) / (torch.pi * sigma**4)
    return (kernel - kernel.mean()).float()


def hfen(prediction: Tensor, target: Tensor, kernel: Tensor | None = None) -> Tensor:
    """High-frequency error norm per image (Ravishankar & Bresler 2011).

    ||LoG(prediction - target)|| / ||LoG(target)||, with a 15x15 LoG of sigma 1.5: (B, C, H, W) -> (B,).
    """
    kernel = log_kernel() if kernel is None else kernel
    kernel = kernel.to(prediction.device)[None, None]
    channels = prediction.shape[1]
    weight = kernel.expand(channels, 1, *kernel.shape[-2:])
    pad = kernel.shape[-1] // 2

    def filtered(images: Tensor) -> Tensor:
        padded = F.pad(images.float(), (pad,) * 4, mode="reflect" if images.shape[-1] > pad else "replicate")
        return F.conv2d(padded, weight, groups=channels).flatten(1)

    difference = filtered(prediction - target).norm(dim=1)
    reference = filtered(target).norm(dim=1).clamp_min(1e-8)
    return difference / reference


RECONSTRUCTION_TERMS = {
    "bce": lambda logits, target: bernoulli_nll(logits, target),
    "mse": lambda logits, target: squared_error(torch.sigmoid(logits.float()), target),
    "l1": lambda logits, target: l1_error(torch.sigmoid(logits.float()), target),
    "ssim": lambda logits, target: ssim_loss(torch.sigmoid(logits.float()), target),
    "hfen": lambda logits, target: hfen(torch.sigmoid(logits.float()), target),
}


def reconstruction_mix(logits: Tensor, target: Tensor, weights: dict[str, float]) -> tuple[Tensor, dict[str, Tensor]]:
    """Σ weight * term, per image (B,), and each term's own per-image values."""
    parts = {name: RECONSTRUCTION_TERMS[name](logits, target) for name in weights}
    total = sum(weights[name] * value for name, value in parts.items())
    return total, parts


# -- image terms: (prediction, target) images in [0, 1] -> (B,) per image ------------------------
# The image-to-image models' `loss:` mix. Means over pixels rather than sums, so that a weight
# means the same at any image size and the terms sit on comparable scales.


def mean_squared_error(prediction: Tensor, target: Tensor) -> Tensor:
    return (prediction.float() - target.float()).square().flatten(1).mean(dim=1)


def mean_absolute_error(prediction: Tensor, target: Tensor) -> Tensor:
    return (prediction.float() - target.float()).abs().flatten(1).mean(dim=1)


def psnr(prediction: Tensor, target: Tensor) -> Tensor:
    """Peak signal-to-noise ratio per image in dB, peak 1: 10 log10(1 / MSE). Capped at 100 dB
    (identical images) so a perfect match stays finite."""
    return -10.0 * torch.log10(mean_squared_error(prediction, target).clamp_min(1e-10))


def perceptual(prediction: Tensor, target: Tensor, feature_layers: list) -> Tensor:
    """Feature reconstruction loss (Johnson et al. 2016): Σ over layers of the mean squared
    difference of the features of prediction and target, per image. `feature_layers`: modules
    applied in turn, each one's output a compared feature map (VGG-16 at relu2_2, relu3_3)."""
    total = 0.0
    x, y = prediction.float(), target.float()
    for layer in feature_layers:
        x, y = layer(x), layer(y)
        total = total + (x - y).square().flatten(1).mean(dim=1)
    return total


IMAGE_TERMS = {
    "mse": mean_squared_error,
    "l1": mean_absolute_error,
    "ssim": ssim_loss,
    "psnr": lambda prediction, target: -psnr(prediction, target),  # as a loss: negative PSNR
    "hfen": hfen,
}


# -- adversarial losses: discriminator outputs (logits or critic values) -> scalar -------------
def gradient_penalty(critic, real: Tensor, fake: Tensor, *critic_args) -> Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): E[(||grad critic(x_hat)||_2 - 1)^2].

    x_hat = eps * real + (1 - eps) * fake with one eps ~ U(0, 1) per sample; the norm is taken
    over all of a sample's pixels.
    """
    eps = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(mixed, *critic_args)
    (gradients,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
    return (gradients.flatten(1).norm(dim=1) - 1).square().mean()


def discriminator_loss(variant: str, real: Tensor, fake: Tensor, real_label: float = 1.0) -> Tensor:
    """The discriminator's (critic's) loss on its outputs for real and generated images.

    real_label < 1 is one-sided label smoothing (Salimans et al. 2016), for the BCE family.
    """
    real, fake = real.float(), fake.float()
    if variant in ("gan", "dcgan"):
        return F.binary_cross_entropy_with_logits(real, torch.full_like(real, real_label)) + \
            F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    if variant == "lsgan":
        return 0.5 * ((real - real_label).square().mean() + fake.square().mean())
    if variant in ("wgan", "wgan-gp"):
        return fake.mean() - real.mean()
    if variant == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"unknown GAN variant {variant!r}")


def generator_loss(variant: str, fake: Tensor) -> Tensor:
    """The generator's loss on the discriminator's outputs for its images (non-saturating BCE)."""
    fake = fake.float()
    if variant in ("gan", "dcgan"):
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if variant == "lsgan":
        return 0.5 * (fake - 1).square().mean()
    if variant in ("wgan", "wgan-gp", "hinge"):
        return -fake.mean()
    raise ValueError(f"unknown GAN variant {variant!r}")
