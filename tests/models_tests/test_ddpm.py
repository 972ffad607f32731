"""DDPM: the schedule's mathematics, both samplers, guidance, the weight average, and real training.

The samplers are checked with an exact noise predictor: for data that is one image c,
eps(x_t, t) = (x_t - sqrt(abar_t) c) / sqrt(1 - abar_t), so every step's law is known in closed form.
"""

from __future__ import annotations

import pytest
import torch

import models
from models import Batch, DataInfo
from models.config import ConfigError
from models.diffusion import (
    alphas_cumprod_of,
    beta_schedule,
    ddim_sample,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    drop_labels,
    guided_noise,
    q_sample,
)
from runner.data import DigitsData
from runner.train.tensors import load_tensors

DIGITS = DataInfo((1, 28, 28), 10)
UNLABELLED = DataInfo((1, 28, 28), None)
SMALL = {"width": 8, "timesteps": 50}  # the cheapest model that is still the real thing
DRAWS = 20_000  # noise draws for the empirical moments: standard errors of about 0.007


def _build(seed: int = 0, data: DataInfo = DIGITS, lr: float = 1e-3, **params):
    torch.manual_seed(seed)
    return models.build("ddpm", params, data, lr)


def _alphas_cumprod(kind: str = "linear", timesteps: int = 200, dtype=torch.float32) -> torch.Tensor:
    return alphas_cumprod_of(beta_schedule(kind, timesteps)).to(dtype)


def _one_image_oracle(image: torch.Tensor, alphas_cumprod: torch.Tensor):
    """The exact noise predictor when the data is `image` alone."""

    def predict(x_t: torch.Tensor, t: int) -> torch.Tensor:
        alpha_bar = alphas_cumprod[t]
        return (x_t - alpha_bar.sqrt() * image) / (1 - alpha_bar).sqrt()

    return predict


def _moments_within_tolerance(samples: torch.Tensor, mean: torch.Tensor, variance: torch.Tensor, what: str):
    """Empirical per-pixel mean and variance over dim 0 against the closed form, at 5 standard errors.

    Returns the tolerances, so that callers can show a wrong formula would fail them.
    """
    count = len(samples)
    mean_tolerance = 5 * (variance / count).sqrt()
    variance_tolerance = 5 * variance * (2 / (count - 1)) ** 0.5
    assert ((samples.mean(0) - mean).abs() <= mean_tolerance).all(), what
    assert ((samples.var(0) - variance).abs() <= variance_tolerance).all(), what
    return mean_tolerance, variance_tolerance


# -- the schedule -----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("signal", [0.75, 0.5, 0.25])
def test_forward_noising_has_the_closed_form_moments(kind, signal):
    alphas_cumprod = _alphas_cumprod(kind, 200)
    t = int((alphas_cumprod - signal).abs().argmin())  # the step where abar_t is nearest `signal`
    x0 = torch.tensor([-1.0, -0.5, 0.5, 1.0]).view(1, 1, 2, 2)
    noise = torch.randn(DRAWS, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    x_t = q_sample(x0.expand(DRAWS, -1, -1, -1), torch.full((DRAWS,), t), noise, alphas_cumprod)

    alpha_bar = alphas_cumprod[t]
    mean, variance = alpha_bar.sqrt() * x0[0], (1 - alpha_bar).expand(1, 2, 2)
    mean_tolerance, variance_tolerance = _moments_within_tolerance(x_t, mean, variance, f"{kind} t={t}")
    # The tolerances are tight enough to reject the usual slips: abar for sqrt(abar) in the
    # mean, a standard deviation for the variance.
    assert ((alpha_bar * x0[0] - mean).abs() > mean_tolerance).any()
    assert (((1 - alpha_bar).sqrt() - variance).abs() > variance_tolerance).all()


@pytest.mark.parametrize("timesteps", [50, 200, 1000])
def test_linear_schedule_is_ho_et_al_rescaled_to_its_length(timesteps):
    betas = beta_schedule("linear", timesteps)
    scale = 1000 / timesteps
    assert len(betas) == timesteps
    assert betas[0].item() == pytest.approx(1e-4 * scale, rel=1e-12)
    assert betas[-1].item() == pytest.approx(0.02 * scale, rel=1e-12)
    assert (betas.diff() > 0).all()


@pytest.mark.parametrize("timesteps", [50, 200, 1000])
def test_cosine_schedule_follows_cos_squared(timesteps):
    alphas_cumprod = alphas_cumprod_of(beta_schedule("cosine", timesteps))
    assert (alphas_cumprod.diff() < 0).all()
    assert alphas_cumprod[0] > 0.99 and alphas_cumprod[-1] < 1e-3
    # abar_t = f(t + 1) / f(0) with f(u) = cos^2((u / T + s) / (1 + s) * pi / 2), before the clip bites.
    f = lambda u: torch.cos(torch.tensor((u / timesteps + 0.008) / 1.008 * torch.pi / 2, dtype=torch.float64)) ** 2
    middle = timesteps // 2
    assert alphas_cumprod[middle].item() == pytest.approx((f(middle + 1) / f(0)).item(), rel=1e-9)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
@pytest.mark.parametrize("timesteps", [50, 200, 1000])
def test_every_beta_is_a_proper_variance(kind, timesteps):
    betas = beta_schedule(kind, timesteps)
    assert ((betas > 0) & (betas < 1)).all()


def test_too_few_steps_for_the_linear_schedule_are_refused():
    with pytest.raises(ValueError, match="model.timesteps"):
        beta_schedule("linear", 20)
    with pytest.raises(ConfigError, match="model.timesteps"):
        models.build("ddpm", {"timesteps": 10}, DIGITS, 1e-3)


# -- the samplers, with the exact noise predictor ----------------------------------------------
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_ddpm_steps_keep_the_forward_marginals(kind):
    """Ancestral steps from x_{T-1} ~ q(. | c) give x_t ~ q(x_t | c) = N(sqrt(abar_t) c, 1 - abar_t) at every t."""
    timesteps = 200
    alphas_cumprod = _alphas_cumprod(kind, timesteps)
    image = torch.tensor([-0.8, 0.0, 0.3, 0.9]).view(1, 1, 2, 2)
    draws = torch.Generator().manual_seed(1)
    start = q_sample(image.expand(DRAWS, -1, -1, -1), torch.full((DRAWS,), timesteps - 1),
                     torch.randn(DRAWS, 1, 2, 2, generator=draws), alphas_cumprod)
    states: list[torch.Tensor] = []
    final = ddpm_sample(_one_image_oracle(image, alphas_cumprod), start, alphas_cumprod, draws, states)

    assert len(states) == timesteps + 1  # x_{T-1}, then one state per step down to x_0
    for t in (150, 100, 50, 10):
        state = states[timesteps - 1 - t]
        alpha_bar = alphas_cumprod[t]
        _moments_within_tolerance(state, alpha_bar.sqrt() * image[0], (1 - alpha_bar).expand(1, 2, 2), f"t={t}")
    torch.testing.assert_close(final, image.expand_as(final))


@pytest.mark.parametrize("steps", [1, 5, 20])
def test_ddim_moves_along_the_noise_that_explains_x_t(steps):
    """eta = 0: with the exact predictor each state is q_sample of the same noise at the next level.

    In float64: from the noisiest level, x_0 = (x_t - ...) / sqrt(abar_t) magnifies float32's rounding.
    """
    alphas_cumprod = _alphas_cumprod("cosine", 200, torch.float64)
    image = torch.tensor([-0.8, 0.0, 0.3, 0.9], dtype=torch.float64).view(1, 1, 2, 2)
    noise = torch.randn(16, 1, 2, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    schedule = ddim_timesteps(200, steps)
    start = q_sample(image.expand(16, -1, -1, -1), torch.full((16,), schedule[0]), noise, alphas_cumprod)
    states: list[torch.Tensor] = []
    final = ddim_sample(_one_image_oracle(image, alphas_cumprod), start, alphas_cumprod, schedule, states)

    assert len(states) == steps + 1
    for state, t in zip(states[1:], schedule[1:]):
        expected = q_sample(image.expand(16, -1, -1, -1), torch.full((16,), t), noise, alphas_cumprod)
        torch.testing.assert_close(state, expected)
    torch.testing.assert_close(final, image.expand_as(final))
    # One step alone, from the noisiest level straight to the image:
    one = ddim_step(start, schedule[0], -1, _one_image_oracle(image, alphas_cumprod)(start, schedule[0]), alphas_cumprod)
    torch.testing.assert_close(one, image.expand_as(one))


def test_ddim_steps_are_evenly_spaced_from_the_noisiest_to_zero():
    assert ddim_timesteps(200, 5) == [199, 149, 100, 50, 0]
    assert ddim_timesteps(50, 50) == list(range(49, -1, -1))
    assert ddim_timesteps(200, 1) == [199]


# -- the model's sampling ------------------------------------------------------------------------
def _count_network_calls(model) -> list[int]:
    """Batch sizes of every network evaluation, appended as they happen."""
    sizes: list[int] = []
    model.network.register_forward_hook(lambda module, args, output: sizes.append(len(args[0])))
    return sizes


@pytest.mark.slow  # samples for more than a few seconds
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samples_are_images_in_unit_range(sampler):
    model = _build(sampler=sampler, **SMALL)
    images = model.sample(3, torch.Generator().manual_seed(0))
    assert images.shape == (3, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0


@pytest.mark.slow  # samples for more than a few seconds
def test_ddpm_sampling_evaluates_the_network_at_every_step():
    model = _build(sampler="ddpm", **SMALL)
    calls = _count_network_calls(model)
    model.sample(2, torch.Generator().manual_seed(0))
    assert calls == [2] * 50


def test_ddim_is_deterministic_given_its_generator_and_takes_sample_steps_evaluations():
    model = _build(sampler="ddim", sample_steps=4, **SMALL)
    calls = _count_network_calls(model)
    first = model.sample(3, torch.Generator().manual_seed(5))
    assert calls == [3] * 4
    torch.manual_seed(123)  # the global generator must not matter
    again = model.sample(3, torch.Generator().manual_seed(5))
    other = model.sample(3, torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_too_many_ddim_steps_are_refused():
    with pytest.raises(ValueError, match=r"model.sample_steps: at most model.timesteps \(50\)"):
        _build(sample_steps=51, **SMALL)


# -- class conditioning and classifier-free guidance --------------------------------------------
def test_guided_noise_extrapolates_away_from_the_unconditional():
    conditional, unconditional = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 3.0])
    assert torch.equal(guided_noise(conditional, unconditional, 0.0), conditional)
    assert torch.equal(guided_noise(conditional, unconditional, 1.0), torch.tensor([1.5, 1.0]))


def test_labels_are_dropped_at_the_configured_rate():
    torch.manual_seed(0)
    labels = torch.arange(100_000) % 10
    dropped = drop_labels(labels, 0.1, null_label=10)
    share = (dropped == 10).float().mean().item()
    assert 0.097 < share < 0.103  # 0.1 +- 3 standard errors
    kept = dropped != 10
    assert torch.equal(dropped[kept], labels[kept])


@pytest.mark.slow  # samples for more than a few seconds
def test_conditional_sampling_follows_labels_and_guidance():
    unguided = _build(conditional=True, guidance=0.0, **SMALL)
    guided = _build(conditional=True, guidance=2.0, **SMALL)
    assert all(torch.equal(a, b) for a, b in zip(unguided.state_dict().values(), guided.state_dict().values()))
    calls = _count_network_calls(guided)
    unguided_calls = _count_network_calls(unguided)
    noise = lambda: torch.Generator().manual_seed(0)
    threes, sevens = torch.full((4,), 3), torch.full((4,), 7)

    plain = unguided.sample(4, noise(), labels=threes)
    assert unguided_calls == [4] * 20  # no guidance: the conditional pass alone
    steered = guided.sample(4, noise(), labels=threes)
    assert calls == [8] * 20  # guidance: labelled and unlabelled in one pass
    assert not torch.allclose(plain, steered)
    assert not torch.allclose(unguided.sample(4, noise(), labels=sevens), plain)


def test_conditional_on_unlabelled_data_is_refused_with_the_key():
    with pytest.raises(ValueError, match="^model.conditional: needs labelled data"):
        _build(data=UNLABELLED, conditional=True)
    _build(data=UNLABELLED)  # unconditional is fine there


# -- training, evaluation, the weight average ---------------------------------------------------
@pytest.mark.slow  # trains for more than a few seconds
@pytest.mark.parametrize("params", [{"schedule": "cosine"}, {"conditional": True}, {"ema_decay": 0.0}],
                         ids=["cosine", "conditional", "no-ema"])
def test_loss_falls_on_a_fixed_batch(params, fixed_batch):
    model = _build(width=16, **params)
    first = float(model.train_step(fixed_batch)["loss"])
    for _ in range(30):
        last = float(model.train_step(fixed_batch)["loss"])
    assert 0.7 < first < 2.0  # an untrained network predicts about nothing: about the noise's unit variance
    assert last < 0.7 * first


def test_weight_average_warms_up_and_travels_in_the_state(fixed_batch):
    model = _build(ema_decay=0.999, **SMALL)
    initial = [p.detach().clone() for p in model.network.parameters()]
    model.train_step(fixed_batch)
    # First update: decay min(0.999, (1 + 1) / (10 + 1)) = 2/11 of the initial weights.
    for start, trained, average in zip(initial, model.network.parameters(), model.average.weights().values(), strict=True):
        torch.testing.assert_close(average, start + (trained.detach() - start) * 9 / 11)
    assert not any(p is a for p in model.parameters() for a in model.average.weights().values())
    assert any(key.startswith("average.") for key in model.state_dict())

    copy = _build(seed=1, ema_decay=0.999, **SMALL)
    copy.load_training_state(model.training_state())
    assert torch.equal(copy.sample(2, torch.Generator().manual_seed(0)), model.sample(2, torch.Generator().manual_seed(0)))


def test_evaluation_draws_the_same_steps_and_noise_every_time(fixed_batch):
    model = _build(**SMALL)
    torch.manual_seed(0)
    first = model.evaluate([fixed_batch])
    state = torch.get_rng_state()
    assert model.evaluate([fixed_batch]) == first
    assert torch.equal(torch.get_rng_state(), state)  # and leaves the training noise alone


@pytest.mark.parametrize("params, names", [({}, {"trajectory", "denoising"}),
                                           ({"conditional": True}, {"trajectory", "denoising", "by_class"})])
def test_log_images(params, names, fixed_batch):
    grids = _build(sample_steps=5, **SMALL, **params).log_images(Batch(fixed_batch.images[:16], fixed_batch.labels[:16]))
    assert set(grids) == names
    assert grids["trajectory"].shape == (3, 4 * 28 + 5 * 2, 10 * 28 + 11 * 2)  # 4 samples, 10 states each
    assert grids["denoising"].shape == (3, 8 * 28 + 9 * 2, 8 * 28 + 9 * 2)  # 4 images: noised over denoised
    assert all(0 <= grid.min() and grid.max() <= 1 for grid in grids.values())
    trajectory = grids["trajectory"]
    assert not torch.equal(trajectory[:, 2:30, 2:30], trajectory[:, 2:30, -30:-2])  # x_T is not x_0


@pytest.mark.slow
def test_short_training_on_digits_lowers_the_val_loss():
    data = load_tensors("digits", DigitsData(train_size=2048, val_size=256, seed=0))
    model = _build(width=16, lr=2e-3)
    val = lambda: model.evaluate(data.batches("val", 256))["loss"]
    before = val()
    order = torch.Generator().manual_seed(0)
    for _ in range(4):  # 4 epochs of 32 steps
        for batch in data.batches("train", 64, order):
            model.train_step(batch)
    after = val()
    # Predicting nothing scores about 1; 128 steps reach about 0.05 (0.035 after 256).
    assert before > 0.7 and after < 0.1, (before, after)
