"""Tune's per-trial result files (result.json, progress.csv), written by the driver, that keep
a retried trial's results: Ray's own loggers lost those reported since Tune last copied the
driver's files into the run directory (runner.ray_internals.keep_the_drivers_newer_trial_files
says how). Classes at module level: Tune pickles its callbacks with the run, for a resume."""

from __future__ import annotations

from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

from runner.ray_internals import keep_the_drivers_newer_trial_files


class JsonResults(JsonLoggerCallback):
    """result.json: a line a report."""


class CsvResults(CSVLoggerCallback):
    """progress.csv: a row a report."""


keep_the_drivers_newer_trial_files(JsonResults)
keep_the_drivers_newer_trial_files(CsvResults)
