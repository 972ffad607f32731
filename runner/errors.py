"""Errors a user can act on: each carries one line that names what and where."""

from __future__ import annotations

import traceback
from pathlib import Path


class GensweepError(Exception):
    """Base of the errors the CLI prints as `error: <message>` with exit status 2."""


def one_line(error: BaseException) -> str:
    """An error as one line: our own errors as they are, others with their type and place."""
    lines = str(error).strip().splitlines()
    message = lines[0] if lines else ""
    if isinstance(error, GensweepError):
        return message
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {message}{where}"
