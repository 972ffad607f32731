"""Many short trials: what a sweep of 16 two-epoch trials on 2 slots costs beyond its fixed
start-up, against 16 x one trial trained alone / 2 (issue 19's goal: within 10%, every run).

    .venv/bin/python bench/short_trials.py [--runs 3] [--trials 16]

The trial is the default sweep's (search_spaces/vae_latent.yaml: the MLP VAE on 20,000 drawn
digits, its quality metrics included) cut to 2 epochs; the 16 trials differ by train.seed.
"One trial alone" is runner.train.loop.train in this process on one thread, no Ray (the faster
of two, imports warm): the work a trial does. The fixed start-up is `gensweep run` of one trial
less that. Each run measures the one-trial and the 16-trial sweep back to back, so a run's
ratio is taken under one machine load.

Two more figures say where the rest goes. "Two alone side by side": the same trial in two
processes at once, no Ray: what a trial takes when both cores are busy, the machine's own share
(shared caches and memory bandwidth). And the CPU seconds of every process of each 16-trial run,
read every 0.25 s from the process tree under `gensweep run` (its Ray included): the trial
processes against 16 x the trial alone, the driver, and Ray's own processes.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from sweep_timing import draw_digits_first, sweep_seconds

GENSWEEP = ROOT / ".venv" / "bin" / "gensweep"

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


def two_alone_side_by_side(document: dict) -> float:
    """Seconds of one trial alone when two run at once, each in its own process (the slower of
    the two processes' faster of two trials)."""
    script = ("import sys, json; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/bench']; "
              "from short_trials import one_trial_alone; document = json.loads(sys.argv[2]); "
              "one_trial_alone(document); print(min(one_trial_alone(document) for _ in range(2)))")
    both = [subprocess.Popen([sys.executable, "-c", script, str(ROOT), json.dumps(document)], stdout=subprocess.PIPE,
                             text=True) for _ in range(2)]
    return max(float(process.communicate()[0].split()[-1]) for process in both)


RAYS_OWN = ("gcs_server", "raylet", "dashboard", "agent", "monitor")


def _process_kind(process: psutil.Process, driver_pid: int) -> str:
    if process.pid == driver_pid:
        return "driver (`gensweep run`)"
    command = " ".join(process.cmdline())  # a worker's reads ray::<its task or actor> once it has one
    if command.startswith("ray::ImplicitFunc"):
        return "trial processes"
    if "default_worker.py" in command or command.startswith("ray::") or not any(name in command for name in RAYS_OWN):
        return "other Ray workers"
    return "Ray's own processes (GCS, raylet, agents, monitors)"


def sweep_cpu_seconds(document: dict) -> tuple[float, dict[str, float]]:
    """Wall seconds of `gensweep run` on `document`, and the CPU seconds of each kind of process
    under it (each process's last reading: a process read 0.25 s before its end loses that)."""
    last: dict[int, tuple[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as work:
        (Path(work) / "spec.yaml").write_text(yaml.safe_dump(document))
        start = time.perf_counter()
        run = subprocess.Popen([str(GENSWEEP), "run", "spec.yaml", "--storage-path", "out"], cwd=work,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        driver = psutil.Process(run.pid)
        while run.poll() is None:
            try:
                tree = [driver, *driver.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            for process in tree:
                try:
                    times = process.cpu_times()
                    kind = last[process.pid][0] if process.pid in last else _process_kind(process, run.pid)
                    if kind == "other Ray workers":  # a worker is named for its trial once it has one
                        kind = _process_kind(process, run.pid)
                    last[process.pid] = (kind, times.user + times.system)
                except psutil.Error:
                    pass
            time.sleep(0.25)
        seconds = time.perf_counter() - start
        if run.wait() != 0:
            raise RuntimeError(f"gensweep run of {document['name']} exited {run.returncode}")
    by_kind: dict[str, float] = collections.defaultdict(float)
    for kind, cpu in last.values():
        by_kind[kind] += cpu
    return seconds, by_kind


def table(runs: int = 3, trials: int = 16) -> list[str]:
    document = short_spec()
    draw_digits_first(document)
    one_trial_alone(document)  # imports warm
    slots = max(1, (os.cpu_count() or 1) // document["resources"]["cpu"])
    lines = [
        (f"{trials} trials of {EPOCHS} epochs (the default sweep's VAE and data, its quality metrics included, "
         f"train.seed swept) on {slots} slots. Each run times one trial alone (no Ray, 1 thread, the faster of "
         f"two), then two alone side by side (two processes at once, no Ray: what a trial takes when both cores "
         f"are busy), then `gensweep run` of 1 trial and of {trials}: the ideal is {trials}/{slots} x alone beyond "
         "the fixed start-up (`gensweep run` of 1 trial less alone); \"against two side by side\" puts the "
         f"side-by-side time in place of alone ({trials}/{slots} x it: what this machine gives two trials at once)."),
        "",
        (f"| run | alone (s) | two side by side (s each) | `gensweep run` of 1 trial (s) | fixed start-up (s) "
         f"| `gensweep run` of {trials} trials (s) | beyond start-up (s) | ideal (s) | overhead (goal <= 10%) "
         "| against two side by side | load |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cpu_rows: list[dict[str, float]] = []
    work_alone: list[float] = []
    for run in range(1, runs + 1):
        one = copy.deepcopy(document) | {"name": "short1"}
        many = copy.deepcopy(document) | {"name": f"short{trials}",
                                          "search": {"train.seed": {"grid": list(range(trials))}}}
        alone = min(one_trial_alone(document) for _ in range(2))
        side_by_side = two_alone_side_by_side(document)
        ideal = trials / slots * alone
        wall_one = sweep_seconds(one)
        wall_many, cpu = sweep_cpu_seconds(many)
        cpu_rows.append(cpu)
        work_alone.append(trials * alone)
        startup = wall_one - alone
        beyond = wall_many - startup
        lines.append(f"| {run} | {alone:.2f} | {side_by_side:.2f} | {wall_one:.1f} | {startup:.1f} | {wall_many:.1f} "
                     f"| {beyond:.1f} | {ideal:.1f} | {100 * (beyond / ideal - 1):+.0f}% "
                     f"| {100 * (beyond / (trials / slots * side_by_side) - 1):+.0f}% | {os.getloadavg()[0]:.1f} |")
    kinds = sorted({kind for row in cpu_rows for kind in row}, key=lambda kind: -cpu_rows[0].get(kind, 0.0))
    lines += ["", f"CPU seconds of each {trials}-trial run's processes, beside {trials} x that run's trial alone:", "",
              "| process | " + " | ".join(f"run {run}" for run in range(1, runs + 1)) + " |",
              "|---|" + "---:|" * runs,
              f"| {trials} x one trial alone | " + " | ".join(f"{seconds:.1f}" for seconds in work_alone) + " |"]
    for kind in kinds:
        lines.append(f"| {kind} | " + " | ".join(f"{row.get(kind, 0.0):.1f}" for row in cpu_rows) + " |")
    lines.append("| **all** | " + " | ".join(f"**{sum(row.values()):.1f}**" for row in cpu_rows) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    args = parser.parse_args()
    print("\n".join(table(args.runs, args.trials)))


if __name__ == "__main__":
    main()
