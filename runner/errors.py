"""Errors a user can act on: each carries one line that names what and where."""

from __future__ import annotations

import re
import traceback
from pathlib import Path


class GensweepError(Exception):
    """Base of the errors the CLI prints as `error: <message>` with exit status 2."""


class PermanentError(GensweepError):
    """Fails the same way however often it is tried (a non-finite loss from the same state, an
    unreadable file, no checkpoint that loads): a trial that raises one is not retried."""


# Colours and cursor moves (Ray paints `ray::ImplicitFunc.train()` cyan): never in a record.
_ESCAPES = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-_]")
# The last frame of a traceback kept as text (Ray's, of an exception raised in a worker).
_FRAME = re.compile(r'File "([^"]+)", line (\d+)')


def one_line(error: BaseException) -> str:
    """An error as one line: our own errors as they are, others with their type and place.

    An error raised in a Ray worker reaches the driver wrapped (RayTaskError, around its cause,
    with a cyan process title and a page of traceback): it is unwrapped to its cause's line.
    """
    cause, where = _unwrap_ray(error)
    if cause is not error:
        return one_line(cause) if where is None else _first_line(cause, where)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return _first_line(error, where)


def _first_line(error: BaseException, where: str) -> str:
    lines = [line for line in strip_escapes(str(error)).strip().splitlines() if line.strip()]
    message = lines[0].strip() if lines else ""
    if isinstance(error, GensweepError):
        return message
    return f"{type(error).__name__}: {message}{where}"


class _AsText(GensweepError):
    """An error known only by its text: shown as it is."""


def strip_escapes(text: str) -> str:
    return _ESCAPES.sub("", text)


def _unwrap_ray(error: BaseException) -> tuple[BaseException, str | None]:
    """(the exception a Ray worker raised, " (file:line)" where it did), or (error, None).

    Known by its class's name, not imported: this module is imported by readers of run
    directories, which must not import Ray. Both forms are handled: RayTaskError itself, and
    the "RayTaskError(RuntimeError)" subclass a Tune result holds, whose text is the traceback.
    """
    cause = getattr(error, "cause", None)
    if not isinstance(cause, BaseException) or "RayTaskError" not in {c.__name__ for c in type(error).__mro__}:
        return error, None
    text = error.__dict__.get("traceback_str") or str(error)
    if type(cause).__name__ == "RayError" and "Original exception details" in str(cause):
        # The cause could not be unpickled here: Ray's text of it is all there is.
        lines = [line for line in strip_escapes(text).strip().splitlines() if line.strip()]
        return _AsText(lines[-1].strip() if lines else "a Ray worker failed"), None
    frames = _FRAME.findall(text)
    where = f" ({Path(frames[-1][0]).name}:{frames[-1][1]})" if frames else ""
    return cause, where
