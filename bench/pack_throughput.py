"""Packed trials (tune.pack) against one trial alone: aggregate images per second.

Both run the same epoch loop (runner.train.loop.train_epoch) on the same data and thread count (one
thread: what a trial with resources.cpu 1 gets), alternating, median of the repeats. The pack
trains K members, each with its own learning rate and beta, so its images are K per batch.

    .venv/bin/python bench/pack_throughput.py [--members 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

CONFIGS = {  # name: (model section, batch size, training images)
    "VAE mlp 784-400-20 (the paper's), batch 128": ({"name": "vae", "arch": "mlp", "hidden_dim": 400, "latent_dim": 20}, 128, 8192),
    "VAE mlp 784-64-8, batch 32": ({"name": "vae", "arch": "mlp", "hidden_dim": 64, "latent_dim": 8}, 32, 4096),
    "VAE conv, batch 64": ({"name": "vae", "arch": "conv", "hidden_dim": 128, "latent_dim": 8}, 64, 1024),
}


def _spec(model: dict, batch_size: int, images: int):
    from runner.spec import parse_document

    return parse_document(
        {"name": "bench", "model": model, "data": {"name": "digits", "train_size": images, "val_size": 64},
         "train": {"epochs": 1, "batch_size": batch_size, "device": "cpu", "log_every": 10_000}}, "bench")


def _epoch_seconds(model, data, spec) -> float:
    from runner.train import loop

    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    means, _ = loop.train_epoch(model, data, spec, generator, 0, log_step=lambda values, step: None)
    float(means["loss"].sum())  # the epoch's last work done
    return time.perf_counter() - start


def measure(model_section: dict, batch_size: int, images: int, members: int, repeats: int) -> tuple[float, float]:
    """(images/s of one trial alone, aggregate images/s of a pack of `members`)."""
    import models
    from models.packing import PackedModels
    from runner.train import loop
    from runner.train.tensors import load_tensors

    torch.set_num_threads(1)
    spec = _spec(model_section, batch_size, images)
    data = load_tensors(spec.data_name, spec.data)
    precision = loop.autocast_dtype("auto", torch.device("cpu"))

    def build(index: int):
        lr, beta = 1e-3 * (1 + index % 4), 0.5 + 0.25 * index
        model = models.build("vae", {**{k: v for k, v in model_section.items() if k != "name"}, "beta": beta}, spec.data_info, lr)
        model.use_mixed_precision(precision)
        return model

    alone, packed = [], []
    for _ in range(repeats + 1):  # the first round warms up both
        alone.append(images / _epoch_seconds(build(0), data, spec))
        packed.append(members * images / _epoch_seconds(PackedModels([build(i) for i in range(members)]), data, spec))
    return statistics.median(alone[1:]), statistics.median(packed[1:])


def pack_table(members: int, repeats: int, scale: float = 1.0) -> list[str]:
    rows = [f"| model | one trial alone (img/s) | pack of {members} (img/s, all members) | ratio |", "|---|---:|---:|---:|"]
    for name, (model, batch_size, images) in CONFIGS.items():
        alone, packed = measure(model, batch_size, max(batch_size * 4, int(images * scale)), members, repeats)
        rows.append(f"| {name} | {alone:,.0f} | {packed:,.0f} | {packed / alone:.2f}x |")
    return rows


SWEEP = {  # eight small VAEs that differ in learning rate and beta: what packs are for
    "model": {"name": "vae", "arch": "mlp", "hidden_dim": 64, "latent_dim": 8},
    "data": {"name": "digits", "train_size": 8192, "val_size": 512},
    "train": {"epochs": 10, "batch_size": 32},
    "quality": {"every": 0},
    "resources": {"cpu": 1},
    "search": {"train.lr": {"loguniform": [1e-4, 1e-2]}, "model.beta": {"uniform": [0.5, 4.0]}},
}


def sweep_table(trials: int, pack: int, scale: float = 1.0) -> list[str]:
    """Wall time of `gensweep run` of the same sweep unpacked and packed, start-up included."""
    import os

    from sweep_timing import draw_digits_first, sweep_seconds

    spec = {**SWEEP, "data": {**SWEEP["data"], "train_size": int(SWEEP["data"]["train_size"] * scale)}}
    draw_digits_first(spec)
    walls = {size: sweep_seconds({**spec, "name": f"pack{size}", "tune": {"num_samples": trials, "pack": size}})
             for size in (1, pack)}
    slots = os.cpu_count()
    return [
        f"| {trials} trials of a 784-64-8 VAE, {spec['train']['epochs']} epochs, on {slots} slots | wall (s) |",
        "|---|---:|",
        f"| one trial per process (`pack: 1`) | {walls[1]:.1f} |",
        f"| packs of {pack} (`pack: {pack}`, {trials // pack} packs) | {walls[pack]:.1f} |",
        f"| ratio | {walls[1] / walls[pack]:.2f}x |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sweep", action="store_true", help="also time a whole sweep, packed and not")
    args = parser.parse_args()
    print("\n".join(pack_table(args.members, args.repeats)))
    if args.sweep:
        print("\n".join(sweep_table(8, 4)))


if __name__ == "__main__":
    main()
