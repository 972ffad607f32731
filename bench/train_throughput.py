"""Images per second of gensweep's trial loop vs plain loops written like pytorch/examples.

Each model trains for one epoch on the same 10,000 digits two ways in one process, alternating,
and the table shows the median of the repeats and the ratio:

- vae: the MLP VAE (784-400-20, batch 128, Adam 1e-3) against a loop written the way
  pytorch/examples' vae/main.py is: a Dataset handing out PIL images through
  transforms.ToTensor (as torchvision's MNIST does), a DataLoader, the loss summed over the
  batch, and `.item()` every step.
- dcgan: gensweep's DCGAN networks (batch 64, Adam 2e-4, betas 0.5/0.999) against a loop
  written like dcgan/main.py, with those same networks: Dataset + ToTensor + Normalize, a
  DataLoader (no worker processes: on two cores they would only compete with training),
  BCE on D's outputs, separate backward passes for real and fake, and `.item()` for D(x),
  D(G(z)) and both losses every step.

It also times the sample-quality metrics (fd, kid, precision/recall, class score) on 10,000
generated images, sampling included.

`--options` instead measures gensweep's own loop with train.compile off/on and
train.channels_last off/on (VAE mlp, VAE conv, DCGAN; bf16 autocast where the CPU has it, as
train.precision: auto does): images/s of one epoch after a warm-up of two steps, which is where
the compiling happens and is reported apart: cold (the first model, inductor's cache empty) and
warm (a rebuilt model in the same process, which reuses the compiled code: parameters are its
inputs). A new process with inductor's on-disk cache warm, as a later trial on the same machine
is, paid 1-2 s (2026-11-30, when this benchmark still shared that cache).

    .venv/bin/python bench/train_throughput.py [--repeats 3] [--images 10000] [--models vae,dcgan]
    .venv/bin/python bench/train_throughput.py --options [--repeats 3] [--scale 1.0] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models
from runner.data import DigitsData
from runner.spec import parse_document
from runner.train import loop
from runner.train.quality import QualityMeter
from runner.train.tensors import load_tensors

VAE_LATENT = 20


class DigitImages(Dataset):
    """What torchvision's MNIST hands a DataLoader: a PIL image per index, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index], mode="L")
        return self.transform(image), int(self.labels[index])


# -- vae/main.py ------------------------------------------------------------------------------
class ExamplesVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, VAE_LATENT)
        self.fc22 = nn.Linear(400, VAE_LATENT)
        self.fc3 = nn.Linear(VAE_LATENT, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def plain_vae_epoch(images, labels, seed, device="cpu") -> float:
    torch.manual_seed(seed)
    model = ExamplesVAE().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(DigitImages(images, labels, transforms.ToTensor()), batch_size=128, shuffle=True)
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        data = data.to(device)
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        bce = F.binary_cross_entropy(recon_batch, data.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(loader.dataset)


# -- dcgan/main.py ----------------------------------------------------------------------------
def plain_dcgan_epoch(images, labels, seed, device="cpu") -> float:
    torch.manual_seed(seed)
    reference = models.build("gan", {"variant": "dcgan"}, models.DataInfo((1, 28, 28), 10), 2e-4, device)
    net_g, net_d = reference.generator.network, reference.critic.network  # the same networks
    criterion = nn.BCEWithLogitsLoss()  # our D ends in a logit, not examples' sigmoid + BCELoss
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loader = DataLoader(DigitImages(images, labels, transform), batch_size=64, shuffle=True)
    nz = reference.config.latent_dim
    for data in loader:
        net_d.zero_grad()
        real = data[0].to(device)
        batch_size = real.size(0)
        label = torch.full((batch_size,), 1.0, device=device)
        output = net_d(real).view(-1)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        d_x = torch.sigmoid(output).mean().item()
        noise = torch.randn(batch_size, nz, device=device)
        fake = net_g(noise)
        label.fill_(0.0)
        output = net_d(fake.detach()).view(-1)
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = torch.sigmoid(output).mean().item()
        err_d = err_d_real + err_d_fake
        optimizer_d.step()
        net_g.zero_grad()
        label.fill_(1.0)
        output = net_d(fake).view(-1)
        err_g = criterion(output, label)
        err_g.backward()
        d_g_z2 = torch.sigmoid(output).mean().item()
        optimizer_g.step()
        _ = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)  # what examples prints every step
    return err_d.item()


# -- gensweep's loop ----------------------------------------------------------------------------
SPECS = {
    "vae": ({"name": "vae", "arch": "mlp", "latent_dim": VAE_LATENT}, {"batch_size": 128, "lr": 1e-3}),
    "dcgan": ({"name": "gan", "variant": "dcgan"}, {"batch_size": 64, "lr": 2e-4}),
}
PLAIN = {"vae": plain_vae_epoch, "dcgan": plain_dcgan_epoch}


def gensweep_epoch(name, data, count, seed) -> float:
    model_section, train_section = SPECS[name]
    spec = parse_document(
        {
            "name": "bench",
            "model": model_section,
            "data": {"name": "digits", "train_size": count, "val_size": 500},
            "train": {"epochs": 1, "device": "cpu", "seed": seed, **train_section},
        },
        "bench",
    )
    torch.manual_seed(seed)
    model = models.build(spec.model_name, spec.model, data.info, spec.train.lr)
    generator = torch.Generator().manual_seed(seed)
    means, _ = loop.train_epoch(model, data, spec, generator, 0, log_step=lambda values, step: None)
    metrics = {name: float(value) for name, value in means.items()}
    return metrics.get("loss", metrics.get("d_loss"))


# -- train.compile and train.channels_last -----------------------------------------------------------
# model: (model section, batch size, lr, images per epoch), as in bench/run_all.py's table
OPTION_MODELS = {
    "VAE mlp": ({"name": "vae", "arch": "mlp", "latent_dim": VAE_LATENT}, 128, 1e-3, 20_000),
    "VAE conv": ({"name": "vae", "arch": "conv", "latent_dim": VAE_LATENT}, 128, 1e-3, 8_000),
    "DCGAN": ({"name": "gan", "variant": "dcgan"}, 64, 2e-4, 4_000),
}
OPTIONS = [(False, "off"), (False, "on"), (True, "off"), (True, "on")]  # (compile, channels_last)
WARM_UP_STEPS = 2  # the first calls of every network (GAN: both players' steps) compile


def _options_spec(model_section: dict, batch_size: int, lr: float, count: int, **train):
    return parse_document(
        {
            "name": "bench",
            "model": model_section,
            "data": {"name": "digits", "train_size": count, "val_size": 256},
            "train": {"epochs": 1, "device": "cpu", "batch_size": batch_size, "lr": lr, **train},
            "quality": {"every": 0},
            "tune": {"metric": "val/d_loss" if model_section["name"] == "gan" else None},
        },
        "bench",
    )


def options_epoch(spec, data, seed: int) -> tuple[float, float, float]:
    """The loop's set-up for spec's compile and channels_last, WARM_UP_STEPS steps, then one
    timed epoch: (seconds of the warm-up steps, seconds of the epoch, the epoch's loss)."""
    torch.manual_seed(seed)
    device = torch.device("cpu")
    model = models.build(spec.model_name, spec.model, spec.data_info, spec.train.lr, device)
    model.use_mixed_precision(loop.autocast_dtype(spec.train.precision, device))
    layout = loop.memory_format(spec.train.channels_last, model)  # as loop.train sets them up
    model.to(memory_format=layout)
    data = data.to(device, memory_format=layout)
    if spec.train.compile:
        loop.compile_networks(model)
    generator = torch.Generator().manual_seed(seed)
    warm_up = spec.with_values({"train.steps_per_epoch": WARM_UP_STEPS})
    start = time.perf_counter()
    loop.train_epoch(model, data, warm_up, generator, 0, log_step=lambda values, step: None)
    warm_up_seconds = time.perf_counter() - start
    start = time.perf_counter()
    means, _ = loop.train_epoch(model, data, spec, generator, 0, log_step=lambda values, step: None)
    metrics = {name: float(value) for name, value in means.items()}  # the epoch's end: a host sync
    return warm_up_seconds, time.perf_counter() - start, metrics.get("loss", metrics.get("d_loss"))


def options_table(repeats: int, scale: float) -> list[str]:
    """Per model and option: images/s (the fastest repeat, and the median), the ratio of the
    fastest to compile off and channels_last off, the warm-up seconds (cold / warm) and the
    final loss (median).

    The fastest repeat, not the median, leads: other work on a shared machine only ever slows a
    run, so the fastest is the least disturbed. The options take turns within each repeat, so a
    load that changes slows all four alike rather than whichever ran last; VAE mlp has no conv
    weights, so its channels_last rows differ by noise alone and show how large that is."""
    lines = [
        ("| model | compile | channels_last | images/s fastest (median) | vs off/off | warm-up s (cold / warm) "
         "| final loss |"),
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for name, (model_section, batch_size, lr, count) in OPTION_MODELS.items():
        count = max(batch_size * 4, int(count * scale) // batch_size * batch_size)  # whole batches: one shape
        specs = {option: _options_spec(model_section, batch_size, lr, count, compile=option[0], channels_last=option[1])
                 for option in OPTIONS}
        data = load_tensors(specs[OPTIONS[0]].data_name, specs[OPTIONS[0]].data)
        runs = {option: [] for option in OPTIONS}
        for seed in range(repeats):
            for option, spec in specs.items():
                runs[option].append(options_epoch(spec, data, seed))
        rates = {option: count / min(epoch for _, epoch, _ in runs[option]) for option in OPTIONS}
        medians = {option: count / statistics.median(epoch for _, epoch, _ in runs[option]) for option in OPTIONS}
        for (compiled, channels_last), option_runs in runs.items():
            # Compile time: the warm-up steps' seconds beyond what two steps take once compiled.
            extra = [max(0.0, warm - WARM_UP_STEPS * epoch * batch_size / count) for warm, epoch, _ in option_runs]
            warm_up = f"{extra[0]:.1f} / {statistics.median(extra[1:] or extra):.1f}" if compiled else "-"
            loss = statistics.median(loss for _, _, loss in option_runs)
            rate = rates[(compiled, channels_last)]
            median = medians[(compiled, channels_last)]
            lines.append(f"| {name} | {'on' if compiled else 'off'} | {channels_last} | {rate:,.0f} ({median:,.0f}) | "
                         f"{rate / rates[OPTIONS[0]]:.2f}x | {warm_up} | {loss:.4g} |")
            print(lines[-1], file=sys.stderr, flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--models", default="vae,dcgan")
    parser.add_argument("--options", action="store_true", help="compile and channels_last on/off instead")
    parser.add_argument("--scale", type=float, default=1.0, help="--options: share of each model's images")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="--options: torch threads (1 where other work shares the cores: OpenMP threads "
                        "waiting on a descheduled peer make 2-thread figures swing 4x)")
    args = parser.parse_args()
    if args.options:
        # An empty compile cache of its own: "cold" is then the first compile on a fresh machine.
        # Set, not setdefault: importing torchvision above already set it to the shared default
        # (inductor reads the variable again at every cache access, so this takes effect).
        cache = tempfile.mkdtemp(prefix="inductor-bench-")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        torch.set_num_threads(args.threads)
        print(f"# compile / channels_last: one epoch after {WARM_UP_STEPS} warm-up steps, {args.repeats} repeats; "
              f"{platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"native bf16: {loop.cpu_has_native_bf16()}, {time.strftime('%Y-%m-%d')}")
        print("\n".join(options_table(args.repeats, args.scale)))
        shutil.rmtree(cache, ignore_errors=True)
        return

    data = load_tensors("digits", DigitsData(train_size=args.images, val_size=10_000, seed=0))  # uint8 tensors, as a trial holds them
    images = data.train_images[:, 0].numpy()
    labels = data.train_labels.numpy()
    print(f"# train throughput: one epoch on {args.images:,} digits, median of {args.repeats}")
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print()
    print("| model | loop | images/s | epoch s | final loss |")
    print("|---|---|---:|---:|---:|")
    ratios = {}
    for name in args.models.split(","):
        times = {"plain": [], "gensweep": []}
        losses = {"plain": [], "gensweep": []}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            losses["plain"].append(PLAIN[name](images, labels, repeat))
            times["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            losses["gensweep"].append(gensweep_epoch(name, data, args.images, repeat))
            times["gensweep"].append(time.perf_counter() - start)
        rates = {k: args.images / statistics.median(v) for k, v in times.items()}
        for loop_name in ("plain", "gensweep"):
            print(f"| {name} | {loop_name} | {rates[loop_name]:,.0f} | {statistics.median(times[loop_name]):.2f} | {statistics.median(losses[loop_name]):.3f} |")
        ratios[name] = rates["gensweep"] / rates["plain"]
    print()
    for name, ratio in ratios.items():
        print(f"{name}: gensweep / plain = {ratio:.2f}x")

    model = models.build("vae", {"latent_dim": 8}, data.info, 1e-3)
    meter = QualityMeter(data, samples=10_000, device="cpu")
    start = time.perf_counter()
    scores = meter.measure(model, torch.Generator().manual_seed(0))
    print(f"quality metrics on 10,000 samples (sampling included): {time.perf_counter() - start:.1f} s "
          f"({', '.join(sorted(scores))})")


if __name__ == "__main__":
    main()
