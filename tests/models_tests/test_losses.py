"""Losses and metrics against closed forms and hand-computed values."""

from __future__ import annotations

import math

import pytest
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


def test_l1_sums_absolute_errors_per_image():
    from models.losses import l1_error

    prediction = torch.tensor([[[[0.5, 1.0]]], [[[0.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0]]], [[[0.25, 0.25]]]])
    assert torch.allclose(l1_error(prediction, target), torch.tensor([1.5, 0.5]))


def test_ssim_loss_is_zero_for_identical_images_and_grows_with_damage():
    from models.losses import ssim_loss

    torch.manual_seed(0)
    target = torch.rand(3, 1, 28, 28)
    assert torch.allclose(ssim_loss(target, target), torch.zeros(3), atol=1e-6)
    noisy = [(target + s * torch.randn_like(target)).clamp(0, 1) for s in (0.05, 0.2)]
    mild, strong = (ssim_loss(x, target) for x in noisy)
    assert torch.all(0 < mild) and torch.all(mild < strong)
    # Explicit data range: a uniformly brighter copy is judged by luminance, not rescaled away.
    assert torch.all(ssim_loss((target * 0.5 + 0.5), target) > 0.05)


def test_hfen_on_known_inputs():
    from models.losses import hfen, log_kernel

    kernel = log_kernel(15, 1.5)
    assert kernel.shape == (15, 15) and abs(kernel.sum().item()) < 1e-5
    assert kernel[7, 7] < 0 and kernel[7, 7] == kernel.min()  # the centre of the Mexican hat
    torch.manual_seed(0)
    target = torch.rand(2, 1, 28, 28)
    assert torch.allclose(hfen(target, target), torch.zeros(2))
    # A blank prediction misses every edge: ||LoG(0 - t)|| / ||LoG(t)|| = 1.
    assert torch.allclose(hfen(torch.zeros_like(target), target), torch.ones(2), atol=1e-5)
    # A constant offset has no high frequencies: HFEN ignores it.
    assert torch.allclose(hfen(target + 0.3, target), torch.zeros(2), atol=1e-4)


def test_reconstruction_mix_weights_each_term():
    from models.losses import reconstruction_mix

    logits = torch.zeros(2, 1, 4, 4)  # sigmoid 0.5 everywhere
    target = torch.ones(2, 1, 4, 4)
    total, parts = reconstruction_mix(logits, target, {"bce": 1.0, "mse": 2.0, "l1": 0.5})
    assert set(parts) == {"bce", "mse", "l1"}
    assert torch.allclose(parts["mse"], torch.full((2,), 16 * 0.25))
    assert torch.allclose(parts["l1"], torch.full((2,), 16 * 0.5))
    assert torch.allclose(total, parts["bce"] + 2.0 * parts["mse"] + 0.5 * parts["l1"])


# -- SSIM against scikit-image's reference implementation ---------------------------------------


def _skimage_ssim(a, b, channel_axis=None):
    from skimage.metrics import structural_similarity

    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=1, channel_axis=channel_axis)


def _photographs(shape):
    """Real photographs from skimage.data, resized to (H, W) (grey) or (H, W, 3) (colour), in [0, 1]."""
    import numpy as np
    from skimage import data, transform

    if len(shape) == 2:
        sources = [data.camera(), data.moon(), data.coins()]
    else:
        sources = [data.astronaut(), data.coffee(), data.chelsea()]
    return [np.asarray(transform.resize(image, shape, anti_aliasing=True), dtype=np.float64) for image in sources]


def _as_batch(images, colour):
    import numpy as np

    array = torch.tensor(np.stack(images))
    return array.permute(0, 3, 1, 2) if colour else array[:, None]


@pytest.mark.parametrize("shape", [(28, 28), (32, 48), (64, 64), (28, 28, 3), (32, 48, 3), (64, 64, 3)])
def test_ssim_matches_scikit_image_on_photographs(shape):
    import numpy as np

    from models.losses import ssim

    colour = len(shape) == 3
    rng = np.random.default_rng(0)
    clean = _photographs(shape)
    damaged = [np.clip(image + sigma * rng.standard_normal(image.shape), 0, 1)
               for image, sigma in zip(clean, (0.02, 0.1, 0.3))]
    damaged.append(np.clip(clean[0] * 0.7 + 0.2, 0, 1))  # luminance and contrast change, no noise
    references = clean + [clean[0]]
    expected = [_skimage_ssim(d, r, -1 if colour else None) for d, r in zip(damaged, references)]
    ours = ssim(_as_batch(damaged, colour).float(), _as_batch(references, colour).float())
    assert ours.dtype == torch.float32 and ours.shape == (len(expected),)
    assert ours.tolist() == pytest.approx(expected, abs=1e-3)
    assert ssim(_as_batch(clean, colour).float(), _as_batch(clean, colour).float()).tolist() == pytest.approx([1.0] * 3)


def test_ssim_of_noisy_digits_averages_inside_the_image():
    """Digits with noise of sigma 0.05: the padded border dragged torchmetrics' figure to ~0.56."""
    import numpy as np

    from models.losses import ssim
    from runner.data.drawn_digits import make_digits

    images, _ = make_digits(32, 0, "val")
    clean = images.astype(np.float64) / 255
    noisy = np.clip(clean + 0.05 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1)
    expected = np.mean([_skimage_ssim(n, c) for n, c in zip(noisy, clean)])
    ours = ssim(torch.tensor(noisy[:, None]).float(), torch.tensor(clean[:, None]).float()).mean().item()
    assert ours == pytest.approx(expected, abs=1e-3)
    assert 0.8 < ours < 0.9


def test_ssim_is_differentiable_and_keeps_device_and_precision():
    from models.losses import ssim, ssim_loss

    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 16)
    prediction = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    ssim_loss(prediction, target).sum().backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all() and prediction.grad.abs().sum() > 0
    assert ssim(target.double(), target.double()).dtype == torch.float64
    assert ssim(target.half(), target.half()).dtype == torch.float32  # computed in float32 at least


def test_ssim_refuses_images_smaller_than_its_window():
    from models.losses import ssim_loss

    with pytest.raises(ValueError, match="11x11.*got 8x28"):
        ssim_loss(torch.rand(1, 1, 8, 28), torch.rand(1, 1, 8, 28))
