"""`gensweep report`: one self-contained HTML page about a run directory.

Everything is inside the page, so it can be mailed, archived or opened offline and looks the
same: plots are PNGs drawn by matplotlib (Optuna's own plots through
optuna.visualization.matplotlib) and the sample grids are each trial's own samples.png bytes,
unchanged, all as base64 data URIs. No JavaScript, no external files or fonts.

Sections, in order: the summary table, the final sample grids, every other picture each trial
keeps (reconstruction.png, manifold.png, ...: the latest grid of each Images tag), the loss
curves, Optuna's view of the search, the Pareto front (several objectives), the failed trials.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import struct
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import GensweepError, one_line
from runner.files import write_bytes
from runner.results.report import (
    SAMPLES_FILE,  # each trial's latest sample grid
    SHOWN_TRIALS,
    ReportError,
    Run,
    TrialSummary,
    load_run,
    shown_trials,
)
from runner.results.run_view import RunView, run_view, short_name

if TYPE_CHECKING:  # imported where used: optuna and the spec (which imports torch) load slowly
    import optuna

    from runner.spec import SearchDim, Spec

PLOT_DPI = 200  # plots are drawn at twice the size they are shown: sharp on high-density screens
SHOWN_FRACTION = 2
CURVE_INCHES = (3.8, 2.5)  # one small plot per metric; three fit side by side
SKIPPED_CURVES = ("train/epoch",)  # the step -> epoch map, not a curve to compare
CURVE_PREFIXES = ("val/", "train/")  # train_step/* is per-step noise; TensorBoard has it


def write_report(run_dir: Path, output_path: Path, warn: Callable[[str], None] = lambda problem: None) -> Path:
    """Read `run_dir` and write its report to `output_path`. Raises ReportError.

    Each damaged file the page leaves out is named once to `warn` (and on the page).
    """
    run = load_run(run_dir)
    page = render_report(run)
    for problem in run.problems:
        warn(problem)
    try:
        write_bytes(output_path, page.encode("utf-8"))
    except OSError as error:  # a read-only directory, a full disk
        raise ReportError(f"{output_path}: cannot write ({error.strerror or error})") from None
    return output_path


def render_report(run: Run) -> str:
    """The whole page as HTML text. Damaged files it passes over are added to run.problems."""
    _draw_without_display()
    spec, spec_problem = _spec_of(run)
    view = run_view(run.trials, run.objectives, run.modes)
    study = _study_or_reason(view, spec, spec_problem)
    sections = [
        ("trials", "Trials", _summary_section(view)),
        ("samples", "Final samples", _samples_section(run)),
        ("pictures", "Pictures", _pictures_section(run)),
        ("curves", "Curves", _curves_section(run)),
        ("search", "Search (Optuna)", _search_section(run, spec, study)),
    ]
    if len(run.objectives) > 1:
        sections.append(("pareto", "Pareto front", _pareto_section(run, study)))
    sections.append(("failures", "Failed trials", _failures_section(run)))
    if run.problems:
        items = "".join(f"<li><code>{_text(problem)}</code></li>" for problem in run.problems)
        sections.append(("damaged", "Damaged files, left out", f'<ul class="failures">{items}</ul>'))
    return _page(run, view, spec, sections)


# ---- the page ---------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif;
       color: #222; background: #fafafa; margin: 0; line-height: 1.45; }
main { max-width: 1360px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 19px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 2px solid #ddd; }
.objective { font-size: 16px; color: #444; margin: 0 0 6px; }
.meta { color: #666; font-size: 13px; margin: 0 0 10px; }
nav { font-size: 13px; }
nav a { margin-right: 14px; color: #2a5db0; text-decoration: none; }
.note { color: #666; font-size: 13px; margin: 6px 0; }
table { border-collapse: collapse; font-size: 13px; background: #fff; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; font-weight: 600; }
th.objective-column { background: #e3ecf8; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
tr.marked td { background: #eef7ee; font-weight: 600; }
.status-finished { color: #1a7f37; }
.status-error, .status-error a { color: #c62828; font-weight: 600; }
.status-stopped, .status-interrupted, .status-running { color: #8a6d00; }
.row { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
h3 { font-size: 15px; margin: 18px 0 8px; }
figure { margin: 0; background: #fff; border: 1px solid #e4e4e4; padding: 8px; width: fit-content; }
figcaption { font-size: 13px; margin-bottom: 6px; }
.id { color: #888; font-size: 12px; }
img.exact { image-rendering: pixelated; display: block; }
img.plot { max-width: 100%; height: auto; display: block; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; font-size: 13px; margin: 4px 0 12px; }
.legend i { display: inline-block; width: 22px; height: 4px; margin: 0 6px 3px 0; vertical-align: middle; }
ul.failures li { margin-bottom: 4px; }
code { font-size: 12px; background: #f0f0f0; padding: 1px 4px; }
"""


def _page(run: Run, view: RunView, spec: Spec | None, sections: list[tuple[str, str, str]]) -> str:
    """The sections (anchor, heading, HTML) under a title, the objective and the run's facts."""
    name = run.sweep.get("name") or run.directory.resolve().name
    facts = []
    if spec is not None:
        swept = ", ".join(short_name(path) for path in spec.search) or "nothing"
        facts += [f"{spec.model_name} on {spec.data_name}", f"sampler {spec.sampler if spec.search else '-'} over {swept}"]
    finished = sum(t.status == "finished" for t in run.trials)
    facts.append(f"{finished} of {len(run.trials)} trials finished")
    if run.sweep.get("started"):
        facts.append(f"started {run.sweep['started']}")
    facts.append(f"report written {time.strftime('%Y-%m-%d %H:%M')}")
    nav = "".join(f'<a href="#{anchor}">{_text(title)}</a>' for anchor, title, _ in sections)
    nav += _alignment_link(spec)
    body = "".join(f'<section id="{anchor}"><h2>{_text(title)}</h2>{content}</section>' for anchor, title, content in sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>gensweep report: {_text(name)} · {_text(_objective_text(view, short=True))}</title>"
        f"<style>{CSS}</style></head>"
        f"<body><main><h1>gensweep report: {_text(name)}</h1>"
        f'<p class="objective">{_text(_objective_text(view))}</p>'
        f'<p class="meta">{_text(" · ".join(facts))}<br>{_text(str(run.directory.resolve()))}</p>'
        f"<nav>{nav}</nav>{body}</main></body></html>\n"
    )


def _alignment_link(spec: Spec | None) -> str:
    """A link to summary.png when the data directory was written by `gensweep align` (its shake
    and residual per frame): whoever reads the sweep sees how well its frames were stabilised."""
    path = spec.document.get("data", {}).get("path") if spec is not None else None
    if not isinstance(path, str):
        return ""
    picture = Path(path) / "summary.png"
    if not (picture.is_file() and (Path(path) / "transforms.csv").is_file()):
        return ""
    return f'<a href="{_text(picture.resolve().as_uri())}">Alignment of the data (summary.png)</a>'


def _objective_text(view: RunView, short: bool = False) -> str:
    """ "Objective: val/recon (min)", or with short=True just "val/recon (min)"."""
    if not view.objectives:
        return "objective unknown" if short else "Objective: unknown (no sweep.json)"
    if short:
        return view.objective_text
    several = len(view.objectives) > 1
    return f"Objectives: {view.objective_text}, a Pareto front" if several else f"Objective: {view.objective_text}"


def _text(value: Any) -> str:
    return html.escape(str(value))


def _note(text: str) -> str:
    return f'<p class="note">{_text(text)}</p>'


def _figure(caption_html: str, content_html: str) -> str:
    return f"<figure><figcaption>{caption_html}</figcaption>{content_html}</figure>"


# ---- the summary table ------------------------------------------------------------------------


def _summary_section(view: RunView) -> str:
    """The same trials, columns and marks as `gensweep show`, with every val/ metric."""
    if not view.trials:
        return _note("No trial has written a record yet.")
    header = (
        "<th></th><th>trial</th>"
        + "".join(f'<th title="{_text(k)}">{_text(name)}</th>' for k, name in zip(view.swept, view.headers))
        + "<th>status</th><th>epochs</th>"
        + "".join(f'<th{_objective_class(k, view)}>{_text(k)}</th>' for k in view.metrics)
    )
    rows = "".join(_summary_row(view, trial) for trial in view.trials)
    return f"<table><thead><tr>{header}</tr></thead><tbody>{rows}</tbody></table>" + _note(view.legend)


def _objective_class(metric: str, view: RunView) -> str:
    return ' class="objective-column"' if metric in view.objectives else ""


def _summary_row(view: RunView, trial: TrialSummary) -> str:
    mark = view.mark(trial)
    status = _text(trial.status)
    if trial.error:
        status = f'<a href="#failures">{status}</a>'
    swept, metrics = view.cells(trial)
    cells = (
        [f"<td>{mark}</td>", f"<td>{_text(trial.trial_id)}</td>"]
        + [f'<td class="number">{_text(cell)}</td>' for cell in swept]
        + [f'<td class="status-{_text(trial.status)}">{status}</td>', f'<td class="number">{trial.epoch}</td>']
        + [f'<td class="number">{_text(cell)}</td>' for cell in metrics]
    )
    marked = ' class="marked"' if mark else ""
    return f"<tr{marked}>{''.join(cells)}</tr>"


# ---- the final sample grids -------------------------------------------------------------------


def _samples_section(run: Run) -> str:
    """Trials' latest samples.png as they are, side by side, labelled with their swept values:
    every trial's, or in a larger sweep the best SHOWN_TRIALS (said on the page)."""
    has_samples = {trial.trial_id: (Path(trial.logdir) / SAMPLES_FILE).is_file() for trial in run.trials}
    with_samples = [trial for trial in run.trials if has_samples[trial.trial_id]]
    missing = [trial.label for trial in run.trials if not has_samples[trial.trial_id]]
    shown, which = shown_trials(with_samples, run.objectives, run.modes)
    figures = []
    for trial in shown:
        caption = f"{_text(trial.label)} {_mark_text(trial)}<br><span class=\"id\">{_text(trial.trial_id)}</span>"
        path = Path(trial.logdir) / SAMPLES_FILE
        try:
            figures.append(_figure(caption, _exact_image(path.read_bytes(), f"samples of {trial.label}")))
        except (OSError, ReportError) as error:  # a truncated or unreadable picture: the rest go on
            run.problems.append(f"{path}: damaged ({getattr(error, 'strerror', None) or error}); samples left out")
            missing.append(trial.label)
    parts = [_note(f"Showing {which}.")] if which else []
    if figures:
        parts.append(f'<div class="row">{"".join(figures)}</div>')
    if missing:
        listed = "; ".join(missing[:SHOWN_TRIALS])
        if len(missing) > SHOWN_TRIALS:
            listed += f"; and {len(missing) - SHOWN_TRIALS:,} more"
        parts.append(_note(f"No {SAMPLES_FILE} (yet) for: {listed}."))
    parts.append(_note(f"Each trial's {SAMPLES_FILE} from its last epoch, shown pixel for pixel."))
    return "".join(parts)


# ---- every other picture of a trial -------------------------------------------------------------


def trial_pictures(trial: TrialSummary) -> list[Path]:
    """The PNGs in a trial's directory besides samples.png, by name: the latest grid of each of
    its Images tags (runner.results.report.picture_file), or any other picture put there."""
    directory = Path(trial.logdir)
    if not directory.is_dir():
        return []
    return sorted(path for path in directory.glob("*.png") if path.name != SAMPLES_FILE and path.is_file())


def _pictures_section(run: Run) -> str:
    """Per trial, its pictures pixel for pixel, each captioned with its file name: every trial's,
    or in a larger sweep those of the best SHOWN_TRIALS (said on the page)."""
    pictures = {trial.trial_id: trial_pictures(trial) for trial in run.trials}
    with_pictures = [trial for trial in run.trials if pictures[trial.trial_id]]
    if not with_pictures:
        return _note(f"No trial keeps pictures besides {SAMPLES_FILE}.")
    shown, which = shown_trials(with_pictures, run.objectives, run.modes)
    parts = [_note(f"Showing {which}.")] if which else []
    for trial in shown:
        figures = []
        for path in pictures[trial.trial_id]:
            try:
                image = _exact_image(path.read_bytes(), f"{path.name} of {trial.label}")
            except (OSError, ReportError) as error:  # a truncated or unreadable picture: the rest go on
                run.problems.append(f"{path}: damaged ({getattr(error, 'strerror', None) or error}); picture left out")
                continue
            figures.append(_figure(f"<code>{_text(path.name)}</code>", image))
        if not figures:
            continue
        heading = f"{_text(trial.label)} {_mark_text(trial)} <span class=\"id\">{_text(trial.trial_id)}</span>"
        parts.append(f'<h3>{heading}</h3><div class="row">{"".join(figures)}</div>')
    parts.append(_note(f"Each picture is the trial's latest, as its file holds it ({SAMPLES_FILE} is above)."))
    return "".join(parts)


def _mark_text(trial: TrialSummary) -> str:
    word = RunView.mark_word(trial)
    return f"<strong>({word})</strong>" if word else ""


def _exact_image(png: bytes, alt: str) -> str:
    # width/height = the picture's own size and pixelated rendering: no browser resampling.
    width, height = png_size(png)
    return f'<img class="exact" width="{width}" height="{height}" alt="{_text(alt)}" src="{_data_uri(png)}">'


def _plot_image(png: bytes, alt: str) -> str:
    width, height = png_size(png)
    shown = f'width="{width // SHOWN_FRACTION}" height="{height // SHOWN_FRACTION}"'
    return f'<img class="plot" {shown} alt="{_text(alt)}" src="{_data_uri(png)}">'


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's header, without decoding it."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ReportError("not a PNG file")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


# ---- loss curves ------------------------------------------------------------------------------


def _curves_section(run: Run) -> str:
    """One small plot per metric, each shown trial's curve overlaid, coloured the same in each
    plot: every trial's, or in a larger sweep the best SHOWN_TRIALS (said on the page; more
    curves than a palette has colours cannot be told apart, and each is an event file to read)."""
    shown, which = shown_trials(run.trials, run.objectives, run.modes)
    series = {trial.trial_id: _readable_series(run, trial) for trial in shown}
    metrics = _curve_metrics(run, series)
    if not metrics:
        return _note("No scalars in the trials' TensorBoard event files yet.")
    colours = _trial_colours(shown)
    plots = []
    for metric in metrics:
        png = _draw(lambda metric=metric: _curve_figure(run, shown, metric, series, colours), CURVE_INCHES, crop=False)
        plots.append(_figure("", _plot_image(png, f"{metric} of {'the shown' if which else 'every'} trial")))
    explanation = _note(
        "Per-epoch values from each trial's TensorBoard event files, against the optimizer step"
        + (f"; showing {which}." if which else ".")
    )
    return explanation + _legend(shown, colours) + f'<div class="row">{"".join(plots)}</div>'


def _legend(trials: list[TrialSummary], colours: dict[str, Any]) -> str:
    # One legend for every plot (a trial has the same colour in each): the plots stay uncluttered.
    from matplotlib.colors import to_hex

    entries = "".join(
        f'<span><i style="background: {to_hex(colours[t.trial_id])}"></i>{_text(t.label)}</span>' for t in trials
    )
    return f'<div class="legend">{entries}</div>'


def scalar_series(logdir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar tag of a trial's event files: tag -> (steps, values), read by TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(logdir), size_guidance={"scalars": 0})  # 0: keep every point
    accumulator.Reload()
    series = {}
    for tag in accumulator.Tags().get("scalars", []):
        events = accumulator.Scalars(tag)
        series[tag] = ([e.step for e in events], [e.value for e in events])
    return series


def _readable_series(run: Run, trial: TrialSummary) -> dict[str, tuple[list[int], list[float]]]:
    """The trial's scalars, or none (and a problem named) when its event files cannot be read."""
    try:
        return scalar_series(Path(trial.logdir))
    except Exception as error:  # noqa: BLE001 - TensorBoard's reader raises many kinds on a damaged file
        run.problems.append(f"{trial.logdir}: event files damaged ({one_line(error)}); curves left out")
        return {}


def _curve_metrics(run: Run, series: dict[str, dict]) -> list[str]:
    """The objectives first, then the other val/ and train/ metrics."""
    tags = {tag for per_trial in series.values() for tag in per_trial}
    tags = {t for t in tags if t.startswith(CURVE_PREFIXES) and t not in SKIPPED_CURVES}
    objectives = [m for m in run.objectives if m in tags]
    rest = sorted(tags - set(objectives), key=lambda tag: (CURVE_PREFIXES.index(tag.split("/")[0] + "/"), tag))
    return objectives + rest


def _trial_colours(trials: list[TrialSummary]) -> dict[str, Any]:
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(trials) <= 10 else "tab20"].colors
    return {trial.trial_id: palette[index % len(palette)] for index, trial in enumerate(trials)}


def _curve_figure(run: Run, trials: list[TrialSummary], metric: str, series: dict[str, dict], colours: dict[str, Any]):
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    plt.style.use("ggplot")  # the style of Optuna's plots on the same page
    figure, axes = plt.subplots(layout="constrained")  # every curve plot the same size
    for trial in trials:
        steps, values = series[trial.trial_id].get(metric, ([], []))
        if steps:
            axes.plot(steps, values, marker="o", markersize=3, linewidth=1.5, color=colours[trial.trial_id])
    mode = dict(zip(run.objectives, run.modes)).get(metric)
    axes.set_title(f"{metric}  (objective, {mode})" if mode else metric, fontsize=10)
    axes.set_xlabel("optimizer step", fontsize=8)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
    axes.ticklabel_format(axis="y", useOffset=False)  # 1.00007 rather than "+1" over 7e-5
    axes.tick_params(labelsize=7)
    return figure


# ---- Optuna's view of the search --------------------------------------------------------------


def _spec_of(run: Run) -> tuple[Spec | None, str | None]:
    """(the sweep's spec, None), or (None, why it cannot be read)."""
    from runner.spec import parse_document

    document = run.sweep.get("document")
    if not isinstance(document, dict):
        return None, "the run directory has no readable sweep.json with the spec"
    try:
        return parse_document(document, run.sweep.get("source", "sweep.json")), None
    except GensweepError as error:
        return None, f"the spec in sweep.json no longer parses: {error}"


def _scored_trials(view: RunView, spec: Spec) -> list[TrialSummary]:
    """The scored trials (finished, every objective reported) with every swept value recorded."""
    return [t for t in view.scored if all(path in t.swept for path in spec.search)]


def _study_or_reason(view: RunView, spec: Spec | None, spec_problem: str | None) -> optuna.Study | str:
    """An in-memory Optuna study rebuilt from the trial records, or a one-line reason there is none
    (which the search and Pareto sections print instead of their plots).

    Rebuilt rather than loaded, so it works whatever storage the sweep's searcher used.
    """
    if spec is None:
        return spec_problem
    if not spec.search:
        return "nothing was swept"
    if spec.sampler == "pbt":
        return "population-based training changes values during a trial: Optuna did not choose them"
    scored = _scored_trials(view, spec)
    if len(scored) < 2:
        return f"Optuna's plots need at least 2 finished trials; this run has {len(scored)}"
    try:
        return optuna_study(scored, spec, view.objectives, view.modes)
    except (ValueError, TypeError) as error:
        return f"the trial records do not fit the spec's search space: {one_line(error)}"


def optuna_study(trials: list[TrialSummary], spec: Spec, objectives: list[str], modes: list[str]) -> optuna.Study:
    """A study holding `trials` as complete Optuna trials, with the spec's distributions."""
    import optuna

    distributions = {path: _distribution(dim) for path, dim in spec.search.items()}
    with _quiet_optuna():
        study = optuna.create_study(directions=["maximize" if mode == "max" else "minimize" for mode in modes])
        for trial in trials:
            params = {path: _param_value(trial.swept[path], dim) for path, dim in spec.search.items()}
            values = [float(trial.metrics[metric]) for metric in objectives]
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, values=values))
    return study


def _distribution(dim: SearchDim) -> optuna.distributions.BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if dim.kind in ("grid", "choice"):
        return CategoricalDistribution([_categorical(value) for value in dim.values])
    if dim.kind == "int":
        return IntDistribution(int(dim.low), int(dim.high))
    return FloatDistribution(dim.low, dim.high, log=dim.kind == "loguniform")


def _param_value(value: Any, dim: SearchDim) -> Any:
    if dim.kind in ("grid", "choice"):
        return _categorical(value)
    return int(value) if dim.kind == "int" else float(value)


def _categorical(value: Any) -> Any:
    # Optuna's categorical choices are None, bool, int, float or str: a list value becomes its text.
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def _search_section(run: Run, spec: Spec | None, study: optuna.Study | str) -> str:
    """Per objective: parameter importances, slice plot, contour plot (2+ swept parameters)."""
    if isinstance(study, str):
        return _note(f"No Optuna plots: {study}.")
    varying = _varying_params(study)
    parts = [_note(
        f"Rebuilt from the records of the {len(study.trials)} finished trials, with the spec's search space; "
        "drawn by optuna.visualization.matplotlib."
    )]
    several = len(run.objectives) > 1
    for index, (metric, mode) in enumerate(zip(run.objectives, run.modes)):
        if several:
            parts.append(f"<h3>{_text(metric)} ({_text(mode)})</h3>")
        plots = [
            _importances(study, varying, index if several else None, metric, mode),
            _slice(study, varying, _objective(index) if several else None, metric),
            _contour(study, spec, varying, _objective(index) if several else None, metric),
        ]
        parts.append(f'<div class="row">{"".join(plots)}</div>')
    return "".join(parts)


def _objective(index: int, sign: float = 1.0) -> Callable:
    return lambda trial: sign * trial.values[index]


def _varying_params(study: optuna.Study) -> list[str]:
    """Swept parameters with 2 or more distinct values among the study's trials."""
    values: dict[str, set] = {}
    for trial in study.trials:
        for name, value in trial.params.items():
            values.setdefault(name, set()).add(repr(value))
    return [name for name, seen in values.items() if len(seen) >= 2]


def _importances(study: optuna.Study, varying: list[str], index: int | None, metric: str, mode: str) -> str:
    """One objective: Optuna's own target, in the study's direction. Several: one plot each, of
    that objective made "lower is better", which is how Optuna's evaluator ranks a target."""
    import optuna.visualization.matplotlib as optuna_plots

    title = "Parameter importances" + (f" for {metric}" if index is not None else "")
    if not varying:
        return _note(f"{title}: need a parameter with 2 or more distinct values among finished trials.")
    if index is None:
        draw = lambda: optuna_plots.plot_param_importances(study)
    else:
        target = _objective(index, -1.0 if mode == "max" else 1.0)
        draw = lambda: optuna_plots.plot_param_importances(study, target=target, target_name=metric)
    return _optuna_plot(title, draw, (5.6, 1.4 + 0.45 * len(varying)))


def _slice(study: optuna.Study, varying: list[str], target: Callable | None, metric: str) -> str:
    import optuna.visualization.matplotlib as optuna_plots

    title = f"Slice plot of {metric}"
    if not varying:
        return _note(f"{title}: need a parameter with 2 or more distinct values among finished trials.")
    draw = lambda: optuna_plots.plot_slice(study, params=varying, target=target, target_name=metric)
    return _optuna_plot(title, draw, (min(2.6 * len(varying) + 1.4, 13.0), 3.4))


def _contour(study: optuna.Study, spec: Spec, varying: list[str], target: Callable | None, metric: str) -> str:
    import optuna.visualization.matplotlib as optuna_plots

    title = f"Contour plot of {metric}"
    if len(spec.search) < 2:
        return ""  # one swept parameter: nothing to plot against it
    if len(varying) < 2:
        return _note(f"{title}: needs 2 or more parameters with 2 or more distinct values among finished trials.")
    side = 4.2 if len(varying) == 2 else min(2.6 * len(varying), 13.0)  # one plot, or a grid of pairs
    draw = lambda: optuna_plots.plot_contour(study, params=varying, target=target, target_name=metric)
    return _optuna_plot(title, draw, (side + 1.4, side))


def _pareto_section(run: Run, study: optuna.Study | str) -> str:
    import optuna.visualization.matplotlib as optuna_plots

    if isinstance(study, str):
        return _note(f"No Pareto front plot: {study}.")
    if len(run.objectives) > 3:
        return _note(f"No Pareto front plot: Optuna draws 2 or 3 objectives, this sweep has {len(run.objectives)}.")
    draw = lambda: optuna_plots.plot_pareto_front(study, target_names=run.objectives)
    caption = "Every finished trial by its objectives; the front is highlighted (P in the table)."
    return _optuna_plot("Pareto front", draw, (6.4, 4.8)) + _note(caption)


def _optuna_plot(title: str, draw: Callable, inches: tuple[float, float]) -> str:
    """An Optuna plot as a figure, or one line saying why it could not be drawn."""
    try:
        with _quiet_optuna():
            png = _draw(lambda: _figure_of(draw()), inches)
    except Exception as error:  # noqa: BLE001 - one plot Optuna cannot draw must not lose the page
        return _note(f"{title}: Optuna could not draw it ({one_line(error)}).")
    return _figure(f"<strong>{_text(title)}</strong>", _plot_image(png, title))


def _figure_of(axes):
    """The figure behind what an Optuna plot returns: one Axes, or an array of them."""
    return (axes.flat[0] if hasattr(axes, "flat") else axes).figure


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's INFO lines and its warning that its matplotlib module is experimental stay out."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # Its note that a target is ranked "lower is better": _importances negates max objectives.
            warnings.filterwarnings("ignore", message="PedAnovaImportanceEvaluator computes", category=UserWarning)
            yield
    finally:
        optuna.logging.set_verbosity(verbosity)


# ---- failed trials ----------------------------------------------------------------------------


def _failures_section(run: Run) -> str:
    failed = [t for t in run.trials if t.status == "error" or t.error]
    if not failed:
        return _note("No trial failed.")
    items = "".join(
        f"<li><strong>{_text(t.label)}</strong> <span class=\"id\">({_text(t.trial_id)})</span>: "
        f"<code>{_text(t.error or 'no reason recorded')}</code></li>"
        for t in failed
    )
    return f'<ul class="failures">{items}</ul>'


# ---- drawing ----------------------------------------------------------------------------------


def _draw_without_display() -> None:
    # The report only writes PNG bytes: Agg needs no display and opens no windows.
    import matplotlib

    matplotlib.use("Agg")


def _draw(make_figure: Callable, inches: tuple[float, float], crop: bool = True) -> bytes:
    """PNG bytes of the figure `make_figure` draws at `inches` (cropped to what is drawn), with
    matplotlib's settings restored after it (Optuna's plots switch the global style) and the
    figure closed."""
    import matplotlib
    import matplotlib.pyplot as plt

    # The size is set before drawing, as Optuna's plots lay out colour bars for the size they get.
    with matplotlib.rc_context({"figure.figsize": inches}):
        figure = make_figure()
        try:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", dpi=PLOT_DPI, bbox_inches="tight" if crop else None, pad_inches=0.08)
        finally:
            plt.close(figure)
    return buffer.getvalue()
