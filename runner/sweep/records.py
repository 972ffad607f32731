"""What the driver writes into trial records: the status of a trial that Tune completed.

A trial says `finished` itself once its last report returned; but a scheduler ends a trial at a
report (ASHA's stop, its max_t), and then only the driver knows. It says so as Tune completes
the trial, not at the sweep's end, so `gensweep show` during a sweep, and a sweep cut short by
a second Ctrl-C or a full disk, show it finished or stopped, not running or interrupted.
"""

from __future__ import annotations

from pathlib import Path

from ray.tune import Callback

from runner.files import read_json, write_json
from runner.results.report import RECORD_FILE


def completed_status(record: dict) -> str:
    """finished when Tune completed it at its last epoch, else stopped (early, by the scheduler)."""
    last = record.get("epoch") == (record.get("config") or {}).get("train.epochs")
    return "finished" if last else "stopped"


def mark_completed(record_path: Path) -> None:
    """A record still `running` (or `interrupted`) of a trial Tune completed: finished or stopped.
    The trial process writes no more after its last report, so nothing overwrites this."""
    record = read_json(record_path)
    if isinstance(record, dict) and record.get("status") in ("running", "interrupted"):
        write_json(record_path, record | {"status": completed_status(record)})


class CompletedRecords(Callback):
    """Driver-side Tune callback: each trial Tune completes (its last result says done) gets its
    record marked at once. Holds nothing: Tune pickles its callbacks with the experiment."""

    def on_trial_complete(self, iteration, trials, trial, **info):
        if (trial.last_result or {}).get("done") and trial.path:
            mark_completed(Path(trial.path) / RECORD_FILE)
