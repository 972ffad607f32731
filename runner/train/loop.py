"""The training loop: spec in, trained model and per-epoch metrics out. No Ray here.

The loop owns devices, precision, shuffling, logging intervals and the finite-loss check;
the model owns its mathematics. Host syncs happen only at logging intervals and epoch ends,
so on a GPU the step loop never waits for the device.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

import models
from models import torch_internals
from models.grids import make_grid
from runner.errors import GensweepError, PermanentError
from runner.results.report import SAMPLES_FILE, picture_file
from runner.spec import Spec
from runner.spec.quality import find_inception_weights
from runner.timeline import mark
from runner.train.quality import QualityMeter
from runner.train.tblog import TrialLogger
from runner.train.tensors import ImageData, flip_horizontally, load_tensors

SAMPLE_COUNT = 64  # prior samples per epoch: an 8x8 grid
FIXED_VAL_IMAGES = 16  # the same val images reconstructed every epoch
EVAL_BATCH_SIZE = 512


class TrainingError(GensweepError, RuntimeError):
    """Training cannot go on (a non-finite loss, a device that is not there); one-line message."""


class DivergedError(TrainingError, PermanentError):
    """A loss or metric became NaN or infinite. Permanent: a retry from the same checkpoint,
    with the same seeds and learning rate, diverges the same way."""


@dataclass
class EpochEnd:
    epoch: int  # 1-based: epochs finished so far
    global_step: int
    metrics: dict[str, float]  # "train/loss", "val/recon", ...
    model: models.GenerativeModel
    generator: torch.Generator


def choose_device(requested: str, assigned_gpus: list | None = None) -> torch.device:
    """The trial's device. `assigned_gpus`: the GPUs Ray gave this trial (None outside Ray).

    Under Ray a trial uses a GPU only when it was given one: Ray points CUDA_VISIBLE_DEVICES at
    that GPU, so cuda:0 is the assigned one (whichever physical GPU it is), and a trial that
    asked for none stays on the CPU rather than crowd a GPU another trial holds.
    """
    if requested == "cpu":
        return torch.device("cpu")
    if assigned_gpus is not None and not assigned_gpus:
        if requested == "cuda":
            raise TrainingError("train.device: cuda asked for, but the trial was given no GPU: set resources.gpu (e.g. 0.25)")
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", 0)
    if assigned_gpus:
        raise TrainingError(
            f"Ray gave this trial GPU {','.join(map(str, assigned_gpus))}, but torch sees no CUDA device "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}); set train.device: cpu to train on the CPU"
        )
    if requested == "cuda":
        raise TrainingError("train.device: cuda asked for, but this machine has no CUDA device")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix products in hardware, not emulated in fp32."""
    return torch_internals.cpu_has_native_bf16()


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device` (None: full fp32).

    auto: on CUDA bf16 where supported, else fp16 (with a gradient scaler); on a CPU with native
    bf16 (bench/run_all.py: DCGAN 2x, conv VAE 1.5x, losses equal to 3 digits), bf16; else fp32.
    """
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    return torch.bfloat16 if precision == "bf16" else torch.float16


# Every convolution module of torch.nn (their Lazy* and quantization-aware forms are subclasses):
# the public classes under the private base they share (_ConvNd).
CONVOLUTIONS = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d,
                torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)


def has_convolutions(model: torch.nn.Module) -> bool:
    return any(isinstance(module, CONVOLUTIONS) for module in model.modules())


def memory_format(channels_last: str, model: models.GenerativeModel) -> torch.memory_format:
    """The layout of the model's conv weights and of the image batches, by train.channels_last.

    auto: channels-last on CUDA, where cuDNN's tensor-core convolutions work in it natively;
    contiguous on the CPU, where oneDNN gained nothing (0.95-0.98x, bench/train_throughput.py
    --options). A model without convolutions has no 4-D weights to convert, and a 1-channel
    batch is laid out the same either way, so "on" costs an MLP model nothing.
    """
    cuda_conv = model.device.type == "cuda" and has_convolutions(model)
    on = channels_last == "on" or (channels_last == "auto" and cuda_conv)
    return torch.channels_last if on else torch.contiguous_format


def compile_networks(model: models.GenerativeModel) -> None:
    """torch.compile each network the model trains, in place.

    In place (Module.compile), not torch.compile(module): the model keeps calling its networks
    by their attributes, its optimizers keep their parameters, and state_dict keys stay the
    same, so checkpoints load into compiled and uncompiled models alike. Compilation itself
    happens at the first call of each network (and again for new shapes or grad modes).
    """
    _check_compiler(model.device)
    for network in model.networks_to_compile().values():
        network.compile()


def _check_compiler(device: torch.device) -> None:
    """Fail at set-up, in one line, where inductor could not build its kernels at the first step."""
    if device.type == "cuda":
        if not torch_internals.has_triton():
            raise TrainingError("train.compile: torch.compile on CUDA needs Triton, which is not installed; "
                                "set train.compile: false")
        return
    if torch_internals.cpp_compiler() is None:
        raise TrainingError(
            f"train.compile: torch.compile on the CPU needs a C++ compiler and found none of "
            f"{torch_internals.cpp_compiler_candidates()} (install g++ or set CXX); "
            f"set train.compile: false"
        )


@dataclass
class Session:
    """A trial's (or a pack's) set-up, ready for its first epoch: what open_session made."""

    device: torch.device
    precision: torch.dtype | None  # the autocast dtype (None: full fp32)
    data: ImageData  # on the device, image tensors in the models' memory layout
    models: list[models.GenerativeModel]  # one a spec, each seeded as a trial of its own
    generator: torch.Generator  # the shuffling order, on the device
    quality: QualityMeter | None  # None: the spec measures no quality metrics
    fixed_batch: models.Batch  # the val images every epoch's reconstructions show
    start_epoch: int  # epochs already trained (0: a fresh start)
    global_step: int  # optimizer steps already taken


def open_session(
    specs: Sequence[Spec], resume_states: Sequence[dict | None], assigned_gpus: list | None, *, packed: bool = False
) -> Session:
    """Set up training: one model a spec (one for a trial, the members for a pack), the data,
    shuffling, quality meter, and, from checkpoints made by training_state(), the models'
    training state and every random stream.

    specs: everything but the pack fields is the same in all of them (runner.train.packing checks);
    the first one's device, data, precision and seed rule. resume_states: a checkpoint (or None)
    a spec; the shared order and noise carry on from the first one's.
    packed: the models train as one pack (models/packing.py): fp16 autocast becomes fp32 (a
    pack's one step has no gradient scaler per member), weights and data stay contiguous (the
    pack stacks its weights in one layout) and nothing is compiled (the pack's step is a vmapped
    functional call); the spec check refuses fp16, channels_last: on and compile for packs.
    """
    first = specs[0]
    device = choose_device(first.train.device, assigned_gpus)
    torch.manual_seed(first.train.seed)
    data = load_tensors(first.data_name, first.data)
    built = []
    for spec in specs:
        torch.manual_seed(spec.train.seed)  # each starts from the weights it would have alone
        built.append(models.build(spec.model_name, spec.model, spec.data_info, spec.train.lr, device))
    precision = autocast_dtype(first.train.precision, device)
    if packed and precision == torch.float16:
        precision = None  # auto on a GPU without bf16 (an explicit fp16 is refused): fp32
    # One layout for weights and data (every batch is indexed from the data, so it follows):
    # set before compiling, which specializes on it, and before a checkpoint's optimizer state
    # is loaded, which takes its parameters' layout.
    layout = torch.contiguous_format if packed else memory_format(first.train.channels_last, built[0])
    for model in built:
        model.use_mixed_precision(precision)
        model.to(memory_format=layout)
    data = data.to(device, memory_format=layout)
    if first.train.compile and not packed:
        for model in built:
            compile_networks(model)
    generator = torch.Generator(device=device).manual_seed(first.train.seed)
    quality = None
    plan = first.quality_plan()
    if plan.metrics:
        weights = find_inception_weights(first.quality.inception_path) if plan.inception else None
        quality = QualityMeter(data, first.quality.samples, device, plan.class_features, weights)
    for model, state in zip(built, resume_states, strict=True):
        if state is not None:
            model.load_training_state(state)
    start_epoch, global_step = 0, 0
    resumed = resume_states[0]
    if resumed is not None:  # last of the set-up: nothing may draw random numbers after it
        restore_rng(resumed, generator, device)
        start_epoch, global_step = resumed["epoch"], resumed["global_step"]
    fixed_batch = next(data.batches("val", FIXED_VAL_IMAGES, count=FIXED_VAL_IMAGES))  # no generator: draws nothing
    return Session(device, precision, data, built, generator, quality, fixed_batch, start_epoch, global_step)


def restore_rng(state: dict, generator: torch.Generator, device: torch.device) -> None:
    """Every random stream as a checkpoint (training_state) saved it: the shuffling generator,
    torch's CPU generator and, training on CUDA, the device's generator."""
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    if "cuda_rng" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda_rng"].cpu(), device)


def train(
    spec: Spec,
    logger: TrialLogger | None = None,
    on_epoch_end: Callable[[EpochEnd], None] = lambda _: None,
    resume_state: dict | None = None,
    assigned_gpus: list | None = None,
) -> dict[str, float]:
    """Train `spec` for its epochs; returns the last epoch's metrics.

    logger: where scalars, image grids and the latest sample PNG go (None: nowhere).
    on_epoch_end: called after every epoch (the Tune trial reports and checkpoints there).
    resume_state: a checkpoint made by training_state(), to continue from.
    assigned_gpus: the GPUs Ray assigned the trial (None: not under Ray, any GPU will do).
    """
    session = open_session([spec], [resume_state], assigned_gpus)
    model, data, generator, global_step = session.models[0], session.data, session.generator, session.global_step
    quality_metrics: dict[str, float] = {}
    metrics: dict[str, float] = {}
    with _compile_failures_named(spec.train.compile):
        for epoch in range(session.start_epoch + 1, spec.train.epochs + 1):
            model.on_epoch_start(epoch)

            def log_step(values: dict[str, torch.Tensor], step: int, epoch: int = epoch) -> None:
                floats = {name: float(value) for name, value in values.items()}
                _check_finite(floats, f"epoch {epoch}, step {step}", "train")
                if logger is not None:
                    logger.scalars("train_step", floats, step)

            sums, global_step = train_epoch(model, data, spec, generator, global_step, log_step)
            train_metrics = {name: float(value) for name, value in sums.items()}
            _check_finite(train_metrics, f"epoch {epoch}", "train")
            metrics, quality_metrics = end_epoch(
                model, data, spec, epoch, global_step, train_metrics, session.quality, quality_metrics, session.fixed_batch,
                logger,
            )
            on_epoch_end(EpochEnd(epoch, global_step, metrics, model, generator))
    return metrics


def end_epoch(model, data, spec: Spec, epoch: int, global_step: int, train_metrics: dict[str, float],
              quality: QualityMeter | None, quality_metrics: dict[str, float], fixed_batch, logger: TrialLogger | None):
    """Evaluate, measure and log one model after an epoch of training.

    Returns the epoch's metrics ("train/loss", "val/recon", ...) and the quality metrics now
    standing (measured every quality.every epochs; the last value stands between them).
    """
    model.eval()
    val_metrics = model.evaluate(data.batches("val", EVAL_BATCH_SIZE))
    _check_finite(val_metrics, f"val at epoch {epoch}", "val")
    train_metrics = train_metrics | _evaluation_only_metrics(model, data, train_metrics)
    if quality is not None and (epoch % spec.quality.every == 0 or epoch == spec.train.epochs or not quality_metrics):
        # The same noise every time, so a change in the score is the model's, not the draw's.
        noise = torch.Generator(device=model.device).manual_seed(spec.train.seed + 2)
        quality_metrics = quality.measure(model, noise)
    # Between measurements the last value stands: schedulers need the metric every epoch.
    val_metrics = val_metrics | quality_metrics
    metrics = {f"train/{k}": v for k, v in train_metrics.items()}
    metrics |= {f"val/{k}": v for k, v in val_metrics.items()}
    if logger is not None:
        # Every scalar on one axis, optimizer steps, so a resumed trial can purge past a step.
        logger.scalars("train", train_metrics | {"epoch": epoch}, global_step)
        logger.scalars("val", val_metrics, global_step)
        _log_images(model, fixed_batch, spec, global_step, logger)
    return metrics, quality_metrics


@contextlib.contextmanager
def _compile_failures_named(compiling: bool):
    """A failure inside torch.compile (at any network's first call) as one line naming the flag."""
    try:
        yield
    except RuntimeError as error:
        if compiling and torch_internals.is_compile_failure(error):
            lines = [line for line in str(error).splitlines() if line.strip()]
            reason = lines[0] if lines else type(error).__name__
            raise TrainingError(
                f"train.compile: torch.compile failed: {reason}; set train.compile: false"
            ) from error
        raise


def training_state(end: EpochEnd) -> dict:
    """What a checkpoint holds: the model's training state plus where the loop stood."""
    state = end.model.training_state()
    state |= {
        "epoch": end.epoch,
        "global_step": end.global_step,
        "generator": end.generator.get_state(),  # the shuffling order
        "torch_rng": torch.get_rng_state(),  # the models' noise (reparameterization, dropout)
        "metrics": dict(end.metrics),  # what this state scored: a trial restored from it reports them
    }
    if end.model.device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(end.model.device)
    return state


def train_epoch(model, data, spec: Spec, generator, global_step: int, log_step) -> tuple[dict[str, torch.Tensor], int]:
    """One pass of optimizer steps. Returns each value's mean over the epoch (tensors, on the
    device: a pack's are one per member) and the step count; log_step(values, step) is called
    every train.log_every steps, the only host sync inside the epoch."""
    model.train()
    sums: dict[str, torch.Tensor] = {}
    seen: dict[str, int] = {}  # per value: a GAN reports its generator's loss on some steps only
    for batch in data.batches("train", spec.train.batch_size, generator, spec.train.steps_per_epoch):
        if spec.train.flip:  # train batches only: val and the fixed pictures stay as they are
            batch = flip_horizontally(batch, generator, data.pairing)
        parts = model.train_step(batch)
        count = len(batch.images)
        for name, value in parts.items():
            sums[name] = sums[name] + value * count if name in sums else value * count
            seen[name] = seen.get(name, 0) + count
        global_step += 1
        if global_step == 1:
            mark("first batch trained")
        if global_step % spec.train.log_every == 0:
            log_step(parts, global_step)
    return {name: total / seen[name] for name, total in sums.items()}, global_step


def _evaluation_only_metrics(model, data, running: dict[str, float]) -> dict[str, float]:
    """Metrics a step cannot give (active units need the whole posterior), on a train subset.

    The subset is as large as the val set, so train and val figures are comparable and the
    extra pass costs what the val pass costs.
    """
    missing = set(model.card.reported_metrics(model.config)) - set(running)
    if not missing:
        return {}
    measured = model.evaluate(data.batches("train", EVAL_BATCH_SIZE, count=len(data.val_images)))
    return {name: measured[name] for name in sorted(missing)}


def divergence(values: dict[str, float], where: str, prefix: str = "train") -> DivergedError | None:
    """The error for the first of `values` that is NaN or infinite (None: all are finite)."""
    for name, value in values.items():
        if not math.isfinite(value):
            return DivergedError(f"{prefix}/{name} became {value} at {where}; try a lower train.lr")
    return None


def _check_finite(values: dict[str, float], where: str, prefix: str) -> None:
    error = divergence(values, where, prefix)
    if error is not None:
        raise error


@torch.no_grad()
def _log_images(model, fixed_batch, spec: Spec, step: int, logger: TrialLogger) -> None:
    # The same noise every epoch, so the grids show the model changing, not the noise.
    grids = {}
    if model.generates:
        noise = torch.Generator(device=model.device).manual_seed(spec.train.seed + 1)
        grids["samples"] = make_grid(model.sample(SAMPLE_COUNT, noise).float(), nrow=8)
    grids |= model.log_images(fixed_batch)
    # Each grid also the latest picture_file(tag) in the trial directory, samples.png included.
    for name, grid in grids.items():
        logger.image(name, grid, step, filename=picture_file(name))
    if "samples" not in grids:
        # samples.png: the picture of the trial (its samples; an image-to-image model's translations)
        logger.picture(SAMPLES_FILE, next(iter(grids.values())))
