"""GANs: the original, DCGAN, LSGAN, WGAN, WGAN-GP and hinge, optionally class-conditional.

One class covers the variants: they differ in their loss pair (models.losses), in what keeps
the critic in check (weight clipping, a gradient penalty) and in how often the critic steps
per generator step. Images go to the networks in [-1, 1] (the generator ends in tanh) and
come back from sample() in [0, 1].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models import losses, nets
from models.base import Batch, DataInfo, GenerativeModel, adam
from models.cards import GANConfig, gan_arch, gan_optimizer
from models.registry import register


def _optimizer(parameters, kind: str, lr: float, betas: tuple[float, float] | None) -> torch.optim.Optimizer:
    if kind == "rmsprop":  # WGAN's (Arjovsky et al. 2017); torch's alpha 0.99, as their reference code
        return torch.optim.RMSprop(parameters, lr=lr)
    return adam(parameters, lr, betas)


class _Conditioned(nn.Module):
    """A network that may also see a one-hot class label.

    as_channels: the label as constant image channels (conv critics); otherwise the inputs are
    flattened and the label appended (z for generators, pixels for MLP critics).
    """

    def __init__(self, network: nn.Module, num_classes: int | None, as_channels: bool):
        super().__init__()
        self.network, self.num_classes, self.as_channels = network, num_classes, as_channels

    def forward(self, inputs: Tensor, labels: Tensor | None = None) -> Tensor:
        if not self.as_channels:
            inputs = inputs.flatten(1)
        if self.num_classes is None:
            return self.network(inputs)
        one_hot = F.one_hot(labels, self.num_classes).to(inputs.dtype)
        if self.as_channels:
            one_hot = one_hot[:, :, None, None].expand(-1, -1, *inputs.shape[-2:])
        return self.network(torch.cat([inputs, one_hot], dim=1))


@register("gan")
class GAN(GenerativeModel):
    """GAN family: gan, dcgan, lsgan, wgan, wgan-gp, hinge; optionally conditional."""

    def __init__(self, config: GANConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        arch = gan_arch(config)
        classes = data.num_classes if config.conditional else None
        extra = classes or 0
        channels, height, width = data.image_shape
        if arch == "mlp":
            generator = nets.mlp_generator(config.latent_dim + extra, 8 * config.width, data.image_shape)
            critic = nets.mlp_critic(channels * height * width + extra, 8 * config.width)
        else:
            generator = nets.conv_generator(config.latent_dim + extra, config.width, data.image_shape)
            # WGAN-GP's penalty is per sample: batch norm in the critic would couple the samples.
            norm = "layer" if config.variant == "wgan-gp" else "batch"
            critic = nets.conv_critic((channels + extra, height, width), config.width, norm)
        self.generator = _Conditioned(generator, classes, as_channels=False)
        self.critic = _Conditioned(critic, classes, as_channels=arch == "conv")
        # Nulls are the variant's paper's (models.cards.PAPER_DEFAULTS), but the learning rates:
        # null lr_g/lr_d take train.lr (`lr`), so that a sweep over train.lr reaches a GAN.
        setting = gan_optimizer(config)
        self.optimizers["generator"] = _optimizer(self.generator.parameters(), setting.kind, config.lr_g or lr, setting.betas)
        self.optimizers["critic"] = _optimizer(self.critic.parameters(), setting.kind, config.lr_d or lr, setting.betas)
        self.n_critic = setting.n_critic
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def networks_to_compile(self) -> dict[str, nn.Module]:
        # WGAN-GP's penalty differentiates through the critic twice (create_graph=True), which
        # compiled backward graphs do not support: its critic runs uncompiled.
        networks = super().networks_to_compile()
        if self.config.variant == "wgan-gp":
            networks.pop("critic")
        return networks

    # -- helpers ---------------------------------------------------------------------------
    def _labels_for(self, count: int, batch: Batch | None = None) -> Tensor | None:
        if not self.config.conditional:
            return None
        if batch is not None and batch.labels is not None:
            return batch.labels
        return torch.arange(count, device=self.device) % self.data.num_classes

    def _generate(self, count: int, labels: Tensor | None, generator: torch.Generator | None = None) -> Tensor:
        z = torch.randn(count, self.config.latent_dim, generator=generator, device=self.device)
        with self.autocast():
            return self.generator(z, labels)  # (B, C, H, W) in [-1, 1]

    def _judge(self, images: Tensor, labels: Tensor | None) -> Tensor:
        if self.config.instance_noise:
            images = images + self.config.instance_noise * torch.randn_like(images)
        with self.autocast():
            return self.critic(images, labels).float().flatten()

    def _critic_terms(self, real: Tensor, labels: Tensor | None, fake: Tensor | None = None) -> dict[str, Tensor]:
        fake = (self._generate(len(real), labels) if fake is None else fake).float().detach()
        real_scores, fake_scores = self._judge(real, labels), self._judge(fake, labels)
        real_label = 1.0 - self.config.label_smoothing
        terms = {
            "d_loss": losses.discriminator_loss(self.config.variant, real_scores, fake_scores, real_label),
            "d_real": self._readable(real_scores),
            "d_fake": self._readable(fake_scores),
        }
        if self.config.variant == "wgan-gp":
            penalty = losses.gradient_penalty(self.critic, real, fake, labels)
            terms["gp"] = penalty
            terms["d_loss"] = terms["d_loss"] + self.config.gp_lambda * penalty
        return terms

    def _readable(self, scores: Tensor) -> Tensor:
        """D(x) as people read it: a probability for the BCE family, the raw score otherwise."""
        if self.config.variant in ("gan", "dcgan"):
            return torch.sigmoid(scores).mean()
        return scores.mean()

    # -- the model's interface ---------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One critic step and, every n_critic calls, one generator step (its loss reported then).

        One batch of fakes serves both steps, as in DCGAN's reference loop: the critic sees it
        detached, the generator's step then backpropagates through it.
        """
        self.steps += 1
        generator_due = int(self.steps) % self.n_critic == 0
        labels = self._labels_for(len(batch.images), batch)
        with torch.set_grad_enabled(generator_due):
            fake = self._generate(len(batch.images), labels)
        terms = self.critic_step(batch, fake)
        if generator_due:
            terms |= self.generator_step(batch, fake)
        return terms

    def critic_step(self, batch: Batch, fake: Tensor | None = None) -> dict[str, Tensor]:
        real = batch.images * 2 - 1
        terms = self._critic_terms(real, self._labels_for(len(real), batch), fake)
        self.optimize(self.optimizers["critic"], terms["d_loss"])
        if self.config.variant == "wgan":
            with torch.no_grad():
                for parameter in self.critic.parameters():
                    parameter.clamp_(-self.config.clip, self.config.clip)
        return {name: value.detach() for name, value in terms.items()}

    def generator_step(self, batch: Batch, fake: Tensor | None = None) -> dict[str, Tensor]:
        labels = self._labels_for(len(batch.images), batch)
        fake = self._generate(len(batch.images), labels) if fake is None else fake
        # The critic's weight gradients would be computed and thrown away here: only the
        # gradient through it, to the generator, is wanted (saves a third of its backward).
        self.critic.requires_grad_(False)
        try:
            loss = losses.generator_loss(self.config.variant, self._judge(fake.float(), labels))
            self.optimize(self.optimizers["generator"], loss)
        finally:
            self.critic.requires_grad_(True)
        return {"g_loss": loss.detach()}

    def evaluate(self, batches) -> dict[str, float]:
        sums: dict[str, Tensor] = {}
        count = 0
        # wgan-gp's penalty needs gradients (nothing is stepped); every other variant evaluates
        # under inference_mode, building no graph.
        with torch.inference_mode(self.config.variant != "wgan-gp"):
            for batch in batches:
                real = batch.images * 2 - 1
                labels = self._labels_for(len(real), batch)
                terms = self._critic_terms(real, labels)
                with torch.no_grad():
                    fake = self._generate(len(real), labels)
                    terms["g_loss"] = losses.generator_loss(self.config.variant, self._judge(fake.float(), labels))
                for name, value in terms.items():  # summed on the device: one host sync at the end
                    sums[name] = sums.get(name, 0) + value.detach().float() * len(real)
                count += len(real)
        return {name: float(total) / count for name, total in sums.items()}

    @torch.inference_mode()
    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        images = self._generate(count, self._labels_for(count), generator)
        return (images.float() + 1) / 2

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        if not self.config.conditional:
            return {}
        from models.grids import make_grid

        classes = self.data.num_classes
        labels = torch.arange(classes, device=self.device).repeat_interleave(10)  # a row per class
        noise = torch.Generator(device=self.device).manual_seed(0)
        images = (self._generate(len(labels), labels, noise).float() + 1) / 2
        return {"by_class": make_grid(images, nrow=10)}
