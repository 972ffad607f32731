"""Many short trials: what a sweep of 16 two-epoch trials on 2 slots costs beyond its fixed
start-up, against 16 x one trial trained alone / 2 (issue 19's goal: within 10%, every run).

    .venv/bin/python bench/short_trials.py [--runs 3] [--trials 16]

The trial is the default sweep's (search_spaces/vae_latent.yaml: the MLP VAE on 20,000 drawn
digits, its quality metrics included) cut to 2 epochs; the 16 trials differ by train.seed.
"One trial alone" is runner.train.loop.train in this process on one thread, no Ray (the faster
of two, imports warm): the work a trial does. The fixed start-up is `gensweep run` of one trial
less that. Each run measures the one-trial and the 16-trial sweep back to back, so a run's
ratio is taken under one machine load.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_timing import draw_digits_first, sweep_seconds

EPOCHS = 2


def short_spec() -> dict:
    document = yaml.safe_load((ROOT / "search_spaces" / "vae_latent.yaml").read_text())
    document["train"]["epochs"] = EPOCHS
    document["search"] = {}
    return document


def one_trial_alone(document: dict) -> float:
    import torch

    from runner.spec import parse_document
    from runner.train import loop

    torch.set_num_threads(document["resources"]["cpu"])
    spec = parse_document(document, "bench")
    start = time.perf_counter()
    loop.train(spec)
    return time.perf_counter() - start


def table(runs: int = 3, trials: int = 16) -> list[str]:
    document = short_spec()
    draw_digits_first(document)
    alone = min(one_trial_alone(document) for _ in range(2))
    slots = max(1, (os.cpu_count() or 1) // document["resources"]["cpu"])
    ideal = trials / slots * alone
    lines = [
        (f"{trials} trials of {EPOCHS} epochs (the default sweep's VAE and data, its quality metrics included, "
        f"train.seed swept) on {slots} slots; one trial alone (no Ray, 1 thread): **{alone:.2f} s**, "
        f"so the ideal is {trials}/{slots} x {alone:.2f} = {ideal:.1f} s beyond the fixed start-up."),
        "",
        (f"| run | `gensweep run` of 1 trial (s) | fixed start-up (s) | `gensweep run` of {trials} trials (s) "
        "| beyond start-up (s) | overhead (goal <= 10%) | load |"),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in range(1, runs + 1):
        one = copy.deepcopy(document) | {"name": "short1"}
        many = copy.deepcopy(document) | {"name": f"short{trials}",
                                          "search": {"train.seed": {"grid": list(range(trials))}}}
        wall_one = sweep_seconds(one)
        wall_many = sweep_seconds(many)
        startup = wall_one - alone
        beyond = wall_many - startup
        lines.append(f"| {run} | {wall_one:.1f} | {startup:.1f} | {wall_many:.1f} | {beyond:.1f} | "
                     f"{100 * (beyond / ideal - 1):+.0f}% | {os.getloadavg()[0]:.1f} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    print("\n".join(table(args.runs, args.trials)))


if __name__ == "__main__":
    main()
