"""Every registered model: builds, trains on a fixed batch, samples, checkpoints, is deterministic.

Parametrized over the registry, so a newly registered model is tested by being registered.
"""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pytest
import torch

import models
from models import Batch, DataInfo
from models.cards import CARDS
from models.config import ConfigError

MODEL_NAMES = sorted(CARDS)  # the built-ins, whatever model packages are installed here
DIGITS = DataInfo((1, 28, 28), 10)
ROOT = Path(__file__).resolve().parents[2]
# What each kind of model trains on: digits alone, degraded/clean pairs, or two digit styles.
INFOS = {None: DIGITS, "paired": DataInfo((1, 28, 28), None, "paired", 2), "unpaired": DataInfo((1, 28, 28), None, "unpaired")}
# Narrow networks where the defaults are slow on a CPU: the tests check behaviour, not capacity.
SMALL = {"unet_sr": {"width": 8}, "pix2pix": {"width": 8, "disc_width": 8}, "cyclegan": {"width": 8, "disc_width": 8}}
# Every registered model with its defaults, plus the variants a config switches between.
CASES = [(name, {}) for name in MODEL_NAMES] + [
    ("gan", {"variant": variant}) for variant in ("gan", "lsgan", "wgan", "wgan-gp", "hinge")
] + [
    ("gan", {"variant": "dcgan", "conditional": True}),
    ("gan", {"variant": "gan", "conditional": True}),
    ("dae", {"corruption": "mask"}),
    ("dae", {"corruption": "stamp"}),
    ("aae", {"arch": "conv", "loss": {"mse": 1.0, "ssim": 10.0}}),
    ("vae", {"arch": "conv", "beta": 4.0, "beta_warmup": 2, "loss": {"hfen": 10.0}}),
    ("unet_sr", {"loss": {"l1": 1.0, "ssim": 0.5, "psnr": 0.01, "hfen": 0.1}}),
    ("pix2pix", {"variant": "lsgan"}),
    ("cyclegan", {"identity_weight": 0.0, "pool_size": 0}),
]
CASE_IDS = [name + "".join(f"-{k}={v}" for k, v in params.items()) for name, params in CASES]


@pytest.fixture
def fixed_batch(request, fixed_batches) -> Batch:
    """The batch for the test's model: its `name` parameter says which kind of data it needs."""
    name = request.node.callspec.params.get("name", "vae") if hasattr(request.node, "callspec") else "vae"
    return fixed_batches[models.entry(name).pairing]


def _values(reported: dict) -> list[tuple[str, float]]:
    return sorted((name, float(value)) for name, value in reported.items())


def _build(name, seed=0, **params):
    torch.manual_seed(seed)
    info = INFOS[models.entry(name).pairing]
    return models.build(name, SMALL.get(name, {}) | params, info, lr=1e-3)


# Two-player models (training_signal None) are tested one player at a time (tests/models_tests/test_gan.py).
SIGNAL_CASES = [(name, params) for name, params in CASES if models.entry(name).training_signal]


# 41 steps of these take more than a few seconds on a CPU core (a U-Net, two adversaries): slow.
SLOW_TO_TRAIN = {"ddpm", "unet_sr", "aae"}


@pytest.mark.parametrize(
    "name, params",
    [pytest.param(*case, marks=[pytest.mark.slow] if case[0] in SLOW_TO_TRAIN else []) for case in SIGNAL_CASES],
    ids=[CASE_IDS[CASES.index(c)] for c in SIGNAL_CASES],
)
def test_train_step_lowers_the_loss_on_a_fixed_batch(name, params, fixed_batch):
    model = _build(name, **params)
    model.on_epoch_start(1)
    signal = type(model).training_signal
    before = [p.detach().clone() for p in model.parameters()]
    first = model.train_step(fixed_batch)
    for _ in range(40):
        last = model.train_step(fixed_batch)
    assert all(v.dim() == 0 and not v.requires_grad for v in first.values())
    assert set(last) <= set(model.card.reported_metrics(model.config))
    assert last[signal] < first[signal] - 0.1 * max(1.0, abs(float(first[signal]))), (first, last)
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_samples_are_images_in_unit_range(name, params):
    model = _build(name, **params)
    if not model.generates:  # image-to-image: translations only, and saying so
        with pytest.raises(ValueError, match="translates images"):
            model.sample(5, torch.Generator().manual_seed(0))
        return
    images = model.sample(5, torch.Generator().manual_seed(0))
    assert images.shape == (5, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_same_seed_same_numbers(name, fixed_batch):
    runs = []
    for _ in range(2):
        model = _build(name, seed=7)
        torch.manual_seed(7)
        losses = [_values(model.train_step(fixed_batch)) for _ in range(3)]
        if model.generates:
            runs.append((losses, model.sample(2, torch.Generator().manual_seed(1))))
        else:
            runs.append((losses, torch.cat([grid.flatten() for grid in model.log_images(fixed_batch).values()])))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_training_state_round_trip(name, fixed_batch):
    model = _build(name)
    model.train_step(fixed_batch)
    copy = _build(name, seed=1)
    # A deep copy, as a checkpoint file gives: loaded optimizer state may share tensors.
    copy.load_training_state(deepcopy(model.training_state()))
    torch.manual_seed(3)
    expected = _values(model.train_step(fixed_batch))
    torch.manual_seed(3)
    assert _values(copy.train_step(fixed_batch)) == expected  # weights and Adam moments both carried


@pytest.mark.parametrize("name, params", CASES, ids=CASE_IDS)
def test_evaluate_reports_the_declared_metrics(name, params, fixed_batch):
    model = _build(name, **params)
    modes = []

    def batches():  # notes, as evaluate() asks for each batch, whether autograd is off for it
        for batch in (fixed_batch, fixed_batch):
            modes.append(torch.is_inference_mode_enabled())
            yield batch

    metrics = model.evaluate(batches())
    # Evaluation under torch.inference_mode (no graph), but for wgan-gp's penalty, which needs gradients.
    penalty = name == "gan" and params.get("variant") == "wgan-gp"
    assert modes == [not penalty] * 2
    assert set(metrics) == set(model.card.reported_metrics(model.config))
    assert all(isinstance(v, (int, float)) for v in metrics.values())


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown model 'vea' \(known models: .*vae"):
        models.build("vea", {}, DIGITS, 1e-3)


def test_registry_refuses_a_duplicate_name():
    import models.zoo  # noqa: F401  (registers every model class)
    from models.registry import register

    with pytest.raises(ValueError, match="registered twice"):
        register("vae")(type("Another", (), {}))


@pytest.mark.parametrize("arch", ["mlp", "conv"])
def test_vae_reports_nats_and_active_units(arch, fixed_batch):
    model = _build("vae", arch=arch, latent_dim=4)
    metrics = model.evaluate([fixed_batch])
    # An untrained decoder outputs ~0.5 everywhere: about 784 * log 2 = 543 nats per image.
    assert 400 < metrics["recon"] < 700
    assert metrics["kl"] >= 0 and 0 <= metrics["active_units"] <= 4
    assert metrics["loss"] == pytest.approx(metrics["recon"] + metrics["kl"])


def test_vae_beta_weights_the_kl(fixed_batch):
    torch.manual_seed(0)
    plain = _build("vae", beta=1.0).evaluate([fixed_batch])
    torch.manual_seed(0)
    heavy = _build("vae", beta=4.0).evaluate([fixed_batch])
    assert heavy["loss"] == pytest.approx(heavy["recon"] + 4.0 * heavy["kl"])
    assert heavy["recon"] == pytest.approx(plain["recon"])


def test_vae_images_include_the_manifold_only_for_two_latents(fixed_batch):
    two = _build("vae", latent_dim=2).log_images(Batch(fixed_batch.images[:16]))
    eight = _build("vae", latent_dim=8).log_images(Batch(fixed_batch.images[:16]))
    assert set(two) == {"reconstruction", "manifold"} and set(eight) == {"reconstruction"}
    assert two["manifold"].shape == (3, 20 * 28, 20 * 28)
    assert two["reconstruction"].shape[1] == 2 * 28 + 3 * 2  # originals over reconstructions


@pytest.mark.parametrize("shape, nrow, padding", [((5, 1, 28, 28), 2, 2), ((16, 3, 8, 6), 8, 0), ((1, 1, 4, 4), 8, 2),
                                                  ((3, 28, 28), 8, 2), ((7, 3, 5, 5), 3, 1), ((64, 1, 28, 28), 8, 2)])
def test_image_grids_match_torchvisions_to_the_pixel(shape, nrow, padding):
    from torchvision.utils import make_grid as torchvision_grid

    from models.grids import make_grid

    images = torch.rand(shape)
    assert torch.equal(make_grid(images, nrow=nrow, padding=padding), torchvision_grid(images, nrow=nrow, padding=padding))


def test_a_trial_process_does_not_import_torchvision():
    import subprocess
    import sys

    modules = ("torchvision", "torch._dynamo", "torch._inductor")
    probe = f"import sys, runner.sweep.trial; print([name in sys.modules for name in {modules}])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    # torchvision: 1.3 s of every trial's start (models/grids.py). The compiler: only
    # train.compile needs it, and runner/train/loop.py imports it then. (Once training starts, torch.optim
    # imports torch._dynamo anyway, for its own guards, when a model makes its optimizers.)
    assert result.stdout.strip() == "[False, False, False]"


def test_checking_every_search_space_imports_no_torch():
    # A spec is checked by the model cards alone (models/cards.py): `gensweep validate` and the
    # driver's check stay light. The networks' own checks are the cards' (GenerativeModel.__init__).
    import subprocess
    import sys

    probe = ("import sys, glob; from runner.spec import load_spec\n"
             "for path in sorted(glob.glob('search_spaces/*.yaml')): load_spec(path)\n"
             "print(sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'ray')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


def test_every_card_has_its_model_class_and_each_class_its_card():
    from models.registry import model_class

    for name in MODEL_NAMES:
        built = model_class(name)
        assert built.card is models.entry(name) and built.card.name == name
        assert built.__doc__.split(":")[0].split("(")[0].strip() in built.card.summary  # one model, one story


def test_a_model_built_directly_is_checked_by_its_card():
    with pytest.raises(ValueError, match="model.arch: conv needs image sides divisible by 4"):
        models.build("vae", {"arch": "conv"}, DataInfo((1, 30, 30), 10), 1e-3)
    with pytest.raises(ValueError, match="model.conditional: needs labelled data"):
        models.build("gan", {"conditional": True}, DataInfo((1, 28, 28), None), 1e-3)


@pytest.mark.parametrize("environment", [{}, {"XDG_CACHE_HOME": "/xdg"}, {"TORCH_HOME": "~/th"}, {"TORCH_HOME": "/th", "XDG_CACHE_HOME": "/x"}])
def test_the_torch_hub_folder_is_found_as_torch_finds_it(environment, monkeypatch):
    # models/vgg_weights.py computes torch.hub.get_dir() without importing torch: if torch
    # changes its rule, this fails rather than the spec check looking in the wrong place.
    from models.vgg_weights import hub_dir

    for name in ("TORCH_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert hub_dir() == Path(torch.hub.get_dir())
