"""Driving a real `gensweep run` from a test: started in the background with its output in a
file, waited on by condition (never by a sleep that hopes), and never left running."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
LOG_FILE = "run.log"


def start_run(cwd: Path, *arguments: str) -> subprocess.Popen:
    """`gensweep run ARGUMENTS` in cwd. Its output goes to cwd/run.log, not a pipe nobody reads
    while the test waits: a full pipe would block the driver at its next line, and the sweep."""
    with open(cwd / LOG_FILE, "w") as log:
        return subprocess.Popen([GENSWEEP, "run", *arguments], cwd=cwd, stdout=log, stderr=subprocess.STDOUT)


def wait_for(condition: Callable[[], Any], what: str, process: subprocess.Popen, seconds: float = 600) -> Any:
    """Poll until `condition()` is true (its value) while the run goes on; fail when it ended or
    after `seconds` (Ray's start and the data's first drawing included)."""
    deadline = time.time() + seconds
    while not (value := condition()):
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}"
        assert time.time() < deadline, f"gave up after {seconds:.0f} s waiting for {what}"
        time.sleep(0.05)
    return value


def output_at_exit(process: subprocess.Popen, cwd: Path) -> str:
    process.wait(timeout=300)
    return (cwd / LOG_FILE).read_text()


def end_if_running(process: subprocess.Popen) -> None:
    """A failed test must not leave its sweep training on the machine's cores."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=60)
