"""Denoising diffusion (Ho et al. 2020), sampled by DDPM or DDIM, optionally class-conditional.

Three separate things, as in diffusers: the noise schedule and its steps (pure functions of
tensors below), the network that predicts the noise (NoisePredictor), and the sampling loops
(`ddpm_sample`, `ddim_sample`, which take any noise predictor: the tests give them an exact one).
Images go to the diffusion in [-1, 1] and come back from sample() in [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import nets
from models.base import Batch, DataInfo, GenerativeModel, adam
from models.cards import DDPMConfig
from models.registry import register

# Ho et al.'s linear schedule: betas from 1e-4 to 0.02 over 1000 steps.
LINEAR_BETA_START, LINEAR_BETA_END, REFERENCE_TIMESTEPS = 1e-4, 0.02, 1000
COSINE_OFFSET = 0.008  # Nichol & Dhariwal's s: keeps beta_0 from being vanishingly small
MAX_BETA = 0.999  # Nichol & Dhariwal clip the cosine schedule's last betas, which approach 1

TRAJECTORY_ROWS, TRAJECTORY_FRAMES = 4, 10  # log_images: samples shown, states from x_T to x_0
DENOISING_IMAGES, DENOISING_LEVELS = 4, 8  # log_images: val images, noise levels from t=0 to T-1

NoisePrediction = Callable[[Tensor, int], Tensor]  # (x_t (B, C, H, W), t) -> predicted noise (B, C, H, W)




# -- the noise schedule: pure functions of tensors --------------------------------------------------
def beta_schedule(kind: str, timesteps: int) -> Tensor:
    """The betas of q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I): (T,) float64.

    linear: Ho et al.'s 1e-4..0.02 over 1000 steps, scaled by 1000 / T so that T steps destroy
    the image as much as their 1000 did (Nichol & Dhariwal's rescaling).
    cosine: alpha-bar follows cos^2 (Nichol & Dhariwal 2021), which destroys small images less
    abruptly; its last betas are clipped at 0.999 so that no step is a pure-noise jump.
    """
    if kind == "linear":
        scale = REFERENCE_TIMESTEPS / timesteps
        if LINEAR_BETA_END * scale >= 1:
            raise ValueError(f"model.timesteps: the linear schedule needs more than 20 steps, got {timesteps}")
        return torch.linspace(LINEAR_BETA_START * scale, LINEAR_BETA_END * scale, timesteps, dtype=torch.float64)
    if kind == "cosine":
        fraction = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
        alpha_bar = torch.cos((fraction + COSINE_OFFSET) / (1 + COSINE_OFFSET) * math.pi / 2).square()
        return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=MAX_BETA)
    raise ValueError(f"model.schedule: unknown schedule {kind!r} (known: linear, cosine)")


def alphas_cumprod_of(betas: Tensor) -> Tensor:
    """alpha-bar_t = prod_{s <= t} (1 - beta_s): how much of x_0 is left in x_t. (T,) -> (T,)."""
    return torch.cumprod(1 - betas, dim=0)


def _alpha_bar(alphas_cumprod: Tensor, t: int | Tensor, like: Tensor) -> Tensor:
    """alpha-bar at step t (an int for the whole batch, or (B,)), shaped to broadcast over `like`.

    t = -1 is the clean image before step 0: alpha-bar 1.
    """
    if isinstance(t, int):
        return alphas_cumprod.new_tensor(1.0) if t < 0 else alphas_cumprod[t]
    return alphas_cumprod[t].view(-1, *[1] * (like.dim() - 1))


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """x_t ~ q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I), as a function of its noise.

    x0, noise: (B, C, H, W); t: (B,) steps in [0, T).
    """
    alpha_bar = _alpha_bar(alphas_cumprod, t, x0)
    return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise


def predict_x0(x_t: Tensor, t: int | Tensor, noise_prediction: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """The clean image q_sample's inverse gives for the predicted noise, clipped to the data's [-1, 1].

    Ho et al.'s sampler clips it too: at high t, dividing by sqrt(abar_t) magnifies the
    predictor's error far beyond the range the data can take.
    """
    alpha_bar = _alpha_bar(alphas_cumprod, t, x_t)
    return ((x_t - (1 - alpha_bar).sqrt() * noise_prediction) / alpha_bar.sqrt()).clamp(-1, 1)


def ddpm_step(x_t: Tensor, t: int, noise_prediction: Tensor, alphas_cumprod: Tensor, noise: Tensor) -> Tensor:
    """x_{t-1} ~ p(x_{t-1} | x_t): the posterior q(x_{t-1} | x_t, x_0) at the predicted x_0.

    Its variance is the posterior's, beta_t (1 - abar_{t-1}) / (1 - abar_t) (Ho et al.'s
    sigma^2 = beta-tilde; it is 0 at t = 0, so the last step adds no noise). Without the clip,
    the mean is Ho et al.'s Algorithm 2: (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t).
    """
    alpha_bar, alpha_bar_before = _alpha_bar(alphas_cumprod, t, x_t), _alpha_bar(alphas_cumprod, t - 1, x_t)
    beta = 1 - alpha_bar / alpha_bar_before
    x0 = predict_x0(x_t, t, noise_prediction, alphas_cumprod)
    mean = (beta * alpha_bar_before.sqrt() * x0 + (1 - alpha_bar_before) * (1 - beta).sqrt() * x_t) / (1 - alpha_bar)
    variance = beta * (1 - alpha_bar_before) / (1 - alpha_bar)
    return mean + variance.sqrt() * noise


def ddim_step(x_t: Tensor, t: int, t_next: int, noise_prediction: Tensor, alphas_cumprod: Tensor) -> Tensor:
    """x_{t_next} from x_t by DDIM with eta = 0 (Song et al. 2021, eq. 12): no fresh noise.

    The predicted x_0, moved to level t_next along the noise that explains x_t (re-derived from
    the clipped x_0, so that both agree); t_next = -1 gives x_0 itself.
    """
    alpha_bar, alpha_bar_next = _alpha_bar(alphas_cumprod, t, x_t), _alpha_bar(alphas_cumprod, t_next, x_t)
    x0 = predict_x0(x_t, t, noise_prediction, alphas_cumprod)
    noise = (x_t - alpha_bar.sqrt() * x0) / (1 - alpha_bar).sqrt()
    return alpha_bar_next.sqrt() * x0 + (1 - alpha_bar_next).sqrt() * noise


def ddim_timesteps(timesteps: int, steps: int) -> list[int]:
    """`steps` of the T levels, evenly spaced from the noisiest (T - 1) down to 0, both included."""
    return torch.linspace(timesteps - 1, 0, steps, dtype=torch.float64).round().long().tolist()


def guided_noise(conditional: Tensor, unconditional: Tensor, guidance: float) -> Tensor:
    """Classifier-free guidance (Ho & Salimans 2022): (1 + w) eps(x, y) - w eps(x)."""
    return (1 + guidance) * conditional - guidance * unconditional


def drop_labels(labels: Tensor, probability: float, null_label: int) -> Tensor:
    """Labels with a random share replaced by `null_label`, so one network also learns eps(x)."""
    dropped = torch.rand(labels.shape, device=labels.device) < probability
    return labels.masked_fill(dropped, null_label)


def noise_prediction_error(predicted: Tensor, noise: Tensor) -> Tensor:
    """Ho et al.'s L_simple per image: the mean squared error of the predicted noise, (B, ...) -> (B,).

    A mean over pixels, not a sum as the reconstruction losses take: the noise has unit
    variance, so 1 is a network that predicts nothing, whatever the image size.
    """
    return (predicted.float() - noise.float()).square().flatten(1).mean(dim=1)


# -- the sampling loops ---------------------------------------------------------------------------
def ddpm_sample(
    predict_noise: NoisePrediction, x: Tensor, alphas_cumprod: Tensor,
    generator: torch.Generator | None = None, trajectory: list[Tensor] | None = None,
) -> Tensor:
    """Ancestral sampling (Ho et al. Algorithm 2) from x_T = `x` through every step to x_0.

    trajectory: if given, x_T and each later state are appended to it.
    """
    if trajectory is not None:
        trajectory.append(x)
    for t in reversed(range(len(alphas_cumprod))):
        noise_prediction = predict_noise(x, t)  # 1. the noise the network sees in x_t
        fresh = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)  # 2. z ~ N(0, I)
        x = ddpm_step(x, t, noise_prediction, alphas_cumprod, fresh)  # 3. x_{t-1} ~ p(x_{t-1} | x_t)
        if trajectory is not None:
            trajectory.append(x)
    return x


def ddim_sample(
    predict_noise: NoisePrediction, x: Tensor, alphas_cumprod: Tensor, steps: list[int],
    trajectory: list[Tensor] | None = None,
) -> Tensor:
    """DDIM (eta = 0) from x_T = `x` through the given decreasing steps to x_0: deterministic."""
    if trajectory is not None:
        trajectory.append(x)
    for t, t_next in zip(steps, [*steps[1:], -1]):
        noise_prediction = predict_noise(x, t)  # 1. the noise the network sees in x_t
        x = ddim_step(x, t, t_next, noise_prediction, alphas_cumprod)  # 2. jump to x_{t_next}
        if trajectory is not None:
            trajectory.append(x)
    return x


# -- the network --------------------------------------------------------------------------------
class NoisePredictor(nn.Module):
    """eps(x_t, t[, y]): a U-Net told the step (and the class) through one embedding vector."""

    def __init__(self, channels: int, width: int, depth: int, num_classes: int | None):
        super().__init__()
        embedding_dim = 4 * width  # Ho et al.: the timestep embedding is four times the base width
        self.time_features = width + width % 2  # sines and cosines come in pairs
        self.time_mlp = nn.Sequential(
            nn.Linear(self.time_features, embedding_dim), nn.SiLU(), nn.Linear(embedding_dim, embedding_dim)
        )
        # One row per class and a last one for "no label": the unconditional model of guidance.
        self.class_embedding = nn.Embedding(num_classes + 1, embedding_dim) if num_classes else None
        self.unet = nets.UNet(channels, channels, width, depth, embedding_dim)

    def forward(self, x: Tensor, steps: Tensor, labels: Tensor | None = None) -> Tensor:
        embedding = self.time_mlp(nets.sinusoidal_embedding(steps, self.time_features))  # (B, 4 * width)
        if self.class_embedding is not None:
            embedding = embedding + self.class_embedding(labels)
        # SiLU here as Ho et al.'s blocks apply it before their projection (UNetBlock does not).
        return self.unet(x, F.silu(embedding))  # (B, C, H, W)


class WeightAverage(nn.Module):
    """An exponential moving average of a network's weights, which Ho et al. sample with.

    Kept as buffers: saved by state_dict (so checkpoints carry it) and moved by .to(), but not
    among the model's parameters, so no optimizer steps it.
    """

    def __init__(self, network: nn.Module, decay: float):
        super().__init__()
        self.decay = decay
        self.names = [name for name, _ in network.named_parameters()]
        for name, parameter in network.named_parameters():
            self.register_buffer(name.replace(".", "__"), parameter.detach().clone())
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def weights(self) -> dict[str, Tensor]:
        """Parameter name -> averaged tensor, for torch.func.functional_call."""
        return {name: getattr(self, name.replace(".", "__")) for name in self.names}

    @torch.no_grad()
    def update(self, network: nn.Module) -> None:
        self.updates += 1
        # Warm-up (TensorFlow's ExponentialMovingAverage with num_updates): a fixed decay would
        # keep the random initial weights for thousands of steps, which short runs never leave.
        # A tensor, not a Python number: reading the count would make the step wait for the device.
        decay = ((1 + self.updates) / (10 + self.updates)).clamp(max=self.decay).float()
        for average, parameter in zip(self.weights().values(), network.parameters()):
            average.lerp_(parameter.detach(), 1 - decay)


# -- the model ------------------------------------------------------------------------------------
@register("ddpm")
class DDPM(GenerativeModel):
    """Denoising diffusion (Ho et al. 2020), DDPM or DDIM sampling, optional classifier-free guidance."""

    def __init__(self, config: DDPMConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        self.null_label = data.num_classes  # the class embedding's "no label" row
        classes = data.num_classes if config.conditional else None
        self.network = NoisePredictor(data.image_shape[0], config.width, config.depth, classes)
        self.average = WeightAverage(self.network, config.ema_decay) if config.ema_decay else None
        # Derived from the config, not learned: left out of checkpoints (persistent=False).
        alphas_cumprod = alphas_cumprod_of(beta_schedule(config.schedule, config.timesteps))
        self.register_buffer("alphas_cumprod", alphas_cumprod.float(), persistent=False)
        self.optimizers["network"] = adam(self.network.parameters(), lr)

    # -- helpers ---------------------------------------------------------------------------
    def _denoiser(self, x_t: Tensor, steps: Tensor, labels: Tensor | None) -> Tensor:
        """The network with the weights that sample: the average when there is one."""
        if self.average is None:
            return self.network(x_t, steps, labels)
        return torch.func.functional_call(self.network, self.average.weights(), (x_t, steps, labels))

    def _noise_predictor(self, labels: Tensor | None) -> NoisePrediction:
        guidance = self.config.guidance if labels is not None else 0.0

        def predict(x_t: Tensor, t: int) -> Tensor:
            steps = torch.full((len(x_t),), t, dtype=torch.long, device=self.device)
            with self.autocast():
                if guidance == 0:
                    return self._denoiser(x_t, steps, labels).float()
                # One pass over the batch twice: with its labels, and with the "no label" row.
                unlabelled = torch.full_like(labels, self.null_label)
                both = self._denoiser(torch.cat([x_t, x_t]), torch.cat([steps, steps]), torch.cat([labels, unlabelled]))
            conditional, unconditional = both.float().chunk(2)
            return guided_noise(conditional, unconditional, guidance)

        return predict

    def _sampling_labels(self, count: int, labels: Tensor | None) -> Tensor | None:
        if not self.config.conditional:
            return None
        if labels is not None:
            return labels.to(self.device)
        return torch.arange(count, device=self.device) % self.data.num_classes  # every class in turn

    def _generate(
        self, count: int, generator: torch.Generator | None, labels: Tensor | None,
        trajectory: list[Tensor] | None = None,
    ) -> Tensor:
        """(count, C, H, W) samples in [-1, 1] by the configured sampler."""
        predict = self._noise_predictor(self._sampling_labels(count, labels))
        x = torch.randn((count, *self.data.image_shape), generator=generator, device=self.device)  # x_T
        if self.config.sampler == "ddpm":
            return ddpm_sample(predict, x, self.alphas_cumprod, generator, trajectory)
        steps = ddim_timesteps(self.config.timesteps, self.config.sample_steps)
        return ddim_sample(predict, x, self.alphas_cumprod, steps, trajectory)

    # -- the model's interface ---------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        x0 = batch.images * 2 - 1  # (B, C, H, W) in [-1, 1]
        steps = torch.randint(0, self.config.timesteps, (len(x0),), device=self.device)
        noise = torch.randn_like(x0)
        labels = None
        if self.config.conditional:
            labels = drop_labels(batch.labels, self.config.cond_drop, self.null_label)
        with self.autocast():
            predicted = self.network(q_sample(x0, steps, noise, self.alphas_cumprod), steps, labels)
        loss = noise_prediction_error(predicted, noise).mean()
        self.optimize(self.optimizers["network"], loss)
        if self.average is not None:
            self.average.update(self.network)
        return {"loss": loss.detach()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        """The noise-prediction loss of the sampling weights, at the same steps and noise every call.

        The loss at random t varies more from draw to draw than between close epochs: a fixed
        draw makes epochs (and trials) comparable.
        """
        draws = torch.Generator(device=self.device).manual_seed(0)
        total = torch.zeros((), device=self.device)
        count = 0
        for batch in batches:
            x0 = batch.images * 2 - 1
            steps = torch.randint(0, self.config.timesteps, (len(x0),), generator=draws, device=self.device)
            noise = torch.randn(x0.shape, generator=draws, device=self.device)
            labels = batch.labels if self.config.conditional else None
            with self.autocast():
                predicted = self._denoiser(q_sample(x0, steps, noise, self.alphas_cumprod), steps, labels)
            total += noise_prediction_error(predicted, noise).sum()
            count += len(x0)
        return {"loss": float(total) / count}

    @torch.inference_mode()
    def sample(self, count: int, generator: torch.Generator | None = None, labels: Tensor | None = None) -> Tensor:
        """(count, C, H, W) in [0, 1]; every random number from `generator`.

        labels: conditional models only, the class of each sample (default: 0, 1, 2, ... in turn).
        """
        return _unit_range(self._generate(count, generator, labels))

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        """trajectory: samples from x_T to x_0; denoising: val images noised at rising t over the
        network's x_0 for each; by_class (conditional): a row of samples per class."""
        from models.grids import make_grid

        draws = torch.Generator(device=self.device).manual_seed(0)
        states: list[Tensor] = []
        self._generate(TRAJECTORY_ROWS, draws, None, states)
        shown = torch.linspace(0, len(states) - 1, TRAJECTORY_FRAMES).round().long().tolist()
        frames = torch.stack([states[index] for index in shown], dim=1)  # (rows, frames, C, H, W)
        grids = {"trajectory": make_grid(_unit_range(frames.flatten(0, 1)), nrow=TRAJECTORY_FRAMES)}

        images = batch.images[:DENOISING_IMAGES] * 2 - 1
        count = len(images)
        levels = torch.linspace(0, self.config.timesteps - 1, DENOISING_LEVELS, device=self.device).round().long()
        x0 = images.repeat_interleave(DENOISING_LEVELS, dim=0)  # (count * levels, C, H, W)
        steps = levels.repeat(count)
        noise = torch.randn(x0.shape, generator=draws, device=self.device)
        x_t = q_sample(x0, steps, noise, self.alphas_cumprod)
        labels = None
        if self.config.conditional and batch.labels is not None:
            labels = batch.labels[:count].repeat_interleave(DENOISING_LEVELS)
        with self.autocast():
            predicted = self._denoiser(x_t, steps, labels).float()
        denoised = predict_x0(x_t, steps, predicted, self.alphas_cumprod)
        rows = torch.stack([x_t, denoised]).unflatten(1, (count, DENOISING_LEVELS)).transpose(0, 1)
        grids["denoising"] = make_grid(_unit_range(rows.flatten(0, 2)), nrow=DENOISING_LEVELS)

        if self.config.conditional:
            classes = self.data.num_classes
            labels = torch.arange(classes, device=self.device).repeat_interleave(10)  # a row per class
            samples = self._generate(len(labels), torch.Generator(device=self.device).manual_seed(0), labels)
            grids["by_class"] = make_grid(_unit_range(samples), nrow=10)
        return grids


def _unit_range(images: Tensor) -> Tensor:
    """[-1, 1] diffusion space -> [0, 1] pixels (noisy states clipped for display)."""
    return ((images.float() + 1) / 2).clamp(0, 1)
