"""Names that become paths: a run's name and a trial directory's name.

A name is one path component of safe characters, so that joining it to a directory can never
reach outside that directory (`../x`, `/etc`), hide the result (`.x`) or read as an option (`-x`).
"""

from __future__ import annotations

import re

from runner.errors import GensweepError

MAX_NAME = 100  # characters: room for "-2", "-3", ... and far under a filesystem's 255 bytes
RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
RULE = "one path component of letters, digits, '_', '.' or '-', not starting with '.' or '-'"


class UnsafeNameError(GensweepError):
    """A name that cannot be one directory inside another; one-line message."""


def is_safe_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME and RUN_NAME.fullmatch(name) is not None


def check_run_name(name: object, what: str) -> str:
    """`name` when it is a safe run name, else UnsafeNameError naming `what` (e.g. "--name")."""
    if not is_safe_name(name):
        shown = name if isinstance(name, str) and len(name) <= MAX_NAME else f"{str(name)[:MAX_NAME]}..."
        raise UnsafeNameError(f"{what} {shown!r}: a run name is {RULE}, at most {MAX_NAME} characters")
    return name
