"""Every model as the spec sees it, without torch: its config (the spec's `model:` section) and
its card (the metric a sweep optimizes by default, the data it trains on, what it reports, what
may differ inside a pack, and the checks that need only the config and the data's shape).

`gensweep validate` checks a spec with these alone, in a fraction of a second; the networks, in
the module each card names, are imported only where a model is built (models.zoo). Each model
class takes its card's attributes (models.registry.register), so none is written twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from models.config import config
from models.data_info import DataInfo
from models.vgg_weights import VGG16_FILE, find_vgg_weights, hub_weights_path


@dataclass(frozen=True)
class ModelCard:
    name: str
    config_class: type
    summary: str  # one line, for `gensweep models`
    reported_metrics: Callable[[Any], tuple[str, ...]]  # config -> the names evaluate() reports
    check: Callable[[Any, DataInfo], None]  # raises ValueError("model.KEY: why") for a misfit
    default_metric: str = "val/loss"  # what a sweep optimizes when its spec does not say
    default_mode: str = "min"  # and in which direction
    pairing: str | None = None  # the data it trains on: DataInfo.pairing must match
    generates: bool = True  # sample() draws new images (image-to-image models translate instead)
    # The train_step value that falls as the model fits a fixed batch; None for two-player
    # models, whose players are tested one at a time (tests/models_tests/test_gan.py).
    training_signal: str | None = "loss"
    # Packing (models/packing.py): the attributes that may differ between the members of a pack,
    # besides the learning rate, as the config fields of the same names. None: not packable.
    pack_fields: tuple[str, ...] | None = None
    # config -> lines `gensweep validate` and `run` print about what the model will not measure
    # and why (the metric is absent from reported_metrics then).
    notes: Callable[[Any], tuple[str, ...]] = lambda config: ()
    # A plugin's card (models/plugins.py): the module whose import defines the model class and
    # registers it (@models.registry.register(CARD)). Built-ins: None (models.zoo imports theirs).
    model_module: str | None = None


# -- checks a config and a data shape allow ------------------------------------------------------
_WANTED = {None: "images alone (digits, mnist, folder)", "paired": "paired data (data.name: paired)",
           "unpaired": "two domains (data.name: unpaired)"}


def check_pairing(pairing: str | None, data: DataInfo) -> None:
    if data.pairing != pairing:
        raise ValueError(f"model.name: this model trains on {_WANTED[pairing]}, not on {_WANTED[data.pairing]}")


def check_conv_shape(image_shape: tuple[int, int, int], arch_key: str) -> None:
    _, height, width = image_shape
    if height % 4 or width % 4:
        raise ValueError(
            f"{arch_key}: conv needs image sides divisible by 4 (two stride-2 stages), "
            f"got {height}x{width}; use arch: mlp or resize the data"
        )


def check_unet_shape(image_shape: tuple[int, int, int], depth: int, key: str = "model.depth") -> None:
    _, height, width = image_shape
    if height % 2**depth or width % 2**depth:
        raise ValueError(
            f"{key}: {depth} halvings need image sides divisible by {2**depth}, got {height}x{width}; "
            "use a smaller depth or resize the data"
        )


def check_labels(conditional: bool, data: DataInfo) -> None:
    if conditional and data.num_classes is None:
        raise ValueError("model.conditional: needs labelled data (digits or mnist), this data has no labels")


# -- autoencoders (models/autoencoders.py, models/vae.py) -------------------------------------------
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


@config
class AAEConfig(AEConfig):
    adv_weight: float = Field(1.0, ge=0, description="weight of the encoder's adversarial term")
    disc_hidden: int = Field(256, ge=2, description="width of the latent discriminator")
    lr_d: float | None = Field(None, gt=0, description="discriminator learning rate; null: train.lr")


@config
class DAEConfig(AEConfig):
    corruption: Literal["noise", "mask", "stamp"] = Field(
        "noise", description="noise: Gaussian; mask: pixels dropped; stamp: a date stamp printed over"
    )
    noise_std: float = Field(0.3, ge=0, description="noise: std of the added Gaussian noise")
    mask_fraction: float = Field(0.25, ge=0, lt=1, description="mask: share of pixels set to 0")
    stamp_intensity: float = Field(1.0, gt=0, le=1, description="stamp: brightness of the printed text")


@config
class VAEConfig(AEConfig):
    latent_dim: int = Field(8, ge=1, description="size of the latent code z")
    arch: Literal["mlp", "conv"] = Field(
        "mlp", description="mlp: 784-400-z-400-784 as in the paper; conv: two stride-2 conv stages"
    )
    beta: float = Field(1.0, ge=0, description="weight of the KL term; 1 is the plain ELBO")
    beta_warmup: int = Field(0, ge=0, description="epochs over which beta rises linearly from 0")
    recon: Literal["bce", "mse"] = Field(
        "bce", description="the likelihood term: bce (Bernoulli pixels, nats) or mse (summed)"
    )
    loss: LossMix = Field(
        default_factory=dict, description="extra weighted terms added to the likelihood (mse, l1, ssim, hfen)"
    )


def _check_autoencoder(config: AEConfig, data: DataInfo) -> None:
    check_pairing(None, data)
    if config.arch == "conv":
        check_conv_shape(data.image_shape, "model.arch")


def _autoencoder_metrics(config: AEConfig) -> tuple[str, ...]:
    return ("loss", *sorted(config.loss))


AE = ModelCard(
    "ae", AEConfig, "Autoencoder with a reconstruction loss mix; samples from a Gaussian fitted to its codes.",
    _autoencoder_metrics, _check_autoencoder,
    pack_fields=(),  # packs differ only in learning rate
)
AAE = ModelCard(
    "aae", AAEConfig, "Adversarial autoencoder (Makhzani et al. 2016): a discriminator pulls codes to N(0, I).",
    lambda config: (*_autoencoder_metrics(config), "adv", "d_loss"), _check_autoencoder,
    pack_fields=None,  # two optimizers, stepped in turn: not one packed step
)
DAE = ModelCard(
    "dae", DAEConfig, "Denoising autoencoder (Vincent et al. 2008): reconstructs clean images from damaged ones.",
    _autoencoder_metrics, _check_autoencoder, pack_fields=(),
)
VAE = ModelCard(
    "vae", VAEConfig, "Variational autoencoder (beta-VAE), MLP or convolutional.",
    lambda config: ("loss", "recon", "kl", "active_units", *sorted(config.loss)), _check_autoencoder,
    pack_fields=("beta",),  # a pack's members may differ in beta (and learning rate)
)


# -- GANs (models/gan.py) -------------------------------------------------------------------------
Variant = Literal["gan", "dcgan", "lsgan", "wgan", "wgan-gp", "hinge"]


@dataclass(frozen=True)
class PaperDefaults:
    """How a GAN variant's paper trains it: what GANConfig's null optimizer fields become."""

    optimizer: Literal["adam", "rmsprop"]
    lr: float  # shown, not applied: lr_g/lr_d null take train.lr (see GANConfig.lr_g)
    betas: tuple[float, float] | None  # Adam's (beta1, beta2); None for RMSprop
    n_critic: int  # critic steps per generator step
    cite: str


# One row per variant. Fields a spec leaves null take these; a value the spec sets wins.
PAPER_DEFAULTS: dict[str, PaperDefaults] = {
    # Goodfellow et al. 2014 trained MLPs with SGD + momentum and k = 1 critic step; no optimizer
    # setting of theirs carries over, so the original GAN takes the Adam settings the field
    # settled on since (DCGAN's), with their k = 1.
    "gan": PaperDefaults("adam", 2e-4, (0.5, 0.999), 1, "Goodfellow et al. 2014 (k=1); Adam as DCGAN"),
    # Radford et al. 2015, sec. 4: Adam, lr 0.0002, beta1 0.5 (0.9 oscillated); beta2 Adam's 0.999.
    "dcgan": PaperDefaults("adam", 2e-4, (0.5, 0.999), 1, "Radford et al. 2015"),
    # Mao et al. 2017, sec. 4: Adam, lr 0.0002, beta1 0.5, one D step per G step.
    "lsgan": PaperDefaults("adam", 2e-4, (0.5, 0.999), 1, "Mao et al. 2017"),
    # Arjovsky et al. 2017, Algorithm 1: RMSProp, lr 5e-5, n_critic 5, clip 0.01 (model.clip's
    # default); momentum methods such as Adam made their critic unstable (sec. 4).
    "wgan": PaperDefaults("rmsprop", 5e-5, None, 5, "Arjovsky et al. 2017, Algorithm 1"),
    # Gulrajani et al. 2017, Algorithm 1: Adam, lr 1e-4, beta1 0, beta2 0.9, n_critic 5, lambda 10
    # (model.gp_lambda's default).
    "wgan-gp": PaperDefaults("adam", 1e-4, (0.0, 0.9), 5, "Gulrajani et al. 2017, Algorithm 1"),
    # Miyato et al. 2018 (SN-GAN) ran the hinge loss under several settings; this is their
    # DCGAN-like one (Table 1, setting C: lr 0.0002, beta1 0.5, beta2 0.999, n_dis 1). Their
    # (0, 0.9) with n_dis 5 goes with spectrally normalized ResNet critics, which ours is not
    # (a batch-norm conv or MLP critic, like DCGAN's).
    "hinge": PaperDefaults("adam", 2e-4, (0.5, 0.999), 1, "Miyato et al. 2018, Table 1 setting C"),
}


def paper_defaults_lines() -> list[str]:
    """The table as `gensweep models` shows it, one line a variant."""
    lines = []
    for variant, row in PAPER_DEFAULTS.items():
        betas = f" betas ({row.betas[0]}, {row.betas[1]})" if row.betas else ""
        lines.append(f"{variant:<8} {row.optimizer} lr {row.lr:g}{betas} n_critic {row.n_critic}  ({row.cite})")
    return lines


@config
class GANConfig:
    variant: Variant = Field("dcgan", description="loss and critic: gan, dcgan, lsgan, wgan, wgan-gp, hinge")
    arch: Literal["auto", "mlp", "conv"] = Field("auto", description="auto: mlp for gan, conv for the others")
    latent_dim: int = Field(64, ge=1, description="size of the noise vector z")
    width: int = Field(64, ge=4, description="conv: channels of the first stage; mlp: hidden width / 8")
    conditional: bool = Field(False, description="cGAN: the class label goes into G and D (labelled data)")
    # None inside the Literal: `gensweep models` then lists it as adam|rmsprop|None.
    optimizer: Literal["adam", "rmsprop", None] = Field(  # noqa: PYI061
        None, description="both players' optimizer; null: the variant's paper's (rmsprop for wgan, else adam)")
    # The learning rates alone do not default to the paper's: a model is given train.lr and
    # cannot tell a spec's train.lr (set, or swept) from its default, and a swept train.lr that
    # a GAN ignored would be a silent no-op. The paper's rate is listed, to set as train.lr.
    lr_g: float | None = Field(None, gt=0, description="generator learning rate; null: train.lr (not the paper's, listed below)")
    lr_d: float | None = Field(None, gt=0, description="discriminator learning rate; null: train.lr")
    beta1: float | None = Field(None, ge=0, lt=1, description="Adam beta1; null: the variant's paper's (DCGAN 0.5, WGAN-GP 0)")
    beta2: float | None = Field(None, ge=0, lt=1, description="Adam beta2; null: the variant's paper's (DCGAN 0.999, WGAN-GP 0.9)")
    n_critic: int | None = Field(None, ge=1, description="critic steps per generator step; null: the variant's paper's (5 for wgan/wgan-gp, else 1)")
    clip: float = Field(0.01, gt=0, description="wgan: critic weights are clipped to [-clip, clip]")
    gp_lambda: float = Field(10.0, ge=0, description="wgan-gp: weight of the gradient penalty")
    label_smoothing: float = Field(0.0, ge=0, lt=0.5, description="one-sided: real label 1 - this (gan, dcgan, lsgan)")
    instance_noise: float = Field(0.0, ge=0, description="std of Gaussian noise added to D's inputs, real and fake")


@dataclass(frozen=True)
class GANOptimizer:
    """A GANConfig's optimizer settings, its nulls resolved from PAPER_DEFAULTS."""

    kind: Literal["adam", "rmsprop"]
    betas: tuple[float, float] | None  # None for RMSprop
    n_critic: int


def gan_optimizer(config: GANConfig) -> GANOptimizer:
    paper = PAPER_DEFAULTS[config.variant]
    kind = config.optimizer or paper.optimizer
    n_critic = config.n_critic or paper.n_critic
    if kind == "rmsprop":
        return GANOptimizer(kind, None, n_critic)
    paper_betas = paper.betas or (0.9, 0.999)  # Adam's own, for a variant whose paper used RMSprop
    beta1 = paper_betas[0] if config.beta1 is None else config.beta1
    beta2 = paper_betas[1] if config.beta2 is None else config.beta2
    return GANOptimizer(kind, (beta1, beta2), n_critic)


def gan_arch(config: GANConfig) -> str:
    return config.arch if config.arch != "auto" else ("mlp" if config.variant == "gan" else "conv")


def _check_gan(config: GANConfig, data: DataInfo) -> None:
    check_pairing(None, data)
    if gan_optimizer(config).kind == "rmsprop":
        for key in ("beta1", "beta2"):
            if getattr(config, key) is not None:
                why = "as its paper" if config.optimizer is None else "model.optimizer: rmsprop"
                raise ValueError(f"model.{key}: {config.variant} trains with rmsprop ({why}), which has no betas; "
                                 "set model.optimizer: adam to use them")
    check_labels(config.conditional, data)
    if gan_arch(config) == "conv":
        check_conv_shape(data.image_shape, "model.arch")


GAN = ModelCard(
    "gan", GANConfig, "GAN family: gan, dcgan, lsgan, wgan, wgan-gp, hinge; optionally conditional.",
    lambda config: ("d_loss", "g_loss", "d_real", "d_fake", *(("gp",) if config.variant == "wgan-gp" else ())),
    _check_gan,
    default_metric="val/fd",
    training_signal=None,  # a two-player game: neither loss need fall while both learn
)


# -- diffusion (models/diffusion.py) -----------------------------------------------------------------
@config
class DDPMConfig:
    width: int = Field(32, ge=4, description="U-Net channels at full resolution, doubled at each halving")
    depth: int = Field(2, ge=1, description="U-Net halvings (28x28 digits: at most 2)")
    timesteps: int = Field(
        200, ge=50, description="diffusion steps T; 200 rather than the paper's 1000 keeps DDPM sampling CPU-sized"
    )
    schedule: Literal["linear", "cosine"] = Field(
        "linear", description="linear: Ho et al.'s betas, rescaled to T steps; cosine: Nichol & Dhariwal 2021"
    )
    sampler: Literal["ddpm", "ddim"] = Field(
        "ddim", description="ddpm: ancestral, all T steps; ddim: deterministic (eta 0), sample_steps steps"
    )
    sample_steps: int = Field(20, ge=1, description="ddim: network evaluations per sample, evenly spaced over T")
    ema_decay: float = Field(
        0.999, ge=0, lt=1, description="samples and val loss use an exponential average of the weights; 0: off"
    )
    conditional: bool = Field(False, description="class-conditional with classifier-free guidance (labelled data)")
    cond_drop: float = Field(0.1, ge=0, lt=1, description="conditional: share of training labels dropped")
    guidance: float = Field(
        1.0, ge=0, description="conditional: w in (1 + w) eps(x, y) - w eps(x); 0: no guidance"
    )


def _check_ddpm(config: DDPMConfig, data: DataInfo) -> None:
    check_pairing(None, data)
    check_labels(config.conditional, data)
    check_unet_shape(data.image_shape, config.depth)
    if config.sampler == "ddim" and config.sample_steps > config.timesteps:
        raise ValueError(f"model.sample_steps: at most model.timesteps ({config.timesteps}), got {config.sample_steps}")


DDPM = ModelCard(
    "ddpm", DDPMConfig,
    "Denoising diffusion (Ho et al. 2020), DDPM or DDIM sampling, optional classifier-free guidance.",
    lambda config: ("loss",), _check_ddpm,
)


# -- image-to-image (models/translation.py) ----------------------------------------------------------
ImageTerm = Literal["mse", "l1", "ssim", "psnr", "hfen", "perceptual"]
ImageLossMix = dict[ImageTerm, Annotated[float, Field(ge=0)]]
# val LPIPS (models/lpips.py): true asks for it (no weights: the spec stops), false turns it off,
# auto measures it when the VGG-16 weights are on this machine and says so when they are not.
LpipsSwitch = Literal["auto", True, False]
LPIPS_DESCRIPTION = "val LPIPS (VGG-16) of output vs target; auto: when the VGG-16 weights are found, true: required"
LPIPS_MIN_SIDE = 16  # relu5_3, LPIPS's last layer, follows four 2x2 poolings: 16 pixels leave it 1


@config
class UNetSRConfig:
    width: int = Field(32, ge=4, description="channels of the first U-Net level (doubling per level)")
    depth: int = Field(2, ge=1, le=5, description="halvings in the U-Net; image sides must divide by 2^depth")
    loss: ImageLossMix = Field(
        default_factory=lambda: {"mse": 1.0}, min_length=1,
        description="weighted terms: mse, l1 (pixel means), ssim (1-SSIM), psnr (-dB), hfen, perceptual (VGG-16)",
    )
    vgg_path: str | None = Field(None, description="VGG-16 weights for `perceptual` and LPIPS (default: torch hub's cache)")
    lpips: LpipsSwitch = Field("auto", description=LPIPS_DESCRIPTION)


@config
class PatchGANTranslatorConfig:
    """What pix2pix and CycleGAN share: U-Net generators judged by PatchGAN critics."""

    width: int = Field(32, ge=4, description="channels of the generator's first U-Net level")
    depth: int = Field(2, ge=1, le=5, description="halvings in the generator's U-Net")
    disc_width: int = Field(32, ge=4, description="channels of the PatchGAN's first layer")
    disc_layers: int = Field(2, ge=1, le=4, description="stride-2 layers of the PatchGAN (patch size grows with it)")


@config
class Pix2PixConfig(PatchGANTranslatorConfig):
    variant: Literal["gan", "lsgan"] = Field("gan", description="adversarial loss: gan (BCE, the paper's) or lsgan")
    l1_weight: float = Field(100.0, ge=0, description="weight of the L1 term (100 in Isola et al. 2017)")
    lr_d: float | None = Field(None, gt=0, description="discriminator learning rate; null: train.lr")
    lpips: LpipsSwitch = Field("auto", description=LPIPS_DESCRIPTION)
    vgg_path: str | None = Field(None, description="VGG-16 weights for LPIPS (default: torch hub's cache)")


@config
class CycleGANConfig(PatchGANTranslatorConfig):
    cycle_weight: float = Field(10.0, ge=0, description="weight of the cycle-consistency L1 terms (lambda, 10)")
    identity_weight: float = Field(
        0.5, ge=0, description="identity term, as a share of cycle_weight (0.5 in the reference code)"
    )
    pool_size: int = Field(50, ge=0, description="past fakes kept for the discriminators (Shrivastava et al. 2017); 0: none")
    lr_d: float | None = Field(None, gt=0, description="discriminators' learning rate; null: train.lr")


def lpips_measured(config: UNetSRConfig | Pix2PixConfig) -> bool:
    """Whether evaluate() reports `lpips`: asked for or left auto, and the weights are there."""
    if config.lpips is False:
        return False
    if config.lpips is True:
        return True  # check_lpips stopped the spec if the weights are missing
    try:
        find_vgg_weights(config.vgg_path, "model.lpips")
    except ValueError:
        return False
    return True


def lpips_notes(config: UNetSRConfig | Pix2PixConfig) -> tuple[str, ...]:
    if config.lpips != "auto" or lpips_measured(config):
        return ()
    why = (f"model.lpips: auto: val/lpips not measured: no VGG-16 weights ({VGG16_FILE}) at {hub_weights_path()} "
           "nor model.vgg_path (gensweep downloads nothing; model.lpips: false silences this)")
    return (why,)


def check_lpips(config: UNetSRConfig | Pix2PixConfig, data: DataInfo) -> None:
    if config.lpips is True or (config.lpips == "auto" and config.vgg_path):
        find_vgg_weights(config.vgg_path, "model.lpips")  # asked for, or a file named: it must be there
    _, height, width = data.image_shape
    if lpips_measured(config) and min(height, width) < LPIPS_MIN_SIDE:
        raise ValueError(f"model.lpips: VGG-16 needs image sides of at least {LPIPS_MIN_SIDE} pixels, "
                         f"got {height}x{width}; set model.lpips: false")


def _check_unet_sr(config: UNetSRConfig, data: DataInfo) -> None:
    check_pairing("paired", data)
    check_unet_shape(data.image_shape, config.depth)
    if config.loss.get("perceptual", 0) > 0:
        find_vgg_weights(config.vgg_path)
    check_lpips(config, data)


def _translator_check(pairing: str) -> Callable[[PatchGANTranslatorConfig, DataInfo], None]:
    def check(config: PatchGANTranslatorConfig, data: DataInfo) -> None:
        check_pairing(pairing, data)
        check_unet_shape(data.image_shape, config.depth)

    return check


def _check_pix2pix(config: Pix2PixConfig, data: DataInfo) -> None:
    _translator_check("paired")(config, data)
    check_lpips(config, data)


# What the three share: they translate (no sampling from noise), ranked by PSNR by default.
_TRANSLATES = {"generates": False, "default_metric": "val/psnr", "default_mode": "max"}
UNET_SR = ModelCard(
    "unet_sr", UNetSRConfig,
    "U-Net super-resolution: the degraded image in, the clean one out, trained on a loss mix.",
    lambda config: ("loss", *sorted(config.loss), "psnr", "ssim", "psnr_bicubic", "ssim_bicubic", "psnr_gain",
                    *(("lpips",) if lpips_measured(config) else ())),
    _check_unet_sr, pairing="paired", **_TRANSLATES, notes=lpips_notes,
)
PIX2PIX = ModelCard(
    "pix2pix", Pix2PixConfig,
    "pix2pix (Isola et al. 2017): a U-Net generator judged by a PatchGAN that sees input and output.",
    lambda config: ("loss", "g_adv", "l1", "d_loss", "psnr", "ssim", *(("lpips",) if lpips_measured(config) else ())),
    _check_pix2pix, pairing="paired", **_TRANSLATES, notes=lpips_notes,
    training_signal=None,  # two players: tests/models_tests/test_translation.py checks each one's own signal
)
CYCLEGAN = ModelCard(
    "cyclegan", CycleGANConfig,
    "CycleGAN (Zhu et al. 2017): two U-Net generators A->B and B->A, two PatchGANs, a cycle-consistency term.",
    lambda config: ("loss", "g_adv", "cycle", "identity", "d_loss"), _translator_check("unpaired"),
    pairing="unpaired", **{**_TRANSLATES, "default_metric": "val/cycle", "default_mode": "min"},
    training_signal=None,
)

CARDS: dict[str, ModelCard] = {card.name: card for card in (AE, AAE, DAE, VAE, GAN, DDPM, UNET_SR, PIX2PIX, CYCLEGAN)}
