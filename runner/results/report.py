"""What a run directory holds, read back: trial records, the summary table (sorted, cut, or as
CSV), the comparison image.

Reads only JSON and PNG files that gensweep wrote, never Ray's pickles, so `gensweep show` is
fast and safe on any run directory.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from runner.errors import GensweepError
from runner.results.run_view import format_value, is_finite, mark_best, run_view, short_name

RECORD_FILE = "gensweep.json"  # each trial's own record, written by runner.sweep.trial
STATE_FILE = "state.pt"  # in each checkpoint_*/ directory: runner.train.loop.training_state(), weights only

SWEEP_FILE = "sweep.json"  # written by `gensweep run` at the start: the spec and its metric
COMPARISON_FILE = "comparison.png"
SAMPLES_FILE = "samples.png"  # in each trial directory: the last epoch's samples, for comparison.png
PICTURE_NAME_LENGTH = 100  # characters of a picture file's name before ".png"
COMPARISON_RUN = "_comparison"  # TensorBoard run holding the sweep-level image
TABLE_METRICS = 4  # metric columns beside the optimized one



def picture_file(tag: str) -> str:
    """The PNG in a trial directory holding the latest grid TensorBoard shows under `tag`.

    The layout rule: the tag lowercased, each run of characters outside [a-z0-9_] one "_", no
    "_" at either end, at most PICTURE_NAME_LENGTH characters, then ".png" ("reconstruction" ->
    reconstruction.png, "Cycle A/B" -> cycle_a_b.png; a tag with nothing left: picture.png).
    "samples" is SAMPLES_FILE. Each file is overwritten whole whenever its grid is logged.
    """
    name = re.sub(r"[^a-z0-9_]+", "_", tag.lower()).strip("_")[:PICTURE_NAME_LENGTH].rstrip("_")
    return f"{name or 'picture'}.png"


@dataclass
class TrialSummary:
    trial_id: str
    status: str  # running | finished | stopped (early, by the scheduler) | error | interrupted
    swept: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, float]
    logdir: str
    epoch: int = 0
    error: str | None = None
    node: str | None = None  # where it ran: IP and the start of Ray's node id
    gpus: list[str] = field(default_factory=list)  # the GPUs Ray assigned it
    started: float | None = None  # Unix time of its first start
    updated: float | None = None  # Unix time of its last report
    best: bool = field(default=False)  # one objective: the best finished trial
    pareto: bool = field(default=False)  # several objectives: on the Pareto front

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        """Its swept values, short names: "beta=0.5, latent_dim=2" (its id when nothing is swept)."""
        parts = [f"{short_name(path)}={format_value(value)}" for path, value in sorted(self.swept.items())]
        return ", ".join(parts) or self.trial_id


class ReportError(GensweepError):
    """A run directory that cannot be read, or a metric no trial reports; one-line message."""


@dataclass
class Run:
    """A run directory read back: its sweep.json and every trial's record."""

    directory: Path
    sweep: dict[str, Any]  # sweep.json: name, source, metrics, modes, document; {} when missing
    trials: list[TrialSummary]
    problems: list[str] = field(default_factory=list)  # damaged files, one line each, left out

    @property
    def objectives(self) -> list[str]:
        return list(self.sweep.get("metrics") or [])

    @property
    def modes(self) -> list[str]:
        return list(self.sweep.get("modes") or [])


def load_run(run_dir: Path) -> Run:
    """The run in `run_dir`, or a ReportError saying why it is not one.

    A damaged trial record or sweep.json is left out and named in Run.problems; the rest is read.
    """
    if not run_dir.is_dir():
        raise ReportError(f"{run_dir}: no such run directory")
    problems: list[str] = []
    sweep, sweep_problem = read_sweep(run_dir)
    trials = collect(run_dir, problems, sweep)
    if sweep_problem and (run_dir / SWEEP_FILE).exists():
        problems.insert(0, sweep_problem)
    if not trials and not problems and not (run_dir / SWEEP_FILE).exists():
        raise ReportError(f"{run_dir}: not a gensweep run directory (no {SWEEP_FILE}, no trials)")
    return Run(run_dir, sweep, trials, problems)


def collect(run_dir: Path, problems: list[str] | None = None, sweep: dict[str, Any] | None = None) -> list[TrialSummary]:
    """Every trial of the run, sorted by its swept values.

    A damaged record (not JSON, or fields of the wrong kind) is left out, with a line naming it
    added to `problems`.
    """
    trials = []
    for record_path in sorted(run_dir.glob(f"*/{RECORD_FILE}")):
        record, problem = read_record(record_path)
        if record is None:
            if problems is not None:
                problems.append(f"{problem}; trial left out")
            continue
        trials.append(
            TrialSummary(
                trial_id=record["trial_id"],
                status=record.get("status") or "unknown",
                swept=record.get("swept") or {},
                config=record.get("config") or {},
                metrics=record.get("metrics") or {},
                logdir=str(record_path.parent.resolve()),
                epoch=record.get("epoch") or 0,
                error=record.get("error"),
                node=record.get("node"),
                gpus=record.get("gpus") or [],
                started=record.get("started"),
                updated=record.get("updated"),
            )
        )
    trials.sort(key=lambda t: [_sortable(t.swept[k]) for k in sorted(t.swept)] + [t.trial_id])
    if sweep is None:
        sweep, _ = read_sweep(run_dir)
    mark_best(trials, sweep.get("metrics") or [], sweep.get("modes") or [])
    return trials


# What each field of a record may hold (None: may be missing or null). A record is gensweep's
# own file, but a crash, a full disk or a hand edit can leave anything in it.
_NUMBER = (int, float)
_RECORD_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "trial_id": (lambda v: isinstance(v, str) and v != "", "a trial id"),
    "status": (lambda v: v is None or isinstance(v, str), "a status"),
    "swept": (lambda v: v is None or isinstance(v, dict), "an object of swept values"),
    "config": (lambda v: v is None or isinstance(v, dict), "an object of config values"),
    "metrics": (
        lambda v: v is None or (isinstance(v, dict) and all(_is_number(x) or x is None for x in v.values())),
        "an object of numbers",
    ),
    "epoch": (lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 0), "a whole number"),
    "error": (lambda v: v is None or isinstance(v, str), "a message"),
    "node": (lambda v: v is None or isinstance(v, str), "a node"),
    "gpus": (lambda v: v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v)), "a list of GPU ids"),
    "started": (lambda v: v is None or _is_number(v), "a time"),
    "updated": (lambda v: v is None or _is_number(v), "a time"),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool)


def read_record(path: Path) -> tuple[dict[str, Any] | None, str]:
    """(a trial's record, "") or (None, one line naming the file and what is wrong with it)."""
    record, problem = _read_object(path)
    if record is None:
        return None, problem
    for key, (fits, expected) in _RECORD_FIELDS.items():
        if not fits(record.get(key)):
            return None, f"{path}: damaged record ({key}: expected {expected}, got {_shown(record.get(key))})"
    return record, ""


def read_sweep(run_dir: Path) -> tuple[dict[str, Any], str]:
    """(sweep.json's fields, "") or ({}, one line naming the file and what is wrong with it).

    Missing is {} with a problem too: callers that need the file say so, the others go on.
    """
    path = run_dir / SWEEP_FILE
    sweep, problem = _read_object(path)
    if sweep is None:
        return {}, problem
    metrics, modes = sweep.get("metrics"), sweep.get("modes")
    if metrics is not None or modes is not None:
        if not (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics)):
            return {}, f"{path}: damaged (metrics: expected a list of metric names, got {_shown(metrics)})"
        if not (isinstance(modes, list) and len(modes) == len(metrics) and all(m in ("min", "max") for m in modes)):
            return {}, f"{path}: damaged (modes: expected 'min' or 'max' for each metric, got {_shown(modes)})"
    for key, expected in (("document", dict), ("name", str), ("source", str)):
        if sweep.get(key) is not None and not isinstance(sweep[key], expected):
            return {}, f"{path}: damaged ({key}: expected {'an object' if expected is dict else 'text'}, got {_shown(sweep[key])})"
    return sweep, ""


def _read_object(path: Path) -> tuple[dict[str, Any] | None, str]:
    """A JSON object from `path`, or (None, why not: missing, unreadable, not JSON, not an object)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None, f"{path}: missing"
    except (OSError, UnicodeDecodeError) as error:
        return None, f"{path}: cannot be read ({getattr(error, 'strerror', None) or error})"
    try:
        value = json.loads(text)
    except ValueError as error:
        what = "empty" if not text.strip() else f"not JSON: {error}"
        return None, f"{path}: damaged ({what})"
    if not isinstance(value, dict):
        return None, f"{path}: damaged (expected a JSON object, got {_shown(value)})"
    return value, ""


def _shown(value: Any) -> str:
    """A wrong value, short: its kind and the start of it."""
    text = json.dumps(value, default=str)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def sort_trials(
    trials: list[TrialSummary], metric: str, objectives: Sequence[str] = (), modes: Sequence[str] = ()
) -> list[TrialSummary]:
    """Best first by `metric`: in its sweep's direction when it is an objective, else ascending.

    Trials without a finite value of it come last, in their earlier order.
    """
    known = {name for trial in trials for name in trial.metrics} | set(objectives)
    if metric not in known:
        raise ReportError(f"no trial reports this metric (known: {', '.join(sorted(known)) or 'none'})")
    sign = -1 if dict(zip(objectives, modes)).get(metric) == "max" else 1

    def key(trial: TrialSummary) -> tuple:
        value = trial.metrics.get(metric)
        return (0, sign * value) if is_finite(value) else (1, 0)

    return sorted(trials, key=key)


def format_csv(trials: list[TrialSummary], objectives: list[str] | None = None) -> str:
    """One row a trial: trial_id, status, every swept value, every metric (objectives first).

    Values are written in full (not rounded as in the table); a missing one is an empty cell.
    """
    header, rows = trial_table(trials, objectives)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row])
    return buffer.getvalue()


def trial_table(trials: list[TrialSummary], objectives: list[str] | None = None) -> tuple[list[str], list[list[Any]]]:
    """The CSV's columns and rows, values unformatted (None where missing): `gensweep show
    --csv` writes them, gensweep.load (the Python API) makes its DataFrame of them."""
    view = run_view(trials, objectives or [], every_metric=True)
    header = ["trial_id", "status", *view.swept, *view.metrics]
    return header, [[trial.trial_id, trial.status, *view.values(trial)] for trial in view.trials]


def format_table(trials: list[TrialSummary], objectives: list[str] | None = None) -> str:
    """One row a trial: swept params, status, epochs, the objectives first, then a few others.

    The first column marks the best trial (*) or, for several objectives, the Pareto front (P).
    """
    if not trials:
        return "(no trials)"
    view = run_view(trials, objectives or [], most=TABLE_METRICS)
    header = ["", "trial", *view.headers, "status", "epochs", *view.metrics]
    rows = [header]
    for trial in view.trials:
        status = trial.status if not trial.error else f"{trial.status}: {trial.error}"
        swept, metrics = view.cells(trial)
        rows.append([view.mark(trial), trial.trial_id, *swept, status, str(trial.epoch), *metrics])
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)] + [0]
    lines = ["  ".join(cell.ljust(width) if i < len(header) - 1 else cell for i, (cell, width) in enumerate(zip(row, widths))).rstrip() for row in rows]
    return "\n".join(lines)


SHOWN_TRIALS = 12  # comparison.png and the HTML report's samples and curves show at most this many
COMPARISON_COLUMNS = 6  # panels a row in comparison.png
PANEL_WIDTH = 768  # pixels: a wider sample grid is shrunk to this in comparison.png


def shown_trials(
    trials: Sequence[TrialSummary],
    objectives: Sequence[str] = (),
    modes: Sequence[str] = (),
    limit: int = SHOWN_TRIALS,
) -> tuple[list[TrialSummary], str]:
    """The trials a picture of the sweep shows, and a note saying which ("" when it shows all).

    Every trial when there are at most `limit`; else the best `limit`: the marked trial(s) (best,
    or the Pareto front) first, then by the first objective in its direction, best first. A
    picture of every trial of a 10,000-point grid would be 183,000 pixels wide.
    """
    trials = list(trials)
    if len(trials) <= limit:
        return trials, ""
    if not objectives:
        return trials[:limit], f"the first {limit} of {len(trials):,} trials (no objective known to rank them)"
    metric, mode = objectives[0], (list(modes) or ["min"])[0]
    sign = -1 if mode == "max" else 1

    def rank(trial: TrialSummary) -> tuple:
        value = trial.metrics.get(metric)
        return (0 if trial.best or trial.pareto else 1, *((0, sign * value) if is_finite(value) else (1, 0)))

    front = "the Pareto front first, then " if len(objectives) > 1 else ""
    note = f"the best {limit} of {len(trials):,} trials ({front}by {metric}, {mode}), best first"
    return sorted(trials, key=rank)[:limit], note


def comparison_image(
    trials: list[TrialSummary],
    samples_file: str,
    scale: int = 2,
    objectives: Sequence[str] = (),
    modes: Sequence[str] = (),
) -> np.ndarray | None:
    """Trials' last sample grids, labelled with their swept values, in rows: (H, W, 3) uint8.

    At most SHOWN_TRIALS of them (shown_trials chooses, and a line on top says which when it
    had to), each at most PANEL_WIDTH wide: the picture stays the same size however large the sweep.
    """
    # Ranked first, then only the chosen pictures read: a 10,000-trial sweep reads 12, not all.
    # (The caller passes the trials that have a picture; one that does not read is left out.)
    chosen, note = shown_trials(trials, objectives, modes)
    pictures = [(trial, cv2.imread(str(Path(trial.logdir) / samples_file), cv2.IMREAD_COLOR)) for trial in chosen]
    pictures = [(trial, image) for trial, image in pictures if image is not None]
    if not pictures:
        return None
    panels = []
    for trial, image in pictures:
        factor = min(scale, PANEL_WIDTH / image.shape[1])
        interpolation = cv2.INTER_NEAREST if factor >= 1 else cv2.INTER_AREA  # sharp pixels up, no aliasing down
        image = cv2.resize(image, None, fx=factor, fy=factor, interpolation=interpolation)
        panels.append(_with_caption(image, trial.label, trial.best))
    rows = [_row(panels[start : start + COMPARISON_COLUMNS]) for start in range(0, len(panels), COMPARISON_COLUMNS)]
    width = max(row.shape[1] for row in rows)
    rows = [np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0)), constant_values=255) for row in rows]
    gap = np.full((12, width, 3), 255, np.uint8)
    picture = np.vstack([piece for row in rows for piece in (row, gap)][:-1])
    if note:
        picture = _with_caption(picture, "Showing " + note, best=False)
    return cv2.cvtColor(picture, cv2.COLOR_BGR2RGB)


def _row(panels: list[np.ndarray]) -> np.ndarray:
    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 12, 3), 255, np.uint8)
    padded = [np.pad(p, ((0, height - p.shape[0]), (0, 0), (0, 0)), constant_values=255) for p in panels]
    return np.hstack([piece for p in padded for piece in (p, gap)][:-1])


def _with_caption(image: np.ndarray, text: str, best: bool) -> np.ndarray:
    font, scale, thickness = cv2.FONT_HERSHEY_SIMPLEX, 0.7, 2
    (_, height), _ = cv2.getTextSize(text, font, scale, thickness)
    strip = np.full((height + 20, image.shape[1], 3), 255, np.uint8)
    colour = (0, 120, 0) if best else (0, 0, 0)  # BGR: the best trial's label in green
    cv2.putText(strip, text + (" (best)" if best else ""), (6, height + 8), font, scale, colour, thickness, cv2.LINE_AA)
    return np.vstack([strip, image])


def _sortable(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, (int, float)) else (1, 0, str(value))
