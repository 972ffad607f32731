"""The `gensweep` command. Heavy imports (torch, Ray) happen inside commands: --help is instant."""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import click

from runner import __version__

USAGE_ERROR = 2  # a user's mistake: bad spec, override, path or address


class UserError(click.ClickException):
    """One line on stderr, exit 2, no traceback."""

    exit_code = USAGE_ERROR

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _user_errors():
    from alignment.pipeline import AlignError
    from models.config import ConfigError
    from runner.errors import GensweepError

    return (GensweepError, ConfigError, AlignError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gensweep")
def main() -> None:
    """Sweep generative image models with Ray Tune and Optuna; compare them in TensorBoard.

    \b
    Start with:
      gensweep run search_spaces/vae_latent.yaml
      tensorboard --logdir runs/vae_latent
    """


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--name", help="Run name (default: the spec's name). Results go to STORAGE/NAME.")
@click.option(
    "--storage-path",
    default="runs",
    show_default=True,
    help="Directory for results, checkpoints and TensorBoard files; on several nodes, a directory every node mounts at the same path (NFS, EFS).",
)
@click.option("--address", help="Join a running Ray cluster: 'auto' or HOST:PORT. Default: start Ray here.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field, e.g. --set train.epochs=3 (repeatable; values typed as YAML).")
@click.option("--keep-checkpoints", default=2, show_default=True, type=click.IntRange(min=1), help="Checkpoints kept per trial (the latest ones).")
@click.option("-v", "--verbose", count=True, help="Ray Tune's own progress output instead of one gensweep line (-vv: more of it).")
def run(spec_path, name, storage_path, address, overrides, keep_checkpoints, verbose) -> None:
    """Run the sweep described by SPEC; print a summary table at the end.

    Exits 0 when at least one trial finished, 1 when none did, 2 for a bad spec.
    """
    from runner.names import check_run_name
    from runner.spec import load_spec
    from runner.sweep import claim_run_dir, prepare_data, run_sweep

    if "://" in storage_path:
        raise UserError(
            f"--storage-path {storage_path}: storage URIs are not supported; mount shared storage "
            "(NFS, EFS, ...) at the same path on every node and give that path"
        )
    try:
        if name is not None:
            check_run_name(name, "--name")  # before the spec: a name that escapes is refused first
        spec = load_spec(spec_path, overrides)
        check_run_name(name or spec.name, f"{spec_path}: name")
        claim = claim_run_dir(Path(storage_path).expanduser().resolve(), name or spec.name)
    except _user_errors() as error:
        raise UserError(str(error)) from None
    run_dir = claim.path
    try:
        click.echo(
            f"gensweep: {spec.name}: {spec.num_samples} trials of {spec.model_name} on {spec.data_name}, "
            f"sampler {spec.sampler if spec.search else '-'}, optimizing {spec.objective_text}"
        )
        prepare_data(spec, say=lambda message: click.echo(f"gensweep: {message}"))
        click.echo(f"gensweep: results in {_relative(run_dir)}")
        outcome = run_sweep(spec, run_dir, address=address, verbose=verbose, keep_checkpoints=keep_checkpoints)
    except BaseException as error:
        claim.release()  # a sweep that did not start leaves no empty run behind
        if isinstance(error, _user_errors()):
            raise UserError(str(error)) from None
        raise
    _finish(spec, outcome)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--address", help="Join a running Ray cluster: 'auto' or HOST:PORT. Default: start Ray here.")
def resume(run_dir, address) -> None:
    """Continue an interrupted sweep in RUN_DIR.

    Finished trials are kept as they are; unfinished and failed ones go on from their last
    checkpoints; the Optuna search carries on where it stopped. Only resume run directories
    you made: Ray Tune's saved state is pickled.
    """
    from runner.sweep import resume_sweep

    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    try:
        spec, outcome = resume_sweep(Path(run_dir).resolve(), address=address)
    except _user_errors() as error:
        raise UserError(str(error)) from None
    _finish(spec, outcome)


def _finish(spec, outcome) -> None:
    """The summary table and the line to type next; exit 0 when any trial finished."""
    from runner.report import format_table

    click.echo()
    click.echo(format_table(outcome.trials, spec.metrics))
    click.echo()
    minutes, seconds = divmod(round(outcome.seconds), 60)
    click.echo(f"{outcome.finished} of {len(outcome.trials)} trials finished in {minutes}m{seconds:02d}s.")
    click.echo(f"Compare them:  tensorboard --logdir {_relative(outcome.run_dir)}")
    sys.exit(0 if outcome.finished else 1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object a trial.")
@click.option("--csv", "as_csv", is_flag=True, help="A CSV table: trial_id, status, swept values, metrics.")
@click.option("--sort", "sort_metric", metavar="METRIC", help="Best first by METRIC (e.g. val/recon): in the sweep's direction for an objective, else ascending.")
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Only the first N trials (after --sort).")
def show(run_dir, as_json, as_csv, sort_metric, top) -> None:
    """Show the trials of a run directory: swept params, status, last metrics."""
    from runner.report import ReportError, format_csv, format_table, load_run, sort_trials

    if as_json and as_csv:
        raise UserError("--json and --csv: choose one")
    try:
        run = load_run(Path(run_dir))
    except ReportError as error:
        raise UserError(str(error)) from None
    _warn(run.problems)
    trials = run.trials
    if sort_metric is not None:
        try:
            trials = sort_trials(trials, sort_metric, run.objectives, run.modes)
        except ReportError as error:
            raise UserError(f"--sort {sort_metric}: {error}") from None
    trials = trials[:top] if top else trials
    if as_json:
        click.echo(json.dumps([t.to_json() for t in trials], indent=2, default=str))
    elif as_csv:
        click.echo(format_csv(trials, run.objectives), nl=False)
    else:
        click.echo(format_table(trials, run.objectives))


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="The HTML file to write (default: RUN_DIR/report.html).")
def report(run_dir, output) -> None:
    """Write one self-contained HTML page about a sweep.

    The summary table, every trial's final samples, the loss curves, Optuna's parameter
    importances, slice and contour plots, the Pareto front (several objectives) and the failed
    trials. No JavaScript, no external files: it opens in any browser, offline.
    """
    from runner.html_report import write_report
    from runner.report import ReportError

    if output and not Path(output).parent.is_dir():
        raise UserError(f"-o {output}: no such directory {Path(output).parent}")
    output_path = Path(output) if output else Path(run_dir) / "report.html"
    try:
        write_report(Path(run_dir), output_path, warn=lambda problem: _warn([problem]))
    except ReportError as error:
        raise UserError(str(error)) from None
    click.echo(f"wrote {output_path}")


@main.command()
@click.argument("trial_dir", metavar="RUN_DIR/TRIAL", type=click.Path(file_okay=False))
@click.option("--n", "count", default=64, show_default=True, type=click.IntRange(min=1), help="Samples, in a grid ceil(sqrt(N)) wide; with --interpolate, rows enough for N images.")
@click.option("-o", "--output", default="samples.png", show_default=True, type=click.Path(dir_okay=False), help="The PNG file to write.")
@click.option("--seed", default=0, show_default=True, help="Seed of the noise: same seed, same picture.")
@click.option("--interpolate", is_flag=True, help="Rows of images along an arc between two random latent points (ae, vae, aae, dae, gan).")
@click.option("--steps", default=10, show_default=True, type=click.IntRange(min=2), help="--interpolate: images a row.")
@click.option("--arithmetic", metavar="A,B,C", help="Decode the mean code of class A - class B + class C over the val images (ae, vae, aae, dae on labelled data).")
def sample(trial_dir, count, output, seed, interpolate, steps, arithmetic) -> None:
    """Draw pictures from a trial's latest checkpoint into one PNG.

    Samples by default; --interpolate walks between random latent points; --arithmetic A,B,C
    decodes the mean code of class A minus B's plus C's.
    """
    classes = _class_triple(arithmetic) if arithmetic is not None else None
    if interpolate and classes is not None:
        raise UserError("--interpolate and --arithmetic: choose one")
    output_path = Path(output)
    if output_path.suffix.lower() != ".png":
        raise UserError(f"-o {output}: the picture is a PNG; give a name ending in .png")
    if not output_path.parent.is_dir():
        raise UserError(f"-o {output}: no such directory {output_path.parent}")
    from runner import data as data_sources
    from runner import sample as sampling
    from runner.tblog import save_png

    try:
        spec, model = sampling.load_trial(Path(trial_dir))
        if classes is not None:
            data = data_sources.load(spec.data_name, spec.data)
            picture, what = sampling.arithmetic(model, data, *classes), "latent arithmetic {} - {} + {}".format(*classes)
        elif interpolate:
            rows = math.ceil(count / steps)
            picture, what = sampling.interpolation(model, steps, seed, rows), f"{rows} interpolations of {steps} steps"
        else:
            picture, what = sampling.sample_grid(model, count, seed), f"{count} samples"
    except _user_errors() as error:
        raise UserError(str(error)) from None
    try:
        save_png(picture, output_path)
    except OSError as error:  # a read-only directory, a full disk
        raise UserError(f"-o {output}: cannot write ({error.strerror or error})") from None
    click.echo(f"wrote {output}: {what} from {spec.model_name} trial {trial_dir}")


def _warn(problems: list[str]) -> None:
    """Damaged files a command passed over: one line each on stderr, the output goes on."""
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


def _class_triple(text: str) -> tuple[int, int, int]:
    """--arithmetic 7,1,3 -> (7, 1, 3); whether they are classes of the data is checked with the data."""
    try:
        classes = tuple(int(part) for part in text.split(","))
    except ValueError:
        classes = ()
    if len(classes) != 3:
        raise UserError(f"--arithmetic {text}: expected three class numbers A,B,C, such as 7,1,3")
    return classes


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 127.0.0.1 keeps it on this machine (reach it from elsewhere through an SSH tunnel).")
@click.option("--port", default=6006, show_default=True, help="Port; 0 picks a free one.")
def tensorboard(run_dir, host, port) -> None:
    """Serve RUN_DIR (or a directory of runs) in TensorBoard and print its URL."""
    import socket

    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    if port == 0:
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(Path(run_dir).resolve()), "--host", host, "--port", str(port)]
    click.echo(f"TensorBoard for {run_dir}: http://{host}:{port}/  (Ctrl-C stops it)")
    sys.stdout.flush()
    # This process becomes TensorBoard: a signal to it (Ctrl-C, kill, a test's terminate) reaches
    # the server itself, where a child process would be left running.
    os.execv(sys.executable, command)


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
def validate(spec_path, overrides) -> None:
    """Check SPEC without running anything; print what it would run."""
    from runner.spec import load_spec

    try:
        spec = load_spec(spec_path, overrides)
        from runner.data import SOURCES

        SOURCES[spec.data_name].check(spec.data)
    except _user_errors() as error:
        raise UserError(str(error)) from None
    click.echo(f"{spec_path}: ok: {spec.num_samples} trials of {spec.model_name} on {spec.data_name}")
    for path, dim in spec.search.items():
        span = list(dim.values) if dim.values else [dim.low, dim.high]
        click.echo(f"  {path}: {dim.kind} {span}")
    sampler = spec.sampler if spec.search else "-"
    click.echo(f"  sampler {sampler}, scheduler {spec.tune.scheduler}, optimizing {spec.objective_text}")


@main.command("models")
def list_models() -> None:
    """List the registered models with their parameters and defaults."""
    import models
    from models.config import describe_fields

    for name in models.names():
        entry = models.entry(name)
        click.echo(f"{name}: {entry.summary}")
        for field_name, kind, default, description in describe_fields(entry.config_class):
            click.echo(f"    {field_name:<14} {kind:<24} {default:<10} {description}")
        click.echo()


class _AlignGroup(click.Group):
    """`gensweep align IN OUT` aligns; `gensweep align synth|eval ...` are its helpers."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("gensweep align", "INPUT_DIR OUTPUT_DIR [OPTIONS]  |  synth ...  |  eval ...")


@main.group(cls=_AlignGroup)
def align() -> None:
    """Register frames from a fixed, vibrating camera to one reference (Ray Data, all cores).

    \b
      gensweep align INPUT_DIR OUTPUT_DIR --method ecc|fft|features
      gensweep align synth OUT_DIR        a jittered sequence with known motion (truth.csv)
      gensweep align eval TRANSFORMS_CSV TRUTH_CSV
    """


@align.command("run")
@click.argument("input_dir", type=click.Path(file_okay=False))
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["ecc", "fft", "features"]), default="ecc", show_default=True)
@click.option("--motion", help="ecc: translation|euclidean|affine|homography (euclidean); features: homography|affine|partial (partial); fft: translation, or similarity (log-polar).")
@click.option("--detector", type=click.Choice(["orb", "sift", "akaze"]), default="orb", show_default=True, help="features only.")
@click.option("--reference", default="first", show_default=True, help="first, median (of a sample of frames), or an image file.")
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False), help="Image whose black pixels are ignored (a timestamp, moving trees).")
@click.option("--on-fail", type=click.Choice(["copy", "skip", "identity"]), default="copy", show_default=True, help="A frame that cannot be aligned is copied as it is, left out, or written unwarped.")
@click.option("--overwrite", is_flag=True, help="Redo frames already listed in OUTPUT_DIR/transforms.csv.")
@click.option("--address", help="Join a running Ray cluster: 'auto' or HOST:PORT.")
def align_run(input_dir, output_dir, method, motion, detector, reference, mask_path, on_fail, overwrite, address) -> None:
    """Align every frame of INPUT_DIR to the reference; write OUTPUT_DIR/<same names> and transforms.csv."""
    from alignment.pipeline import AlignSettings, align_directory

    settings = AlignSettings(method=method, motion=motion, detector=detector, on_fail=on_fail)
    try:
        summary = align_directory(
            Path(input_dir).resolve(), Path(output_dir).resolve(), settings, reference,
            Path(mask_path).resolve() if mask_path else None, overwrite, address, say=click.echo,
        )
    except _user_errors() as error:
        raise UserError(str(error)) from None
    click.echo(
        f"aligned {summary.aligned}, failed {summary.failed}, skipped (done before) {summary.skipped} of {summary.total}; "
        f"median score {summary.median_score:.4g}; {summary.frames_per_second:.1f} frames/s"
        + (f" on {summary.nodes} nodes" if summary.nodes > 1 else "")
    )
    for failure in summary.failures:
        click.echo(f"  failed: {failure}")
    click.echo(f"transforms: {Path(output_dir) / 'transforms.csv'}")


@align.command("synth")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--frames", default=50, show_default=True)
@click.option("--size", default=256, show_default=True)
@click.option("--motion", type=click.Choice(["translation", "euclidean", "similarity"]), default="euclidean", show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--max-shift", default=6.0, show_default=True, help="pixels")
@click.option("--max-rotation", default=1.0, show_default=True, help="degrees")
def align_synth(out_dir, frames, size, motion, seed, max_shift, max_rotation) -> None:
    """Write a jittered frame sequence with known motion, and its truth.csv."""
    from alignment.synthetic import make_sequence

    truth = make_sequence(Path(out_dir), frames, size, motion, seed, max_shift, max_rotation)
    click.echo(f"{frames} frames of {size}x{size} ({motion}) in {out_dir}; truth: {truth}")


@align.command("eval")
@click.argument("transforms_csv", type=click.Path(dir_okay=False, exists=True))
@click.argument("truth_csv", type=click.Path(dir_okay=False, exists=True))
def align_eval(transforms_csv, truth_csv) -> None:
    """Corner error of TRANSFORMS_CSV against TRUTH_CSV, per method: median, 95th percentile, failures."""
    import cv2

    from alignment.records import accuracy, read_records

    truth = read_records(Path(truth_csv))
    sample = cv2.imread(str(Path(truth_csv).parent / next(iter(truth))), cv2.IMREAD_UNCHANGED)
    if sample is None:
        raise UserError(f"{truth_csv}: cannot read {next(iter(truth))} beside it to learn the frame size")
    height, width = sample.shape[:2]
    click.echo(f"{'method':<10} {'frames':>6} {'failed':>6} {'median px':>10} {'p95 px':>8}")
    for row in accuracy(read_records(Path(transforms_csv)), truth, width, height):
        click.echo(f"{row.method:<10} {row.frames:>6} {row.failed:>6} {row.median:>10.4f} {row.p95:>8.4f}")


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
