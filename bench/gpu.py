"""The GPU benchmark: one command to run on the first machine with a CUDA GPU (under 5 minutes).

    .venv/bin/python bench/gpu.py [--out gpu.md]

1. Training: every model of BENCHMARKS.md's training table (VAE mlp/conv, DCGAN, WGAN-GP, U-Net
   SR, DDPM) on the GPU, the plain loops of bench/run_all.py and bench/train_throughput.py (fp32,
   a DataLoader, `.item()` every step, batches copied to the GPU) against the trial's own set-up
   and epoch (loop.open_session, loop.train_epoch) with train.precision fp32/bf16/fp16 and
   train.channels_last off/on: images/s after warm-up steps and peak GPU memory per row.
2. Packs (tune.pack): a pack of 8 VAEs set up and trained as a packed trial is, against one trial.
3. Fractional GPUs: 4 trials at resources.gpu 0.25 (together on one GPU; the fallback: 2 at 0.5)
   against the same at gpu 1 (one at a time): wall time of `gensweep run`, on a Ray this process
   starts with one GPU.

Timed regions start and end with torch.cuda.synchronize; peak memory is
torch.cuda.max_memory_allocated after reset_peak_memory_stats. Without CUDA it prints one line
and exits 0. --cpu-fallback runs the same code on the CPU with tiny sizes (the tests use it).
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import torch

NO_GPU = ("bench/gpu.py: no CUDA GPU here (torch.cuda.is_available() is False); "
          "run it on a machine with one (--cpu-fallback runs it on the CPU with tiny sizes)")
PRECISIONS = ("fp32", "bf16", "fp16")
LAYOUTS = ("off", "on")
PACK_MEMBERS = 8


class Sizes:
    """Steps and sizes: a GPU's (a few seconds a row) or the CPU fallback's (a test's seconds)."""

    def __init__(self, device: torch.device):
        on_gpu = device.type == "cuda"
        self.device = device
        self.warm_up_steps = 5 if on_gpu else 1
        self.timed_steps = 40 if on_gpu else 1
        self.batch_divisor = 1 if on_gpu else 16  # the CPU fallback's batches: 8 images or fewer
        self.sweep_epochs = 3 if on_gpu else 1
        self.sweep_images = 8192 if on_gpu else 128
        self.sweep_repeats = 2 if on_gpu else 1
        # Trials sharing the one GPU, each at 1/trials of it: the fallback's two (at 0.5) start
        # half the trial processes, which on a busy 2-core machine take most of its time.
        self.fractional_trials = 4 if on_gpu else 2
        self.gpu_share = 1 / self.fractional_trials
        # The fallback's convolutional networks narrowed (the same code, a fraction of the work):
        # a wide DDPM U-Net's step alone took seconds on a busy 2-core CPU.
        self.narrowed = {} if on_gpu else {"ddpm": {"width": 8}, "gan": {"width": 8}, "unet_sr": {"width": 8},
                                             "vae": {"hidden_dim": 32}}


@contextmanager
def timed(device: torch.device, into: list):
    """Seconds of the block, the device's queued work included; appended to `into`."""
    _synchronize(device)
    start = time.perf_counter()
    yield
    _synchronize(device)
    into.append(time.perf_counter() - start)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":  # the last row's tensors freed, so its memory is not this row's
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_memory(device: torch.device) -> str:
    return f"{torch.cuda.max_memory_allocated(device) / 2**20:,.0f}" if device.type == "cuda" else "-"


def _spec(name: str, sizes: Sizes, **train):
    """bench/run_all.py's spec of model `name` for this device: images for the warm-up and timed steps."""
    from run_all import MODELS, _spec

    model_section, data_section, batch_size, lr, _ = MODELS[name]
    model_section = {**model_section, **sizes.narrowed.get(model_section["name"], {})}
    batch_size = max(2, batch_size // sizes.batch_divisor)
    count = batch_size * (sizes.warm_up_steps + sizes.timed_steps)
    return _spec(model_section, data_section, batch_size, lr, count, device=sizes.device.type, log_every=10_000, **train)


# -- 1. training --------------------------------------------------------------------------------------
def plain_rate(name: str, sizes: Sizes) -> tuple[float, float]:
    """(images/s of the plain loop's epoch after one warm-up epoch, its loss)."""
    import train_throughput
    from run_all import WRITTEN_OUT, _plain_generic_epoch

    from runner.train.tensors import load_tensors

    spec = _spec(name, sizes)
    data = load_tensors(spec.data_name, spec.data)
    written = WRITTEN_OUT.get(name)
    if written:
        images, labels = data.train_images[:, 0].numpy(), data.train_labels.numpy()
        epoch = lambda seed: train_throughput.PLAIN[written](images, labels, seed, sizes.device)
    else:
        epoch = lambda seed: _plain_generic_epoch(spec, data, seed, sizes.device)
    epoch(1)  # warm-up: cuDNN's autotuning, the allocator's growth
    seconds: list[float] = []
    with timed(sizes.device, seconds):
        loss = epoch(0)
    return len(data.train_images) / seconds[0], loss


def trial_seconds(spec, warm_up_steps: int, packed_specs: list | None = None) -> tuple[float, float]:
    """(seconds of one epoch of the trial's loop after `warm_up_steps`, the epoch's mean loss):
    set up by loop.open_session, as a trial (or, given packed_specs, a pack) is."""
    from models.packing import PackedModels
    from runner.train import loop

    specs = packed_specs or [spec]
    session = loop.open_session(specs, [None] * len(specs), None, packed=packed_specs is not None)
    model = PackedModels(session.models) if packed_specs else session.models[0]
    ignore = lambda values, step: None
    warm_up = spec.with_values({"train.steps_per_epoch": warm_up_steps})
    loop.train_epoch(model, session.data, warm_up, session.generator, 0, ignore)
    seconds: list[float] = []
    with timed(session.device, seconds):
        means, _ = loop.train_epoch(model, session.data, spec, session.generator, 0, ignore)
    loss = means.get("loss", means.get("d_loss"))
    return seconds[0], float(loss.float().mean())  # after the clock: the epoch end's host sync


def training_table(sizes: Sizes) -> list[str]:
    from run_all import MODELS

    lines = ["| model | loop | precision | channels_last | images/s | vs plain | final loss | peak GPU MB |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for name in MODELS:
        _reset_memory(sizes.device)
        plain, loss = plain_rate(name, sizes)
        count = _spec(name, sizes).train.batch_size * sizes.timed_steps
        lines.append(f"| {name} | plain | fp32 | off | {plain:,.0f} | 1.00x | {loss:.4g} | {_peak_memory(sizes.device)} |")
        for precision in PRECISIONS:
            for layout in LAYOUTS:
                _reset_memory(sizes.device)
                spec = _spec(name, sizes, precision=precision, channels_last=layout)
                seconds, loss = trial_seconds(spec.with_values({"train.steps_per_epoch": sizes.timed_steps}),
                                              sizes.warm_up_steps)
                rate = count / seconds
                lines.append(f"| {name} | gensweep | {precision} | {layout} | {rate:,.0f} | {rate / plain:.2f}x | "
                             f"{loss:.4g} | {_peak_memory(sizes.device)} |")
        print(f"  {name} done", file=sys.stderr, flush=True)
    return lines


# -- 2. packs -----------------------------------------------------------------------------------------
def pack_table(sizes: Sizes) -> list[str]:
    """One trial against a pack of PACK_MEMBERS (learning rates and betas of their own), both set
    up as the sweep sets them up; precision auto (bf16 where the GPU has it, else fp32 for a pack)."""
    lines = [(f"| model | one trial (img/s) | pack of {PACK_MEMBERS} (img/s, all members) | ratio "
              "| peak GPU MB one / pack |"), "|---|---:|---:|---:|---:|"]
    for name in ("VAE mlp", "VAE conv"):
        spec = _spec(name, sizes).with_values({"train.steps_per_epoch": sizes.timed_steps})
        count = spec.train.batch_size * sizes.timed_steps
        _reset_memory(sizes.device)
        alone, _ = trial_seconds(spec, sizes.warm_up_steps)
        alone_memory = _peak_memory(sizes.device)
        members = [spec.with_values({"train.lr": spec.train.lr * (1 + index % 4), "model.beta": 0.5 + 0.25 * index})
                   for index in range(PACK_MEMBERS)]
        _reset_memory(sizes.device)
        packed, _ = trial_seconds(spec, sizes.warm_up_steps, packed_specs=members)
        rates = count / alone, PACK_MEMBERS * count / packed
        lines.append(f"| {name} | {rates[0]:,.0f} | {rates[1]:,.0f} | {rates[1] / rates[0]:.2f}x "
                     f"| {alone_memory} / {_peak_memory(sizes.device)} |")
    return lines


# -- 3. fractional GPUs -------------------------------------------------------------------------------
def fractional_table(sizes: Sizes) -> list[str]:
    """Wall time of `gensweep run` of sizes.fractional_trials conv VAEs sharing one GPU (0.25 each)
    and at gpu 1, on a
    Ray started here with exactly one GPU declared: so gpu 1 means one at a time on any machine,
    and the CPU fallback (whose trials train on the CPU) schedules them as a GPU machine would."""
    import ray
    from sweep_timing import draw_digits_first, sweep_seconds_on_running_ray

    document = {
        "model": {"name": "vae", "arch": "conv", "latent_dim": 20},
        "data": {"name": "digits", "train_size": sizes.sweep_images, "val_size": sizes.sweep_images // 4},
        "train": {"epochs": sizes.sweep_epochs, "batch_size": max(2, 128 // sizes.batch_divisor), "log_every": 10_000,
                  "device": sizes.device.type},
        "quality": {"every": 0},
        "search": {"train.seed": {"grid": list(range(sizes.fractional_trials))}},
    }
    draw_digits_first(document)
    cpus = os.cpu_count() or 1
    ray.init(address="local", num_cpus=cpus, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        # Alternating, the fastest of each: the first sweep also pays Ray's first worker
        # processes (in the fallback, 14 s against 7 s for the same work one at a time).
        share = sizes.gpu_share
        runs: dict[float, list[float]] = {share: [], 1: []}
        for repeat in range(sizes.sweep_repeats):
            for gpu, seconds in runs.items():
                seconds.append(sweep_seconds_on_running_ray(
                    {**document, "name": f"gpu{str(gpu).replace('.', '')}-{repeat}",
                     "resources": {"cpu": cpus / sizes.fractional_trials, "gpu": gpu}}))
        walls = {gpu: min(seconds) for gpu, seconds in runs.items()}
    finally:
        ray.shutdown()
    trials = sizes.fractional_trials
    return [(f"| {trials} conv VAEs, {sizes.sweep_epochs} epochs of {sizes.sweep_images:,} images "
            f"| wall (s, fastest of {sizes.sweep_repeats}) |"),
            "|---|---:|",
            f"| resources.gpu: {share:g} (all {trials} on the GPU at once) | {walls[share]:.1f} |",
            f"| resources.gpu: 1 (one at a time) | {walls[1]:.1f} |",
            f"| ratio | {walls[1] / walls[share]:.2f}x |"]


def finite_figures(line: str) -> bool:
    """True when every number in a table row is finite (the tests' check of the fallback)."""
    cells = [cell.strip().rstrip("x").replace(",", "") for cell in line.strip("|").split("|")]
    numbers = []
    for cell in cells:
        try:
            numbers.append(float(cell))
        except ValueError:
            continue
    return bool(numbers) and all(math.isfinite(number) for number in numbers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="also write the tables to this file (markdown)")
    parser.add_argument("--cpu-fallback", action="store_true",
                        help="the same measurements on the CPU with tiny sizes (a test of the code, not a benchmark)")
    args = parser.parse_args()
    if not args.cpu_fallback and not torch.cuda.is_available():
        print(NO_GPU)
        return
    device = torch.device("cpu") if args.cpu_fallback else torch.device("cuda", 0)
    sizes = Sizes(device)
    started = time.perf_counter()
    sections = [("Training on the GPU: plain loops against the trial's loop", training_table),
                (f"Packs of {PACK_MEMBERS} against one trial (tune.pack)", pack_table),
                (f"{sizes.fractional_trials} trials at {sizes.gpu_share:g} GPU against one at a time", fractional_table)]
    body = []
    for title, make in sections:
        section_start = time.perf_counter()
        body += [f"## {title}", "", *make(sizes), ""]
        print(f"{title}: {time.perf_counter() - section_start:.1f} s", file=sys.stderr, flush=True)
    what = "CPU fallback (tiny sizes, not a benchmark)" if args.cpu_fallback else torch.cuda.get_device_name(device)
    header = (f"`bench/gpu.py`: {what}; torch {torch.__version__}; {sizes.warm_up_steps} warm-up steps, "
              f"{sizes.timed_steps} timed; {(time.perf_counter() - started) / 60:.1f} minutes, {time.strftime('%Y-%m-%d')}.")
    text = "\n".join(["# gensweep on a GPU", "", header, "", *body])
    if args.out:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
