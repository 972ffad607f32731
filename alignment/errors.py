"""AlignError: an alignment that cannot start. A GensweepError, so the CLI prints it as one line
(runner.errors is one of the neutral helpers alignment may import)."""

from __future__ import annotations

from runner.errors import GensweepError


class AlignError(GensweepError, ValueError):
    """The alignment cannot start (no frames, a bad reference); one-line message."""
