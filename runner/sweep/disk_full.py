"""A full disk under a sweep: Ray's messages about it (a traceback per failed trial, per retry,
per failed sync of the experiment state: hundreds of lines) are held back and noted, so the
sweep can end with one line saying so (runner.sweep.driver raises DiskFullError)."""

from __future__ import annotations

import logging
import traceback
from typing import Self

from runner.files import is_disk_full


class DiskFullWatch(logging.Filter):
    """While a sweep runs: drop Ray's log records about a full disk, and remember one came."""

    def __init__(self):
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "".join(traceback.format_exception(*record.exc_info))
        if is_disk_full(text):
            self.seen = True
            return False
        return True

    def __enter__(self) -> Self:
        # Ray's loggers do not propagate to the root; they all end in the "ray" logger's handler.
        self._handlers = list(logging.getLogger("ray").handlers)
        for handler in self._handlers:
            handler.addFilter(self)
        return self

    def __exit__(self, *exc) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
