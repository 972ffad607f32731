"""The trainable the driver hands Ray Tune: runner.sweep.trial's run_trial, imported in the
trial's process only. The driver never calls it, and importing the trial's module brings torch
and the training loop (1.4-1.9 s of `gensweep run`'s start-up, BENCHMARKS.md "Start-up")."""

from __future__ import annotations

from typing import Any


def run_trial(sampled: dict[str, Any], *, document: dict, source: str, grid: dict[str, list]) -> None:
    """The Tune function trainable (runner.sweep.trial.run_trial)."""
    from runner.sweep import trial

    trial.run_trial(sampled, document=document, source=source, grid=grid)
