"""Where the seconds of a one-trial sweep go: `gensweep run` of the default VAE (one trial, one
epoch) broken into phases, beside the whole process of the plain script a researcher would
write instead (bench/plain_vae.py: same model, same data, same threads).

    .venv/bin/python bench/startup.py [--repeats 5] [--against OTHER_TREE] [--up]

The two (three with --against: the same run on another checkout, e.g. a `git worktree` of an
older commit) run alternately, so every side sees the same machine noise; each figure is the
median over the repeats. The phases come from the marks gensweep writes when GENSWEEP_TIMELINE
names a file (runner/timeline.py): each mark's time since the process was started, the trial
process's marks included. --up: also a run that joins a Ray kept up by `gensweep up`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.sweep_timing import draw_digits_first
from runner.data.digits import digits_cache_path
from runner.files import cache_dir
from runner.timeline import TIMELINE_VARIABLE, read

# What each mark ends, in the order a run without overlap reaches them.
PHASES = [
    ("command started", "imports (Python, click, gensweep's modules)"),
    ("spec checked", "spec check"),
    ("data ready", "data check"),
    ("ray ready", "Ray start (or join)"),
    ("tune starting", "Tune set-up (Tuner, Optuna study)"),
    ("trial started", "first trial process ready"),
    ("first batch trained", "trial set-up to first batch"),
    ("epoch 1 reported", "one epoch, to its report"),
    ("tune finished", "Tune's end of the sweep"),
    ("ray shut down", "Ray shutdown"),
    ("records written", "records and comparison picture"),
    ("exiting", "summary table"),
]


def default_spec() -> dict:
    """The default sweep (search_spaces/vae_latent.yaml) cut to one trial of one epoch."""
    document = yaml.safe_load((ROOT / "search_spaces" / "vae_latent.yaml").read_text())
    document["search"] = {"model.latent_dim": {"grid": [2]}}
    document["train"]["epochs"] = 1
    return document


LAUNCH = "import sys, runner.cli; sys.argv[0] = 'gensweep'; runner.cli.entry()"


def gensweep_run(tree: Path, spec: Path, work: Path, environment: dict[str, str],
                 shared_timeline: Path | None = None) -> tuple[float, dict[str, float]]:
    """Wall seconds of `gensweep run`, and each mark's seconds since the process was started
    (shared_timeline: where the trials of a Ray kept up by `gensweep up` write theirs)."""
    timeline = work / f"timeline-{time.monotonic_ns()}.tsv"
    environment = {**os.environ, "PYTHONPATH": str(tree), TIMELINE_VARIABLE: str(timeline), **environment}
    start_wall, start = time.time(), time.perf_counter()
    subprocess.run([sys.executable, "-c", LAUNCH, "run", str(spec), "--storage-path", str(work / "runs")],
                   cwd=tree, env=environment, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    marks: dict[str, float] = {}
    for path in (timeline, shared_timeline):
        if path is None or not path.exists():  # a tree from before the marks has none
            continue
        for when, _, phase in read(str(path)):
            if when >= start_wall:
                marks.setdefault(phase, when - start_wall)  # the first of each (epoch 1 of the first trial)
    return seconds, marks


def gensweep_command(*arguments: str, environment: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-c", LAUNCH, *arguments], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(ROOT), **environment})


def plain_run(work: Path, threads: int) -> float:
    train, val = digits_cache_path(20000, 0, "train"), digits_cache_path(2000, 0, "val")
    start = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "bench" / "plain_vae.py"), str(train), str(val), "--threads",
                    str(threads), "--out", str(work / "plain.png")], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def table(repeats: int = 5, against: Path | None = None, up: bool = False) -> list[str]:
    document = default_spec()
    draw_digits_first(document)
    # RAY_ADDRESS=local: a Ray of its own, even while `gensweep up` keeps one.
    sides = {"this tree": (ROOT, {"RAY_ADDRESS": "local"})}
    if against is not None:
        sides = {f"{against.name}": (against, {"RAY_ADDRESS": "local"})} | sides
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        work = Path(scratch)
        spec = work / "spec.yaml"
        spec.write_text(yaml.safe_dump(document))
        kept_timeline = work / "kept-ray-timeline.tsv"
        # The kept Ray's state in a cache of this benchmark's own (never a Ray a user keeps up),
        # holding the drawn digits, feature network and real features the other runs use.
        kept = {"GENSWEEP_CACHE": str(work / "kept-ray")}
        if up:
            (work / "kept-ray").mkdir()
            for entry in cache_dir().iterdir():
                if entry.is_file():
                    (work / "kept-ray" / entry.name).symlink_to(entry)
            sides["after `gensweep up`"] = (ROOT, kept)
            gensweep_command("up", environment={**kept, TIMELINE_VARIABLE: str(kept_timeline)})
        try:
            plain: list[float] = []
            walls: dict[str, list[float]] = {name: [] for name in sides}
            marks: dict[str, dict[str, list[float]]] = {name: {} for name in sides}
            for _ in range(repeats):
                plain.append(plain_run(work, threads=1))
                for name, (tree, environment) in sides.items():
                    seconds, seen = gensweep_run(tree, spec, work, environment, kept_timeline if environment is kept else None)
                    walls[name].append(seconds)
                    for phase, when in seen.items():
                        marks[name].setdefault(phase, []).append(when)
        finally:
            if up:
                gensweep_command("down", environment=kept)
    plain_median = statistics.median(plain)
    names = list(sides)
    lines = [
        (f"One trial of one epoch (the default VAE, latent 2, 20,000 drawn digits, batch 128, 1 thread), "
        f"whole process, median of {repeats}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f} at the end:"),
        "",
        "| phase (ends at mark) | " + " | ".join(f"{name}: mark at (s) | {name}: phase (s)" for name in names) + " |",
        "|---" * (1 + 2 * len(names)) + "|",
    ]
    for phase, description in PHASES:
        cells = []
        for name in names:
            at = marks[name].get(phase)
            # the marks of this table only: a phase ends at its mark and starts at the last one before
            order = sorted((statistics.median(v), p) for p, v in marks[name].items() if p in dict(PHASES))
            if not at:
                cells += ["-", "-"]
                continue
            here = statistics.median(at)
            before = max((when for when, p in order if when < here), default=0.0)
            cells += [f"{here:.2f}", f"{here - before:.2f}"]
        lines.append(f"| {description} (`{phase}`) | " + " | ".join(cells) + " |")
    lines.append("| **whole process** | " + " | ".join(
        f"**{statistics.median(walls[name]):.2f}** | " for name in names) + " |")
    lines.append("")
    lines.append(f"The plain script's whole process (bench/plain_vae.py, the same model, data and thread count): "
                 f"**{plain_median:.2f} s**.")
    for name in names:
        lines.append(f"- {name}: gensweep / plain = **{statistics.median(walls[name]) / plain_median:.2f}x** "
                     f"(goal <= 1.5x); runs {', '.join(f'{s:.1f}' for s in walls[name])} s; "
                     f"plain {', '.join(f'{s:.1f}' for s in plain)} s")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to run side by side (e.g. a worktree)")
    parser.add_argument("--up", action="store_true", help="also time a run joining a Ray kept up by `gensweep up`")
    args = parser.parse_args()
    print("\n".join(table(args.repeats, args.against, args.up)))


if __name__ == "__main__":
    main()
