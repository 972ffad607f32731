"""Wall time of `gensweep run` on a spec document, as a user runs it (start-up included)."""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def draw_digits_first(document: dict) -> None:
    """The spec's digits drawn (and cached) once, before any clock starts."""
    from runner.data import cached_digits

    cached_digits(document["data"]["train_size"], 0, "train")
    cached_digits(document["data"]["val_size"], 0, "val")


def sweep_seconds(document: dict) -> float:
    """Seconds of `gensweep run` on `document`, in a fresh directory removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as work:
        (Path(work) / "spec.yaml").write_text(yaml.safe_dump(document))
        start = time.perf_counter()
        subprocess.run([str(ROOT / ".venv" / "bin" / "gensweep"), "run", "spec.yaml", "--storage-path", "out"],
                       cwd=work, check=True, capture_output=True)
        return time.perf_counter() - start
