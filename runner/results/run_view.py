"""One model of a run's trials, for every writer of them: which columns a table has, each
trial's mark (best, or on the Pareto front), the objective's text, which trials are scored.

`gensweep show` (runner.results.report: the text table and the CSV) and `gensweep report`
(runner.results.html_report: the HTML page) render a RunView; neither decides any of this again. The
objective's text is objective_text here, which the CLI prints for a spec too.

No torch, no Ray.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runner.results.report import TrialSummary


def objective_text(metrics: Sequence[str], modes: Sequence[str]) -> str:
    """The optimized metrics and their directions: "val/recon (min), val/psnr (max)"; one text
    for `gensweep run`'s and `validate`'s summary, `gensweep show` and the HTML report."""
    return ", ".join(f"{metric} ({mode})" for metric, mode in zip(metrics, modes))


def short_name(path: str) -> str:
    """A swept parameter as a column or a label names it: "model.latent_dim" -> "latent_dim"."""
    return path.split(".")[-1]


def format_value(value: Any) -> str:
    """A table cell: 4 significant digits for floats, '-' for a missing value."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def scored_trials(trials: Sequence[TrialSummary], objectives: Sequence[str]) -> list[TrialSummary]:
    """The trials ranked by the objectives: finished, with a finite value of every objective."""
    return [t for t in trials if t.status == "finished" and all(is_finite(t.metrics.get(m)) for m in objectives)]


def mark_best(trials: list[TrialSummary], metrics: list[str], modes: list[str]) -> None:
    """One objective: mark the best scored trial. Several: mark the Pareto front."""
    for trial in trials:
        trial.best = trial.pareto = False
    scored = scored_trials(trials, metrics)
    if not scored or not metrics:
        return
    # Every objective as "lower is better".
    costs = {t.trial_id: [t.metrics[m] * (1 if mode == "min" else -1) for m, mode in zip(metrics, modes)] for t in scored}
    if len(metrics) == 1:
        min(scored, key=lambda t: costs[t.trial_id]).best = True
        return
    for trial in scored:
        mine = costs[trial.trial_id]
        trial.pareto = not any(
            all(o <= m for o, m in zip(costs[other.trial_id], mine)) and costs[other.trial_id] != mine
            for other in scored
        )


@dataclass(frozen=True)
class RunView:
    """A run's trials as a table shows them: rows, columns and marks; see run_view."""

    trials: list[TrialSummary]  # the rows, in the order given
    objectives: list[str]  # the optimized metrics (from sweep.json; [] when unknown)
    modes: list[str]  # their directions, "min" or "max" ([] when not known to the writer)
    swept: list[str]  # swept parameters' full paths, sorted: one column each
    metrics: list[str]  # metric columns: the objectives first, then others, sorted

    @property
    def headers(self) -> list[str]:
        """The swept columns' headings: the parameters' short names."""
        return [short_name(path) for path in self.swept]

    def cells(self, trial: TrialSummary) -> tuple[list[str], list[str]]:
        """A trial's swept values and metric values, in the columns' order, as table cells."""
        swept = [format_value(trial.swept.get(k)) for k in self.swept]
        return swept, [format_value(trial.metrics.get(k)) for k in self.metrics]

    def values(self, trial: TrialSummary) -> list[Any]:
        """The same values unformatted (None where missing): the CSV's."""
        return [trial.swept.get(k) for k in self.swept] + [trial.metrics.get(k) for k in self.metrics]

    @property
    def objective_text(self) -> str:
        return objective_text(self.objectives, self.modes)

    @property
    def scored(self) -> list[TrialSummary]:
        return scored_trials(self.trials, self.objectives)

    @property
    def legend(self) -> str:
        """What the marks column means."""
        return "P: on the Pareto front of the objectives" if len(self.objectives) > 1 else "*: the best finished trial"

    @staticmethod
    def mark(trial: TrialSummary) -> str:
        """A trial's mark in a table: "*" the best, "P" on the Pareto front, "" neither."""
        return "*" if trial.best else "P" if trial.pareto else ""

    @staticmethod
    def mark_word(trial: TrialSummary) -> str:
        """The same mark in words, for a caption: "best", "Pareto" or ""."""
        return {"*": "best", "P": "Pareto", "": ""}[RunView.mark(trial)]


def run_view(
    trials: Sequence[TrialSummary],
    objectives: Sequence[str] = (),
    modes: Sequence[str] = (),
    *,
    most: int | None = None,
    every_metric: bool = False,
) -> RunView:
    """The trials with their columns: every swept parameter, then the objectives and the other
    val/ metrics (at most `most` of those others; None: all).

    every_metric (the CSV, data rather than a display): every metric any trial reports, train/
    ones too, and an objective only when some trial reports it.
    """
    trials, objectives = list(trials), list(objectives)
    swept = sorted({key for t in trials for key in t.swept})
    reported = {key for t in trials for key in t.metrics}
    others = sorted({key for key in reported if every_metric or key.startswith("val/")} - set(objectives))
    shown_objectives = [m for m in objectives if m in reported] if every_metric else objectives
    return RunView(trials, objectives, list(modes), swept, shown_objectives + others[:most])


def trials_text(count: int) -> str:
    """"1 trial", "8 trials": how the start and validate lines count them."""
    return f"{count} trial{'s' * (count != 1)}"
