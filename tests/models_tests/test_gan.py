"""GAN specifics: each player's step lowers its own loss, WGAN-GP's penalty by hand, clipping."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import models
from models import DataInfo
from models.losses import discriminator_loss, generator_loss, gradient_penalty

VARIANTS = ["gan", "dcgan", "lsgan", "wgan", "wgan-gp", "hinge"]
DIGITS = DataInfo((1, 28, 28), 10)


def _gan(**params):
    torch.manual_seed(0)
    return models.build("gan", params, DIGITS, lr=2e-4)


@pytest.mark.slow  # trains for more than a few seconds
@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("variant", VARIANTS)
def test_each_player_lowers_its_own_loss(variant, conditional, fixed_batch):
    model = _gan(variant=variant, conditional=conditional)
    # From the second step on: WGAN's first step clips the critic's initial weights to +-clip,
    # which shrinks its scores before it has learnt anything.
    critic_losses = [float(model.critic_step(fixed_batch)["d_loss"]) for _ in range(30)][1:]
    start = critic_losses[0]
    assert critic_losses[-1] < start - 0.02 * max(1.0, abs(start)), critic_losses
    generator_losses = [float(model.generator_step(fixed_batch)["g_loss"]) for _ in range(25)]
    assert generator_losses[-1] < generator_losses[0], generator_losses


def test_wgan_gp_penalty_by_hand():
    # A linear critic f(x) = sum(w * x) has gradient w everywhere: the penalty is (||w|| - 1)^2
    # for every sample, whatever the interpolation weight.
    critic = nn.Sequential(nn.Flatten(), nn.Linear(4, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3.0, 0.0, 4.0, 0.0]]))  # ||w|| = 5
    real, fake = torch.rand(6, 1, 2, 2), torch.rand(6, 1, 2, 2)
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(16.0)


def test_wgan_gp_penalty_uses_one_weight_per_sample_and_the_whole_sample_norm():
    # f(x) = 0.5 * ||x||^2 has gradient x_hat, so the penalty is mean((||x_hat|| - 1)^2),
    # with x_hat = eps * real + (1 - eps) * fake and one eps per sample.
    class HalfSquaredNorm(nn.Module):
        def forward(self, x):
            return 0.5 * x.flatten(1).square().sum(dim=1)

    real = torch.stack([torch.full((1, 2, 2), 1.0), torch.full((1, 2, 2), 2.0)])
    fake = torch.zeros_like(real)
    torch.manual_seed(5)
    eps = torch.rand(2, 1, 1, 1)
    torch.manual_seed(5)
    penalty = gradient_penalty(HalfSquaredNorm(), real, fake)
    mixed = eps * real  # fake is zero
    expected = (mixed.flatten(1).norm(dim=1) - 1).square().mean()  # norms over all 4 pixels
    assert penalty.item() == pytest.approx(expected.item())


def test_adversarial_losses_on_known_scores():
    zero = torch.zeros(4)
    assert discriminator_loss("dcgan", zero, zero).item() == pytest.approx(2 * torch.log(torch.tensor(2.0)).item())
    assert generator_loss("dcgan", zero).item() == pytest.approx(torch.log(torch.tensor(2.0)).item())
    assert discriminator_loss("lsgan", torch.ones(4), zero).item() == 0
    assert discriminator_loss("wgan", torch.full((4,), 3.0), torch.ones(4)).item() == -2
    assert discriminator_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0
    assert discriminator_loss("hinge", zero, zero).item() == 2
    smoothed = discriminator_loss("dcgan", torch.full((4,), 10.0), torch.full((4,), -10.0), real_label=0.9)
    assert smoothed.item() > 0.9  # one-sided smoothing: a confident D pays for certainty on reals


def test_wgan_clips_the_critic(fixed_batch):
    model = _gan(variant="wgan", clip=0.02)
    model.train_step(fixed_batch)
    assert max(p.abs().max().item() for p in model.critic.parameters()) <= 0.02 + 1e-7


@pytest.mark.slow  # trains for more than a few seconds
def test_n_critic_steps_per_generator_step(fixed_batch):
    model = _gan(variant="wgan-gp")
    reported = [set(model.train_step(fixed_batch)) for _ in range(10)]
    assert [("g_loss" in keys) for keys in reported] == [False] * 4 + [True] + [False] * 4 + [True]
    assert all("gp" in keys for keys in reported)


def test_conditional_needs_labels():
    with pytest.raises(ValueError, match="model.conditional: needs labelled data"):
        models.build("gan", {"conditional": True}, DataInfo((1, 28, 28), None), 1e-3)


def test_conditional_samples_follow_their_labels(fixed_batch):
    model = _gan(conditional=True)
    grids = model.log_images(fixed_batch)
    assert grids["by_class"].shape[1:] == (10 * 28 + 11 * 2, 10 * 28 + 11 * 2)


# -- optimizer defaults from the papers (models.cards.PAPER_DEFAULTS) ----------------------------
PAPER = {  # variant: (optimizer class, betas, n_critic), as each paper trained it
    "gan": (torch.optim.Adam, (0.5, 0.999), 1),  # Goodfellow et al. 2014 k=1; Adam as DCGAN
    "dcgan": (torch.optim.Adam, (0.5, 0.999), 1),  # Radford et al. 2015
    "lsgan": (torch.optim.Adam, (0.5, 0.999), 1),  # Mao et al. 2017
    "wgan": (torch.optim.RMSprop, None, 5),  # Arjovsky et al. 2017
    "wgan-gp": (torch.optim.Adam, (0.0, 0.9), 5),  # Gulrajani et al. 2017
    "hinge": (torch.optim.Adam, (0.5, 0.999), 1),  # Miyato et al. 2018, setting C
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_unset_optimizer_fields_are_the_papers_and_the_rates_train_lr(variant):
    kind, betas, n_critic = PAPER[variant]
    model = models.build("gan", {"variant": variant, "width": 8}, DIGITS, lr=3e-4)
    assert model.n_critic == n_critic
    for optimizer in model.optimizers.values():
        assert type(optimizer) is kind
        assert optimizer.defaults["lr"] == 3e-4  # train.lr, so that a sweep over it reaches the GAN
        assert optimizer.defaults.get("betas") == betas


@pytest.mark.parametrize("variant", VARIANTS)
def test_optimizer_fields_a_spec_sets_win(variant):
    params = {"variant": variant, "width": 8, "optimizer": "adam", "lr_g": 1e-3, "lr_d": 4e-4,
              "beta1": 0.25, "beta2": 0.75, "n_critic": 3}
    model = models.build("gan", params, DIGITS, lr=3e-4)
    assert model.n_critic == 3
    generator, critic = model.optimizers["generator"], model.optimizers["critic"]
    assert type(generator) is type(critic) is torch.optim.Adam
    assert (generator.defaults["lr"], critic.defaults["lr"]) == (1e-3, 4e-4)
    assert generator.defaults["betas"] == critic.defaults["betas"] == (0.25, 0.75)


def test_one_beta_set_keeps_the_papers_other():
    model = models.build("gan", {"variant": "wgan-gp", "width": 8, "beta1": 0.5}, DIGITS, lr=1e-4)
    assert model.optimizers["critic"].defaults["betas"] == (0.5, 0.9)


def test_wgan_takes_rmsprop_only_when_asked_and_adam_its_own_betas():
    assert type(models.build("gan", {"variant": "dcgan", "width": 8, "optimizer": "rmsprop"}, DIGITS, 1e-4)
                .optimizers["critic"]) is torch.optim.RMSprop
    adam = models.build("gan", {"variant": "wgan", "width": 8, "optimizer": "adam"}, DIGITS, 1e-4).optimizers["critic"]
    assert type(adam) is torch.optim.Adam and adam.defaults["betas"] == (0.9, 0.999)  # no paper betas: Adam's


@pytest.mark.parametrize("params", [{"variant": "wgan", "beta1": 0.5}, {"optimizer": "rmsprop", "beta2": 0.9}])
def test_betas_with_rmsprop_are_refused_not_ignored(params):
    with pytest.raises(ValueError, match=r"model.beta[12]: .* rmsprop .* no betas; set model.optimizer: adam"):
        models.build("gan", {"width": 8, **params}, DIGITS, 1e-4)


def test_gensweep_models_shows_each_variants_paper_defaults():
    from click.testing import CliRunner

    from runner.cli import main

    listing = CliRunner().invoke(main, ["models"]).output
    gan = listing[listing.index("\ngan: "):]
    gan = gan[: gan.index("\n\n")]
    assert "paper defaults" in gan and "lr_g/lr_d take train.lr" in gan
    assert "dcgan    adam lr 0.0002 betas (0.5, 0.999) n_critic 1  (Radford et al. 2015)" in gan
    assert "wgan     rmsprop lr 5e-05 n_critic 5  (Arjovsky et al. 2017" in gan
    assert "wgan-gp  adam lr 0.0001 betas (0.0, 0.9) n_critic 5  (Gulrajani et al. 2017" in gan
    for variant in VARIANTS:
        assert f"\n      {variant} " in gan
