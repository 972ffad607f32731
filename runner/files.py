"""Small files written whole or not at all, so a reader (or a resume) never sees half of one."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from typing import Any

from runner.errors import GensweepError


class DiskFullError(GensweepError):
    """The filesystem holding the run directory is full; one-line message."""

    exit_status = 1  # not the user's mistake (2): the machine's state


def write_json(path: Path, value: Any) -> None:
    write_bytes(path, json.dumps(value, indent=2, default=str).encode())


def read_json(path: Path) -> Any:
    """The parsed file, or None when it is missing or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_bytes(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_bytes(content)
        temporary.replace(path)
    except BaseException:
        # A full disk (or a signal) mid-write: no half-written temporary stays behind.
        temporary.unlink(missing_ok=True)
        raise


# How a full disk reads in the text of errors from elsewhere: the OS (a trial's, pyarrow's), SQLite.
_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded", "database or disk is full")


def is_disk_full(error: BaseException | str) -> bool:
    """ENOSPC, as an OSError or in the text of an error reported from elsewhere (a trial, pyarrow,
    Optuna's SQLite storage)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return any(words in str(error) for words in _DISK_FULL_WORDS)


def mount_point(path: Path) -> Path:
    """The mount point of the filesystem that holds path: where a full disk is full."""
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def cache_dir() -> Path:
    """Where gensweep keeps what it makes once for many runs (drawn digits, decoded images,
    feature networks, the Ray `gensweep up` keeps): GENSWEEP_CACHE, else the XDG cache."""
    root = os.environ.get("GENSWEEP_CACHE") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "gensweep"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path
