"""Image-to-image models: U-Net super-resolution, pix2pix and CycleGAN.

They translate rather than generate (`generates = False`): a batch's images are the inputs and
its targets the wanted outputs (paired data) or a second domain (unpaired data). All three use
the one U-Net of models.nets; the two GANs judge with PatchGAN critics.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from models import losses, nets
from models.base import Batch, DataInfo, GenerativeModel, adam
from models.cards import CycleGANConfig, Pix2PixConfig, UNetSRConfig, lpips_measured
from models.grids import make_grid
from models.lpips import lpips, lpips_network
from models.perceptual import vgg_feature_layers
from models.registry import register
from models.vgg_weights import find_vgg_weights


def image_quality(prediction: Tensor, target: Tensor) -> dict[str, Tensor]:
    """PSNR (dB) and SSIM per image (B,), of the prediction clipped to the valid range."""
    prediction = prediction.float().clamp(0, 1)
    return {"psnr": losses.psnr(prediction, target), "ssim": losses.ssim(prediction, target)}


def _mean_over(batches, per_image) -> dict[str, float]:
    """Means over every image of `batches` of the (B,) values per_image(batch) returns."""
    sums: dict[str, Tensor] = {}
    count = 0
    for batch in batches:
        for name, value in per_image(batch).items():
            sums[name] = sums.get(name, 0) + value.float().sum()
        count += len(batch.images)
    return {name: float(total) / count for name, total in sums.items()}


def _rows(*rows: Tensor) -> Tensor:
    """Image rows of one batch each, stacked into one grid, one column per image."""
    return make_grid(torch.cat([row.float().clamp(0, 1) for row in rows]), nrow=len(rows[0]))


class Translator(GenerativeModel):
    """What the three share: no sampling from noise, pictures of inputs against outputs."""

    def __init__(self, config, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        # LPIPS's network when the model measures it (unet_sr, pix2pix: _measure_lpips). Held
        # in a list, so not a registered module: frozen, never trained, and too big to copy
        # into every checkpoint (VGG-16's features are 59 MB).
        self._lpips_network: list[torch.nn.Module] = []

    def _measure_lpips(self, config: UNetSRConfig | Pix2PixConfig) -> None:
        if lpips_measured(config):
            self._lpips_network = [lpips_network(find_vgg_weights(config.vgg_path, "model.lpips"))]

    def perceptual_distance(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """{"lpips": (B,)} when the model measures LPIPS, else nothing."""
        if not self._lpips_network:
            return {}
        self._lpips_network[0] = self._lpips_network[0].to(output.device)
        return {"lpips": lpips(output, target, self._lpips_network[0])}

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        raise ValueError(f"{type(self).__name__} translates images; it has nothing to sample from noise")


# -- U-Net super-resolution ----------------------------------------------------------------------


@register("unet_sr")
class UNetSuperResolution(Translator):
    """U-Net super-resolution: the degraded image in, the clean one out, trained on a loss mix."""

    def __init__(self, config: UNetSRConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        channels = data.image_shape[0]
        self.unet = nets.UNet(channels, channels, config.width, config.depth)
        # Held in a list, so not a registered module: frozen, never trained, and too big to copy
        # into every checkpoint (VGG-16's features are 59 MB).
        self._feature_layers = []
        if config.loss.get("perceptual", 0) > 0:
            self._feature_layers.append(vgg_feature_layers(find_vgg_weights(config.vgg_path)))
        self._measure_lpips(config)
        self.optimizers["unet"] = adam(self.unet.parameters(), lr)

    def forward(self, inputs: Tensor) -> Tensor:
        # Residual: the network learns what bicubic upscaling misses, and starts as bicubic.
        with self.autocast():
            return inputs + self.unet(inputs).float()

    def terms(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        """Each term of the loss mix per image (B,), and their weighted sum as "loss"."""
        values = {}
        for name in self.config.loss:
            if name == "perceptual":
                self._feature_layers[0] = self._feature_layers[0].to(output.device)
                values[name] = losses.perceptual(output, target, self._feature_layers[0])
            else:
                values[name] = losses.IMAGE_TERMS[name](output, target)
        values["loss"] = sum(self.config.loss[name] * value for name, value in values.items())
        return values

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        values = self.terms(self(batch.images), batch.targets)
        self.optimize(self.optimizers["unet"], values["loss"].mean())
        return {name: value.detach().mean() for name, value in values.items()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        def per_image(batch: Batch) -> dict[str, Tensor]:
            output = self(batch.images)
            values = self.terms(output, batch.targets) | image_quality(output, batch.targets)
            values |= self.perceptual_distance(output, batch.targets)
            bicubic = image_quality(batch.images, batch.targets)  # the input is the bicubic upscale
            return values | {"psnr_bicubic": bicubic["psnr"], "ssim_bicubic": bicubic["ssim"]}

        metrics = _mean_over(batches, per_image)
        metrics["psnr_gain"] = metrics["psnr"] - metrics["psnr_bicubic"]
        return metrics

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        """Rows: the low-resolution input as its pixels, its bicubic upscale, the output, the target."""
        scale = self.data.scale
        low = F.interpolate(batch.targets, scale_factor=1 / scale, mode="area") if scale > 1 else batch.images
        pixels = F.interpolate(low, size=batch.images.shape[-2:], mode="nearest")
        return {"input_bicubic_output_target": _rows(pixels, batch.images, self(batch.images), batch.targets)}


# -- pix2pix --------------------------------------------------------------------------------------




class _TwoPlayer(Translator):
    def _step(self, optimizer: str, loss: Tensor, critics: list) -> None:
        # The generator's step must not train the critics: their gradients are off meanwhile.
        for critic in critics:
            critic.requires_grad_(False)
        self.optimize(self.optimizers[optimizer], loss)
        for critic in critics:
            critic.requires_grad_(True)


@register("pix2pix")
class Pix2Pix(_TwoPlayer):
    """pix2pix (Isola et al. 2017): a U-Net generator judged by a PatchGAN that sees input and output."""

    def __init__(self, config: Pix2PixConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        channels = data.image_shape[0]
        self.generator = nets.UNet(channels, channels, config.width, config.depth)
        self.discriminator = nets.patch_critic(2 * channels, config.disc_width, config.disc_layers)
        # The paper's optimizer settings: Adam with beta1 = 0.5 for both players.
        self.optimizers["generator"] = adam(self.generator.parameters(), lr, betas=(0.5, 0.999))
        self.optimizers["discriminator"] = adam(self.discriminator.parameters(), config.lr_d or lr, betas=(0.5, 0.999))
        self._measure_lpips(config)

    def forward(self, inputs: Tensor) -> Tensor:
        with self.autocast():
            return torch.sigmoid(self.generator(inputs).float())

    def _judge(self, inputs: Tensor, outputs: Tensor) -> Tensor:
        with self.autocast():
            return self.discriminator(torch.cat([inputs, outputs], dim=1)).float()

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        inputs, targets = batch.images, batch.targets
        fake = self(inputs)
        d_loss = losses.discriminator_loss(self.config.variant, self._judge(inputs, targets), self._judge(inputs, fake.detach()))
        self.optimize(self.optimizers["discriminator"], d_loss)
        g_adv = losses.generator_loss(self.config.variant, self._judge(inputs, fake))
        l1 = losses.mean_absolute_error(fake, targets).mean()
        loss = g_adv + self.config.l1_weight * l1
        self._step("generator", loss, [self.discriminator])
        return {name: value.detach() for name, value in {"loss": loss, "g_adv": g_adv, "l1": l1, "d_loss": d_loss}.items()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        def per_image(batch: Batch) -> dict[str, Tensor]:
            inputs, targets = batch.images, batch.targets
            fake = self(inputs)
            real_scores, fake_scores = self._judge(inputs, targets), self._judge(inputs, fake)
            count = len(inputs)
            d_loss = losses.discriminator_loss(self.config.variant, real_scores, fake_scores).expand(count)
            g_adv = losses.generator_loss(self.config.variant, fake_scores).expand(count)
            l1 = losses.mean_absolute_error(fake, targets)
            return {"loss": g_adv + self.config.l1_weight * l1, "g_adv": g_adv, "l1": l1, "d_loss": d_loss,
                    **image_quality(fake, targets), **self.perceptual_distance(fake, targets)}

        return _mean_over(batches, per_image)

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        return {"input_output_target": _rows(batch.images, self(batch.images), batch.targets)}


# -- CycleGAN -------------------------------------------------------------------------------------


class ImagePool(torch.nn.Module):
    """The last `size` generated images; the discriminator sees, per image, with probability
    one half, an older fake in its place. Buffers, so a checkpoint carries the pool."""

    def __init__(self, size: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))
        self._filled: int | None = None  # `count` as a Python int, so a step never waits for the device

    def _load_from_state_dict(self, *args, **kwargs):
        super()._load_from_state_dict(*args, **kwargs)
        self._filled = None  # a checkpoint brought its own count: read it again on first use

    def exchange(self, fakes: Tensor) -> Tensor:
        """The images to judge: fresh fakes, some swapped with stored ones (which the fresh replace)."""
        fakes = fakes.detach().float()
        if self.size == 0:
            return fakes
        if self._filled is None:
            self._filled = int(self.count)  # once after building or loading
        if self._filled < self.size:  # filling up: store them, judge the fresh ones
            take = min(self.size - self._filled, len(fakes))
            self.images[self._filled : self._filled + take] = fakes[:take]
            self._filled += take
            self.count.fill_(self._filled)
            return fakes
        # Full: each image, with probability one half, swaps places with a stored one. Written
        # with where() rather than a boolean mask, which would wait for the device to count it.
        swap = (torch.rand(len(fakes), device=fakes.device) < 0.5)[:, None, None, None]
        slots = torch.randint(self.size, (len(fakes),), device=fakes.device)
        stored = self.images[slots]
        self.images[slots] = torch.where(swap, fakes, stored)
        return torch.where(swap, stored, fakes)


@register("cyclegan")
class CycleGAN(_TwoPlayer):
    """CycleGAN (Zhu et al. 2017): two U-Net generators A->B and B->A, two PatchGANs, LSGAN losses,
    cycle-consistency and identity terms, and a pool of past fakes."""

    def __init__(self, config: CycleGANConfig, data: DataInfo, lr: float):
        super().__init__(config, data, lr)
        channels = data.image_shape[0]
        self.a_to_b = nets.UNet(channels, channels, config.width, config.depth)
        self.b_to_a = nets.UNet(channels, channels, config.width, config.depth)
        self.critic_a = nets.patch_critic(channels, config.disc_width, config.disc_layers)
        self.critic_b = nets.patch_critic(channels, config.disc_width, config.disc_layers)
        self.pool_a = ImagePool(config.pool_size, data.image_shape)
        self.pool_b = ImagePool(config.pool_size, data.image_shape)
        generators = [*self.a_to_b.parameters(), *self.b_to_a.parameters()]
        critics = [*self.critic_a.parameters(), *self.critic_b.parameters()]
        self.optimizers["generators"] = adam(generators, lr, betas=(0.5, 0.999))
        self.optimizers["critics"] = adam(critics, config.lr_d or lr, betas=(0.5, 0.999))

    def translate(self, network, images: Tensor) -> Tensor:
        with self.autocast():
            return torch.sigmoid(network(images).float())

    def _score(self, critic, images: Tensor) -> Tensor:
        with self.autocast():
            return critic(images).float()

    def generator_terms(self, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        """The generators' loss and its parts, per image (B,); also the fakes, under "_fake_*"."""
        fake_b, fake_a = self.translate(self.a_to_b, a), self.translate(self.b_to_a, b)
        per_image = lambda scores: 0.5 * (scores - 1).square().flatten(1).mean(dim=1)  # LSGAN, per image
        g_adv = per_image(self._score(self.critic_b, fake_b)) + per_image(self._score(self.critic_a, fake_a))
        cycle = losses.mean_absolute_error(self.translate(self.b_to_a, fake_b), a) + \
            losses.mean_absolute_error(self.translate(self.a_to_b, fake_a), b)
        terms = {"g_adv": g_adv, "cycle": cycle}
        loss = g_adv + self.config.cycle_weight * cycle
        if self.config.identity_weight > 0:
            # A generator given an image of its own output domain should leave it alone.
            identity = losses.mean_absolute_error(self.translate(self.a_to_b, b), b) + \
                losses.mean_absolute_error(self.translate(self.b_to_a, a), a)
            terms["identity"] = identity
            loss = loss + self.config.identity_weight * self.config.cycle_weight * identity
        else:
            terms["identity"] = torch.zeros_like(cycle)
        return {"loss": loss, **terms, "_fake_a": fake_a, "_fake_b": fake_b}

    def critic_loss(self, a: Tensor, b: Tensor, fake_a: Tensor, fake_b: Tensor) -> Tensor:
        judged = lambda critic, real, fake: losses.discriminator_loss(
            "lsgan", self._score(critic, real), self._score(critic, fake.detach())
        )
        return judged(self.critic_a, a, fake_a) + judged(self.critic_b, b, fake_b)

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        a, b = batch.images, batch.targets
        terms = self.generator_terms(a, b)
        self._step("generators", terms["loss"].mean(), [self.critic_a, self.critic_b])
        d_loss = self.critic_loss(a, b, self.pool_a.exchange(terms["_fake_a"]), self.pool_b.exchange(terms["_fake_b"]))
        self.optimize(self.optimizers["critics"], d_loss)
        reported = {name: value.detach().mean() for name, value in terms.items() if not name.startswith("_")}
        return reported | {"d_loss": d_loss.detach()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        def per_image(batch: Batch) -> dict[str, Tensor]:
            a, b = batch.images, batch.targets[: len(batch.images)]
            terms = self.generator_terms(a, b)
            d_loss = self.critic_loss(a, b, terms["_fake_a"], terms["_fake_b"]).expand(len(a))
            return {name: value for name, value in terms.items() if not name.startswith("_")} | {"d_loss": d_loss}

        return _mean_over(batches, per_image)

    @torch.inference_mode()
    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        """A -> B -> A and B -> A -> B, three rows each."""
        a, b = batch.images, batch.targets
        fake_b, fake_a = self.translate(self.a_to_b, a), self.translate(self.b_to_a, b)
        return {
            "cycle_a_b_a": _rows(a, fake_b, self.translate(self.b_to_a, fake_b)),
            "cycle_b_a_b": _rows(b, fake_a, self.translate(self.a_to_b, fake_a)),
        }
