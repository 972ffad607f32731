"""SIGINT and SIGTERM stop a sweep alike: Tune's own graceful stop, then exit 130 or 143.

Ray Tune 2.60 catches SIGINT in Tuner.fit (ray/tune/tune.py, _setup_signal_catching): its loop
ends, the experiment state is saved one last time, the trials are stopped and fit returns. It
leaves SIGTERM to Ray, whose handler in the driver aborts with a page of C++ stack dump and
saves nothing, every trial record left `running`. Here both signals go to Tune's handler,
which Tune installs for SIGUSR1 whatever TUNE_DISABLE_SIGINT_HANDLER says, and the signal
that came is remembered for the exit status. Tune's own words on the way (its "Stop signal
received" warning and its `Tuner.restore(...)` hint, wrong for a gensweep run) are dropped:
the CLI prints the command that resumes a gensweep run instead.

The adapter's two Tune internals (SIGUSR1 and the messages' wording) are checked by
tests/sweep_tests/test_interrupts.py, which fails if Tune changes them.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import Self

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Messages of Tune's logger about an interrupted run that name Tune's API, not gensweep's.
_TUNE_INTERRUPT_MESSAGES = ("Stop signal received", "Experiment has been interrupted", "Trials did not complete")


def exit_status(signum: int) -> int:
    """The shell's convention for a process ended by a signal: 128 + its number (130, 143)."""
    return 128 + signum


class _DropTuneInterruptMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_TUNE_INTERRUPT_MESSAGES)


class StopSignals:
    """While a sweep runs: SIGINT and SIGTERM end it gracefully through Tune, once.

    A second signal stops at once (KeyboardInterrupt), skipping Tune's last save: what a
    second Ctrl-C does in Tune too. `received` holds the first signal's number, or None.
    """

    def __init__(self):
        self.received: int | None = None
        self.settling = False  # Tune's loop has returned: signals are only noted (see settle)

    def __enter__(self) -> Self:
        self._previous = {number: signal.getsignal(number) for number in (*STOP_SIGNALS, signal.SIGUSR1)}
        self._previous_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        # Tune would take SIGINT for itself and give it back after the first one; keep it here.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        # A Tune handler left by an earlier sweep in this process must not catch this one's signal.
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        for number in STOP_SIGNALS:
            signal.signal(number, self._handle)
        self._filter = _DropTuneInterruptMessages()
        logging.getLogger("ray.tune.tune").addFilter(self._filter)
        return self

    def settle(self) -> None:
        """Tune's loop has returned and the records are being made final: a signal now (a
        second Ctrl-C) is noted for the exit status but stops nothing, or a record would be left
        `running` halfway through."""
        self.settling = True

    def _handle(self, signum, frame) -> None:
        if self.settling:
            self.received = self.received or signum
            return
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signum
        tune_stop = signal.getsignal(signal.SIGUSR1)
        if callable(tune_stop):
            tune_stop(signal.SIGUSR1, frame)  # Tune's loop ends at its next step and saves its state
        else:
            raise KeyboardInterrupt  # Tune's loop is not running yet: nothing of it to save

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        if self._previous_env is None:
            os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
        else:
            os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = self._previous_env
        logging.getLogger("ray.tune.tune").removeFilter(self._filter)
