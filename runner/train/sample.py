"""Pictures from a finished trial's checkpoint: a sample grid, walks through the latent space,
and latent arithmetic (the mean code of class a, minus b's, plus c's, decoded). No Ray.

The run directory's sweep.json holds the spec and the trial's gensweep.json its swept values, so
the model is rebuilt exactly as the trial built it; the weights come from its newest checkpoint,
read weights-only (tensors and plain containers: a checkpoint cannot carry code).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

import models
from models.autoencoders import Autoencoder
from models.gan import GAN
from models.grids import make_grid
from runner.errors import GensweepError
from runner.results.report import RECORD_FILE, STATE_FILE, SWEEP_FILE, read_record, read_sweep
from runner.spec import Spec, parse_document
from runner.train.loop import EVAL_BATCH_SIZE, choose_device
from runner.train.tensors import ImageData

CHECKPOINT_DIR = re.compile(r"checkpoint_(\d+)")  # Ray Tune numbers a trial's checkpoints from 0

ARITHMETIC_SCALE = 4  # arithmetic tiles are drawn 4x larger: 28 px digits leave no room for a label
LABEL_HEIGHT = 24  # pixels of margin above each arithmetic tile, for its label
TILE_GAP = 8  # pixels between arithmetic tiles
MAX_DETAIL = 200  # characters of a library's error message kept in our one-line errors


class SampleError(GensweepError, ValueError):
    """A trial that cannot be drawn from, or a picture its model cannot make; one line naming it."""


# -- the trial ----------------------------------------------------------------------------------
def load_trial(trial_dir: Path) -> tuple[Spec, models.GenerativeModel]:
    """The trial's spec (its swept values set) and its model with the newest weights, in eval mode."""
    trial_dir = Path(trial_dir)
    if not trial_dir.is_dir():
        raise SampleError(f"{trial_dir}: no such trial directory")
    if not (trial_dir / RECORD_FILE).exists():
        raise SampleError(f"{trial_dir}: not a gensweep trial directory (no {RECORD_FILE})")
    record, problem = read_record(trial_dir / RECORD_FILE)
    if record is None:
        raise SampleError(problem)
    run_dir = trial_dir.resolve().parent  # resolved: the trial may be given as "."
    sweep, problem = read_sweep(run_dir)
    if not sweep.get("document"):
        if not (run_dir / SWEEP_FILE).exists():
            raise SampleError(f"{run_dir}: not a gensweep run directory (no {SWEEP_FILE})")
        raise SampleError(problem or f"{run_dir / SWEEP_FILE}: no spec in it (no document)")
    try:
        spec = parse_document(sweep["document"], sweep.get("source") or str(run_dir / SWEEP_FILE))
    except GensweepError as error:  # a run made by an older gensweep whose spec no longer validates
        raise SampleError(f"{run_dir / SWEEP_FILE}: the trial's spec does not validate: {error}") from None
    try:
        spec = spec.with_values(record.get("swept") or {})
    except GensweepError as error:  # a hand-edited or damaged record
        raise SampleError(f"{trial_dir / RECORD_FILE}: its swept values do not fit the run's spec: {error}") from None

    checkpoint = latest_checkpoint(trial_dir)
    device = choose_device("auto")  # the GPU when there is one: sampling is not a Ray trial
    model = models.build(spec.model_name, spec.model, spec.data_info, spec.train.lr, device)
    try:
        model.load_state_dict(_read_weights(checkpoint, device))
    except RuntimeError as error:  # missing keys or other shapes: not this trial's model
        raise SampleError(f"{checkpoint}: the weights do not fit this trial's {spec.model_name} ({_detail(error)})") from None
    return spec, model.eval()


def latest_checkpoint(trial_dir: Path) -> Path:
    """The highest-numbered checkpoint_N/state.pt of the trial."""
    numbered = []
    for directory in trial_dir.iterdir():
        match = CHECKPOINT_DIR.fullmatch(directory.name)
        if match and (directory / STATE_FILE).is_file():
            numbered.append((int(match.group(1)), directory / STATE_FILE))
    if not numbered:
        raise SampleError(f"{trial_dir}: no checkpoint (no checkpoint_*/{STATE_FILE}): the trial has not finished an epoch")
    return max(numbered)[1]


def _read_weights(path: Path, device: torch.device) -> dict:
    try:
        with warnings.catch_warnings():  # torch warns of a foreign file's pickle protocol: its error says more
            warnings.simplefilter("ignore")
            # weights_only: tensors and plain containers, never arbitrary pickled objects.
            state = torch.load(path, map_location=device, weights_only=True)
    # A damaged file raises EOFError, IndexError, RuntimeError or UnpicklingError, by where it
    # breaks; each is the same news for the user: this file is not a readable checkpoint.
    except Exception as error:  # noqa: BLE001
        raise SampleError(f"{path}: cannot read the checkpoint ({_detail(error)})") from None
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise SampleError(f"{path}: not a gensweep checkpoint (it holds no model weights)")
    return state["model"]


# -- the pictures -------------------------------------------------------------------------------
@torch.inference_mode()
def sample_grid(model: models.GenerativeModel, n: int, seed: int) -> Tensor:
    """n draws from the model as one (3, H, W) grid in [0, 1], ceil(sqrt(n)) images a row."""
    if not model.generates:
        raise SampleError(f"model {_model_name(model)}: an image-to-image model translates images; it draws no samples")
    noise = torch.Generator(device=model.device).manual_seed(seed)
    return make_grid(model.sample(n, noise).float(), nrow=math.ceil(math.sqrt(n)))


@torch.inference_mode()
def interpolation(model: models.GenerativeModel, steps: int, seed: int, rows: int) -> Tensor:
    """`rows` walks of `steps` images from one random latent point to another: a (3, H, W) grid."""
    decode = _noise_decoder(model)
    noise = torch.Generator(device=model.device).manual_seed(seed)
    start = torch.randn(rows, model.config.latent_dim, generator=noise, device=model.device)
    end = torch.randn(rows, model.config.latent_dim, generator=noise, device=model.device)
    fractions = torch.linspace(0, 1, steps, device=model.device)
    walks = torch.stack([slerp(start, end, fraction) for fraction in fractions], dim=1)  # (rows, steps, D)
    row_of_each = torch.arange(rows, device=model.device).repeat_interleave(steps)
    return make_grid(decode(walks.flatten(0, 1), row_of_each).float(), nrow=steps)


def slerp(start: Tensor, end: Tensor, fraction: float | Tensor) -> Tensor:
    """The point `fraction` of the way from start to end along the arc between them: (B, D).

    Why an arc: Gaussian noise in D dimensions lies near the shell of radius sqrt(D), where the
    decoder was trained. A straight line between two draws dips inside it (to a norm of about
    sqrt(D/2) halfway), where decoders give faint, blurred images; the arc keeps the norm about
    constant (White 2016, "Sampling Generative Networks").
    """
    angle = torch.acos(F.cosine_similarity(start, end, dim=1).clamp(-1, 1))[:, None]  # (B, 1)
    sine = torch.sin(angle)
    arc = (torch.sin((1 - fraction) * angle) * start + torch.sin(fraction * angle) * end) / sine.clamp_min(1e-6)
    # Nearly parallel points: the arc is the straight line, and dividing by sin(angle) ~ 0 would not be.
    straight = (1 - fraction) * start + fraction * end
    return torch.where(sine > 1e-4, arc, straight)


def _noise_decoder(model: models.GenerativeModel) -> Callable[[Tensor, Tensor], Tensor]:
    """images (B, C, H, W) in [0, 1] from standard Gaussian noise (B, D) and each image's row (B,)."""
    if isinstance(model, Autoencoder):
        # ae and dae draw from a Gaussian fitted to their codes; vae and aae (mean 0, std 1) from N(0, I).
        return lambda noise, _: model.decode(model.code_mean + noise * model.code_std)
    if isinstance(model, GAN):

        def generate(noise: Tensor, rows: Tensor) -> Tensor:
            # A conditional GAN draws class 0, 1, 2, ... by row, the same class along a row, so a
            # walk changes the style of one class rather than the class.
            labels = rows % model.data.num_classes if model.config.conditional else None
            with model.autocast():
                return (model.generator(noise, labels).float() + 1) / 2  # tanh's [-1, 1] to [0, 1]

        return generate
    raise SampleError(f"model {_model_name(model)}: no latent space to walk through (interpolation needs ae, vae, aae, dae or gan)")


@torch.inference_mode()
def arithmetic(model: models.GenerativeModel, data: ImageData, a: int, b: int, c: int) -> Tensor:
    """The mean code of class a's val images - class b's + class c's, decoded: a labelled row.

    Returns a (3, H, W) image in [0, 1]: decoded mean(a), mean(b), mean(c) and the result, each
    with its label ("a=7", "-b=1", "+c=3", "=") in a margin above it.
    """
    what = f"latent arithmetic {a} - {b} + {c}"
    if not isinstance(model, Autoencoder):
        raise SampleError(f"{what}: model {_model_name(model)} has no encoder (use a trial of ae, vae, aae or dae)")
    if data.val_labels is None or data.num_classes is None:
        raise SampleError(f"{what}: the data has no class labels (use labelled data such as digits or mnist)")
    for label in (a, b, c):
        if not 0 <= label < data.num_classes:
            raise SampleError(f"{what}: {label} is not one of the data's classes 0-{data.num_classes - 1}")
    data = data.to(model.device)
    codes = torch.cat([_posterior_mean(model, batch.images) for batch in data.batches("val", EVAL_BATCH_SIZE)])
    means = []
    for label in (a, b, c):
        chosen = codes[data.val_labels == label]
        if len(chosen) == 0:
            raise SampleError(f"{what}: class {label} has no val images")
        means.append(chosen.mean(dim=0))
    result = means[0] - means[1] + means[2]
    decoded = model.decode(torch.stack([*means, result]))  # (4, C, H, W)
    return _labelled_row(decoded, [f"a={a}", f"-b={b}", f"+c={c}", "="])


def _posterior_mean(model: Autoencoder, images: Tensor) -> Tensor:
    """(B, D) codes of clean images: the VAE's posterior mean, the code itself for ae, aae, dae."""
    with model.autocast():
        code = model.encoder(images)
    _, mean, _ = model.latent(code.float())
    return mean.float()


def _labelled_row(images: Tensor, labels: list[str]) -> Tensor:
    """Images (N, C, H, W) in [0, 1] enlarged side by side, each label white on black above its tile."""
    pixels = np.ascontiguousarray((images.float().clamp(0, 1) * 255).round().byte().permute(0, 2, 3, 1).cpu().numpy())  # (N, H, W, C)
    if pixels.shape[3] == 1:
        pixels = np.repeat(pixels, 3, axis=3)
    height, width = pixels.shape[1] * ARITHMETIC_SCALE, pixels.shape[2] * ARITHMETIC_SCALE
    row = np.zeros((LABEL_HEIGHT + height, len(pixels) * (width + TILE_GAP) - TILE_GAP, 3), np.uint8)
    for index, (tile, label) in enumerate(zip(pixels, labels)):
        left = index * (width + TILE_GAP)
        row[LABEL_HEIGHT:, left : left + width] = cv2.resize(tile, (width, height), interpolation=cv2.INTER_NEAREST)
        cv2.putText(row, label, (left + 4, LABEL_HEIGHT - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return torch.from_numpy(row).permute(2, 0, 1).float() / 255


def _model_name(model: models.GenerativeModel) -> str:
    """The registered name of the model's class (vae, gan, ...), as a spec names it."""
    return model.card.name if model.card is not None else type(model).__name__


def _detail(error: BaseException) -> str:
    """A library's error message on one line, cut short: torch's run over many lines."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 3] + "..."
