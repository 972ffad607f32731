"""How long the light commands take, whole process: `gensweep --help`, `validate`, `show` and
`report` (issue 15's goal: show and validate under 0.5 s, neither importing torch).

    .venv/bin/python bench/cli_startup.py [--against OTHER_TREE] [--repeats 5]

Each command runs as `python -c "import runner.cli; runner.cli.entry()" ARGS` with the tree on
PYTHONPATH, its wall time and peak RSS taken from the child's own rusage; with --against, the
same commands on another checkout (e.g. a `git worktree` of an older commit), alternating, so
both sides see the same machine noise. The run directory is made here in the layout a sweep
writes (sweep.json and one gensweep.json record a trial).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = "import sys, runner.cli; sys.argv[0] = 'gensweep'; runner.cli.entry()"


def make_run(directory: Path, trials: int = 8) -> Path:
    run = directory / "run"
    run.mkdir()
    (run / "sweep.json").write_text(json.dumps({"metrics": ["val/recon"], "modes": ["min"]}))
    for index in range(trials):
        trial = run / f"latent_dim={2 ** index}_{index:04d}"
        trial.mkdir()
        record = {"trial_id": f"{index:04d}", "status": "finished", "swept": {"model.latent_dim": 2 ** index},
                  "config": {"model.latent_dim": 2 ** index}, "metrics": {"val/recon": 100.0 - index}, "epoch": 3,
                  "error": None}
        (trial / "gensweep.json").write_text(json.dumps(record))
    return run


def timed(tree: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one whole process."""
    start = time.perf_counter()
    # cwd is the tree: `python -c` puts the working directory first on sys.path.
    process = subprocess.Popen([sys.executable, "-c", LAUNCH, *args], cwd=tree, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(tree)})
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{tree}: gensweep {' '.join(args)} failed")
    return seconds, usage.ru_maxrss / 1024


def table(repeats: int = 5, against: Path | None = None) -> list[str]:
    with tempfile.TemporaryDirectory() as scratch:
        run = make_run(Path(scratch))
        commands = {"--help": ["--help"], "validate": ["validate", "search_spaces/vae_latent.yaml"],
                    "show": ["show", str(run)], "report": ["report", str(run), "-o", str(Path(scratch) / "r.html")]}
        trees = {"this tree": ROOT, **({f"{against.name}": against} if against else {})}
        results = {(label, name): [] for label in trees for name in commands}
        for _ in range(repeats):
            for name, args in commands.items():
                for label, tree in trees.items():  # alternating: both sides see the same noise
                    results[label, name].append(timed(tree, args))
    header = "| command | " + " | ".join(f"{label}: s (median) / peak MB" for label in trees) + " |"
    lines = [f"Whole process, median of {repeats}, alternating.", "", header, "|---|" + "---:|" * len(trees)]
    for name in commands:
        cells = []
        for label in trees:
            seconds, megabytes = zip(*results[label, name])
            cells.append(f"{statistics.median(seconds):.2f} / {max(megabytes):.0f}")
        lines.append(f"| `gensweep {name}` | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another checkout to time beside this one")
    args = parser.parse_args()
    print("\n".join(table(args.repeats, args.against)))


if __name__ == "__main__":
    main()
