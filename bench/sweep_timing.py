"""Wall time of `gensweep run` on a spec document, as a user runs it (start-up included)."""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def draw_digits_first(document: dict) -> None:
    """The spec's digits drawn (and cached) once, before any clock starts."""
    from runner.data import cached_digits

    cached_digits(document["data"]["train_size"], 0, "train")
    cached_digits(document["data"]["val_size"], 0, "val")


@contextlib.contextmanager
def _spec_directory(document: dict) -> Iterator[Path]:
    """A fresh directory holding spec.yaml, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as work:
        (Path(work) / "spec.yaml").write_text(yaml.safe_dump(document))
        yield Path(work)


def sweep_seconds(document: dict) -> float:
    """Seconds of `gensweep run` on `document` in a process of its own, Ray's start included."""
    with _spec_directory(document) as work:
        start = time.perf_counter()
        subprocess.run([str(ROOT / ".venv" / "bin" / "gensweep"), "run", "spec.yaml", "--storage-path", "out"],
                       cwd=work, check=True, capture_output=True)
        return time.perf_counter() - start


def sweep_seconds_on_running_ray(document: dict) -> float:
    """Seconds of `gensweep run` on `document` in this process, joining the Ray this process
    already started (so the caller chooses the resources Ray sees, GPUs included). Its output
    goes to stderr: stdout stays the caller's."""
    import sys

    from runner.cli import main

    with _spec_directory(document) as work, contextlib.redirect_stdout(sys.stderr):
        start = time.perf_counter()
        try:
            main.main(["run", str(work / "spec.yaml"), "--storage-path", str(work / "out")], standalone_mode=False)
        except SystemExit as done:  # the command's own exit status: 0 when a trial finished
            if done.code not in (0, None):
                raise RuntimeError(f"gensweep run of {document['name']} exited {done.code}") from None
        return time.perf_counter() - start
