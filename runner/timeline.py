"""Wall-clock marks of where a run's seconds go (process start, spec checked, Ray up, a trial's
first batch, ...), written only when the GENSWEEP_TIMELINE environment variable names a file:
bench/startup.py sets it and reads the marks back. Otherwise a mark costs one dictionary lookup.

Trial processes write to the same file (they inherit the variable from the Ray this process
starts); each line is `<unix time>\t<pid>\t<phase>`, appended whole in one write, so lines from
several processes never interleave.
"""

from __future__ import annotations

import os
import time

TIMELINE_VARIABLE = "GENSWEEP_TIMELINE"


def mark(phase: str) -> None:
    """Record that `phase` was reached now, in this process."""
    path = os.environ.get(TIMELINE_VARIABLE)
    if not path:
        return
    line = f"{time.time():.6f}\t{os.getpid()}\t{phase}\n".encode()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)


def read(path: str) -> list[tuple[float, int, str]]:
    """The marks in a timeline file, in the order they were written."""
    marks = []
    with open(path) as lines:
        for line in lines:
            seconds, pid, phase = line.rstrip("\n").split("\t", 2)
            marks.append((float(seconds), int(pid), phase))
    return marks
