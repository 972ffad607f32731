"""The `gensweep` command. Heavy imports (torch, Ray) happen inside commands: --help is instant."""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import sys
from pathlib import Path

import click

from runner import __version__
from runner.timeline import mark

USAGE_ERROR = 2  # a user's mistake: bad spec, override, path or address


class UserError(click.ClickException):
    """One line on stderr, exit 2, no traceback."""

    exit_code = USAGE_ERROR

    def __init__(self, message: str, exit_code: int = USAGE_ERROR):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.message}", err=True)


def _is_user_error(error: BaseException) -> bool:
    """A user's mistake, told in one line: every gensweep error (runner.errors: the spec, data,
    runs, reports, alignment) and a config value that does not fit (models.config)."""
    from models.config import ConfigError
    from runner.errors import GensweepError

    return isinstance(error, (GensweepError, ConfigError))


class Commands(click.Group):
    """The command group: maps a user's mistake, from any command, to `error: <message>` and
    its exit status (2 unless the error names another), in this one place."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except Exception as error:
            if _is_user_error(error):
                raise UserError(str(error), getattr(error, "exit_status", USAGE_ERROR)) from None
            raise


class _Ending:
    """How the console script ends: with main()'s exit status, once every exit handler has run."""

    status: int = 1  # an exception escaped main(): Python has printed it; 1 as Python would exit

    def note(self, code: object) -> None:
        # SystemExit's code as Python reads it: None is 0; a message (already printed) is 1.
        self.status = 0 if code is None else code if isinstance(code, int) else 1

    def now(self) -> None:
        """The last exit handler: flush what is written, then end without tearing down the
        interpreter. Torch's and Ray's modules take ~0.9 s to dismantle and write nothing: every
        file gensweep writes is closed, Ray shut down and threads joined before exit handlers run."""
        logging.shutdown()
        mark("exiting")
        status = self.status
        for stream in {id(s): s for s in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__) if s is not None}.values():
            try:
                stream.flush()
            except (BrokenPipeError, ValueError):  # `gensweep show | head`: the reader has all it wanted; or closed
                pass
            except OSError:  # output lost (a full disk): as Python would, say so by the status
                status = status or 120
        os._exit(status)


def entry() -> None:
    """The `gensweep` console script: main(), ending as fast as its work allows (see _Ending)."""
    ending = _Ending()
    atexit.register(ending.now)  # registered before torch or Ray are imported: it runs after theirs
    try:
        main()
    except SystemExit as exit_:
        ending.note(exit_.code)
        raise


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
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

    Exits 0 when at least one trial finished, 1 when none did (or the disk filled), 2 for a bad
    spec or argument, 130 after Ctrl-C, 143 after SIGTERM (`gensweep resume` continues it).
    """
    from runner.sweep.launch import start_sweep

    try:  # the same implementation as gensweep.run (the Python API)
        spec, outcome = start_sweep(
            spec_path, overrides, storage_path=storage_path, name=name, address=address, verbose=verbose,
            keep_checkpoints=keep_checkpoints, say=click.echo,
        )
    except KeyboardInterrupt:  # Ctrl-C before the sweep's own handling began
        click.echo("gensweep: interrupted before the sweep started", err=True)
        sys.exit(130)
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
    from runner.sweep.driver import resume_sweep
    from runner.sweep.launch import raise_if_disk_full

    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    try:
        spec, outcome = resume_sweep(Path(run_dir).resolve(), address=address)
    except Exception as error:  # an OSError, or SQLite's OperationalError through Optuna
        if not _is_user_error(error):
            raise_if_disk_full(error, Path(run_dir))
        raise
    except KeyboardInterrupt:  # Ctrl-C while Ray started or Tune's state was read: nothing changed
        click.echo(f"gensweep: interrupted before the sweep resumed; again: gensweep resume {run_dir}", err=True)
        sys.exit(130)
    _finish(spec, outcome)


def _finish(spec, outcome) -> None:
    """The summary table and the line to type next; exit 0 when any trial finished, 128 + the
    signal's number (130 for Ctrl-C, 143 for SIGTERM) when a signal interrupted the sweep."""
    import signal

    from runner.results.report import format_table
    from runner.sweep.interrupts import exit_status

    click.echo()
    click.echo(format_table(outcome.trials, spec.metrics))
    click.echo()
    minutes, seconds = divmod(round(outcome.seconds), 60)
    click.echo(f"{outcome.finished} of {len(outcome.trials)} trials finished in {minutes}m{seconds:02d}s.")
    click.echo(f"Compare them:  tensorboard --logdir {_relative(outcome.run_dir)}")
    if outcome.stopped_by is not None:
        name = signal.Signals(outcome.stopped_by).name
        click.echo(f"Interrupted by {name}; continue with:  gensweep resume {_relative(outcome.run_dir)}")
        sys.exit(exit_status(outcome.stopped_by))
    sys.exit(0 if outcome.finished else 1)


@main.command()
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="A JSON list, one object a trial.")
@click.option("--csv", "as_csv", is_flag=True, help="A CSV table: trial_id, status, swept values, metrics.")
@click.option("--sort", "sort_metric", metavar="METRIC", help="Best first by METRIC (e.g. val/recon): in the sweep's direction for an objective, else ascending.")
@click.option("--top", type=click.IntRange(min=1), metavar="N", help="Only the first N trials (after --sort).")
def show(run_dir, as_json, as_csv, sort_metric, top) -> None:
    """Show the trials of a run directory: swept params, status, last metrics."""
    from runner.results.report import ReportError, format_csv, format_table, load_run, sort_trials

    if as_json and as_csv:
        raise UserError("--json and --csv: choose one")
    run = load_run(Path(run_dir))
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
    from runner.results.html_report import write_report

    if output and Path(output).suffix.lower() not in (".html", ".htm"):
        # Never over a file the run holds (sweep.json, optuna.db, a record) or any other kind.
        raise UserError(f"-o {output}: the report is an HTML page; give a name ending in .html")
    if output and not Path(output).parent.is_dir():
        raise UserError(f"-o {output}: no such directory {Path(output).parent}")
    output_path = Path(output) if output else Path(run_dir) / "report.html"
    write_report(Path(run_dir), output_path, warn=lambda problem: _warn([problem]))
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
    _refuse_run_pictures(output_path, Path(trial_dir), output)
    from runner.train import sample as sampling
    from runner.train.tblog import save_png
    from runner.train.tensors import load_tensors

    spec, model = sampling.load_trial(Path(trial_dir))
    if classes is not None:
        data = load_tensors(spec.data_name, spec.data)
        picture, what = sampling.arithmetic(model, data, *classes), "latent arithmetic {} - {} + {}".format(*classes)
    elif interpolate:
        rows = math.ceil(count / steps)
        picture, what = sampling.interpolation(model, steps, seed, rows), f"{rows} interpolations of {steps} steps"
    else:
        picture, what = sampling.sample_grid(model, count, seed), f"{count} samples"
    try:
        save_png(picture, output_path)
    except OSError as error:  # a read-only directory, a full disk
        raise UserError(f"-o {output}: cannot write ({error.strerror or error})") from None
    click.echo(f"wrote {output}: {what} from {spec.model_name} trial {trial_dir}")


def _warn(problems: list[str]) -> None:
    """Damaged files a command passed over: one line each on stderr, the output goes on."""
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


def _refuse_run_pictures(output_path: Path, trial_dir: Path, output: str) -> None:
    """The pictures the run itself keeps (a trial's latest samples.png, which the comparison and
    the report show, and every other grid it logged as a PNG beside it; comparison.png) are never
    replaced by a drawing made afterwards: with the default -o samples.png, run inside a trial's
    directory, it would have been."""
    from runner.results.report import COMPARISON_FILE, SAMPLES_FILE

    trial_dir = trial_dir.resolve()  # '.' has no parent to find the run's comparison.png in
    kept = {trial_dir / SAMPLES_FILE, trial_dir.parent / COMPARISON_FILE, *trial_dir.glob("*.png")}
    if output_path.resolve() in kept:
        raise UserError(f"-o {output}: that is the run's own {output_path.name}; give another name")


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
@click.option("--port", default=6006, show_default=True, type=click.IntRange(0, 65535), help="Port; 0 picks a free one.")
def tensorboard(run_dir, host, port) -> None:
    """Serve RUN_DIR (or a directory of runs) in TensorBoard and print its URL.

    TensorBoard asks for no password: on a host other than 127.0.0.1 (0.0.0.0: every
    interface) anyone who can reach the port sees every run, and a warning says so.
    """
    if not Path(run_dir).is_dir():
        raise UserError(f"{run_dir}: no such run directory")
    # Before any URL is printed: a host or port TensorBoard cannot listen on is one line here,
    # where TensorBoard itself would print a traceback or exit 255 after the URL.
    port, shown_host, warning = _tensorboard_address(host, port)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    command = [sys.executable, "-m", "tensorboard.main", "--logdir", str(Path(run_dir).resolve()), "--host", host, "--port", str(port)]
    click.echo(f"TensorBoard for {run_dir}: http://{shown_host}:{port}/  (Ctrl-C stops it)")
    sys.stdout.flush()
    # This process becomes TensorBoard: a signal to it (Ctrl-C, kill, a test's terminate) reaches
    # the server itself, where a child process would be left running.
    os.execv(sys.executable, command)


def _tensorboard_address(host: str, port: int) -> tuple[int, str, str | None]:
    """Bind (host, port) as TensorBoard's server will, and let go: the port (a free one for 0),
    the host as a URL shows it, and a warning when other machines can reach it.

    TensorBoard serves through werkzeug, which picks IPv6 for a host with a colon, else IPv4,
    binds the first address getaddrinfo gives with SO_REUSEADDR, and refuses a port that already
    answers on localhost: the same rules here. Between this check and TensorBoard's own bind
    another program could take the port; TensorBoard then says so itself.
    """
    import errno
    import ipaddress
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        address = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM, socket.IPPROTO_TCP)[0][4]
    except (OSError, UnicodeError, ValueError) as error:  # gaierror, an IDNA label too long, a NUL
        reason = getattr(error, "strerror", None) or error
        raise UserError(f"--host {host}: not an address this machine can listen on ({reason})") from None
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise UserError(f"--port {port}: in use on {host}; give another port, or --port 0 for a free one") from None
            raise UserError(f"--host {host} --port {port}: cannot listen there ({error.strerror or error})") from None
        port = probe.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as knock:  # TensorBoard's own in-use check
        knock.settimeout(2)
        if knock.connect_ex(("localhost", port)) == 0:
            raise UserError(f"--port {port}: in use on localhost; give another port, or --port 0 for a free one")
    ip = ipaddress.ip_address(address[0].split("%")[0])  # an IPv6 scope (%eth0) is no part of the address
    shown_host = f"[{host}]" if family == socket.AF_INET6 else host
    if ip.is_loopback:
        return port, shown_host, None
    private = "use --host 127.0.0.1 and an SSH tunnel to keep it to yourself"
    if ip.is_unspecified:
        shown_host = socket.gethostname()
        warning = (f"--host {host}: TensorBoard listens on every interface of this machine, with no password: "
                   f"anyone who can reach port {port} sees every run; {private}")
    else:
        warning = (f"--host {host}: TensorBoard listens on {ip}, with no password: anyone who can reach "
                   f"{ip} port {port} sees every run; {private}")
    return port, shown_host, warning


@main.command()
@click.option("--cpus", type=click.IntRange(min=1), help="CPUs it offers trials (default: this machine's cores).")
def up(cpus) -> None:
    """Start a local Ray and keep it up between sweeps: `gensweep run` (and `align`) join it
    instead of starting Ray each time, until `gensweep down`. On 127.0.0.1, with token
    authentication; trials run in the environment this command was started in."""
    from runner import local_ray

    local_ray.up(cpus, say=click.echo)


@main.command()
def down() -> None:
    """Stop the Ray `gensweep up` started (and any sweep still running on it), and nothing else."""
    from runner import local_ray

    local_ray.down(say=click.echo)


@main.command()
@click.argument("spec_path", metavar="[SPEC]", required=False, type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
@click.option("--list", "list_entries", is_flag=True, help="List the decoded data sets in this node's cache.")
@click.option("--clear", is_flag=True, help="Remove decoded data sets from this node's cache (all, or those given with --key).")
@click.option("--key", "keys", multiple=True, metavar="KEY", help="--clear: only this entry (as --list shows it; repeatable).")
def prepare(spec_path, overrides, list_entries, clear, keys) -> None:
    """Decode SPEC's data once, ahead of a sweep, into the cache every trial shares.

    Image files (folder, imagefolder, celeba) are decoded and preprocessed in parallel into
    $GENSWEEP_CACHE (default ~/.cache/gensweep) as one memory-mapped array per data set and
    settings; trials map it read-only and share its pages. `gensweep run` does the same when the
    cache lacks the data; this command does it ahead of time, and shows and frees the cache.
    """
    from runner.data import decoded

    if list_entries or clear:
        if spec_path is not None:
            raise UserError("prepare --list/--clear take no SPEC")
        if clear:
            removed, freed = decoded.clear(list(keys) or None)
            click.echo(f"removed {removed} decoded data set{'s' * (removed != 1)} ({decoded.size_text(freed)}) from {decoded.decoded_root()}")
        else:
            _list_cache(decoded)
        return
    if keys:
        raise UserError("--key goes with --clear")
    if spec_path is None:
        raise UserError("prepare: give a SPEC to decode, or --list / --clear")
    import time

    from runner.spec import load_spec
    from runner.train.prepare import prepare_data

    spec = load_spec(spec_path, overrides)
    started = time.monotonic()
    arrays = prepare_data(spec, say=lambda message: click.echo(f"gensweep: {message}"))
    shape = "x".join(map(str, arrays.train_images.shape[1:]))
    where = f" (cache: {decoded.decoded_root()})" if decoded.is_mapped(arrays.train_images) else ""
    click.echo(f"{spec_path}: ready: {len(arrays.train_images):,} train + {len(arrays.val_images):,} val images, "
               f"{shape}, in {time.monotonic() - started:.1f} s{where}")


def _list_cache(decoded) -> None:
    import time

    entries = decoded.entries()
    if not entries:
        click.echo(f"no decoded data sets in {decoded.decoded_root()}")
        return
    click.echo(f"{'key':<24}  {'images':>9}  {'shape':<11}  {'size':>9}  {'last used':<16}  folder")
    for entry in entries:
        count, *shape = entry.meta.get("shape", [0])
        used = time.strftime("%Y-%m-%d %H:%M", time.localtime(entry.last_used))
        click.echo(f"{entry.key:<24}  {count:>9,}  {'x'.join(map(str, shape)):<11}  {decoded.size_text(entry.size_bytes):>9}  "
                   f"{used:<16}  {entry.meta.get('folder', '?')}")
    click.echo(f"{len(entries)} in {decoded.decoded_root()}; gensweep prepare --clear frees them")


@main.command()
@click.argument("spec_path", metavar="SPEC", type=click.Path(dir_okay=False))
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a spec field.")
def validate(spec_path, overrides) -> None:
    """Check SPEC without running anything; print what it would run."""
    from runner.results.run_view import objective_text, trials_text
    from runner.spec import load_spec
    from runner.sweep.trackers import require_packages

    spec = load_spec(spec_path, overrides)
    require_packages(spec.tune.loggers)  # the real imports: a second for MLflow, only when asked for
    from runner.data import SOURCES

    source = SOURCES[spec.data_name]
    source.check(spec.data)
    info = spec.data_info
    kind = f"{info.num_classes} classes" if info.num_classes else "unlabelled"
    kind += f", {info.pairing}" if info.pairing else ""
    shape = "x".join(map(str, info.image_shape))
    counts = source.count(spec.data) if source.count is not None else None
    counts = f", {counts[0]} train + {counts[1]} val images" if counts is not None else ""
    click.echo(
        f"{spec_path}: ok: {trials_text(spec.num_samples)} of {spec.model_name} on {spec.data_name} ({shape}, {kind}){counts}"
    )
    for path, dim in spec.search.items():
        click.echo(f"  {path}: {dim.kind} {_span_text(dim)}")
    sampler = spec.sampler if spec.search else "-"
    click.echo(f"  sampler {sampler}, scheduler {spec.tune.scheduler}, optimizing {objective_text(spec.metrics, spec.modes)}")
    click.echo(f"  {spec.quality_plan().line()}")  # what is measured, and why anything is not: never silently off
    for note in spec.notes():
        click.echo(f"  note: {note}")


LISTED_VALUES = 8  # validate lists a longer grid or choice by its first few values and its length


def _span_text(dim) -> str:
    """[2, 4, 8]; [1e-05, 2e-05, ... (10,000 values)] for a long list; [low, high] for a range."""
    if not dim.values:
        return f"[{dim.low}, {dim.high}]"
    if len(dim.values) <= LISTED_VALUES:
        return repr(list(dim.values))
    first = ", ".join(map(repr, dim.values[: LISTED_VALUES - 2]))
    return f"[{first}, ... ({len(dim.values):,} values)]"


@main.command()
@click.option("--built-in-only", is_flag=True,
              help="Leave out installed packages' models (the committed gensweep.schema.json is built this way).")
def schema(built_in_only: bool) -> None:
    """Print the spec's JSON Schema (draft 2020-12) for editors.

    \b
    Every model's (installed plugins' too) and data source's fields with their descriptions; the
    shipped specs name the committed copy on their first line for the YAML language server:
      # yaml-language-server: $schema=../gensweep.schema.json
    Regenerate it with:  gensweep schema --built-in-only > gensweep.schema.json
    """
    from runner.spec.schema import spec_schema

    click.echo(json.dumps(spec_schema(plugins=not built_in_only), indent=2))


@main.command("models")
def list_models() -> None:
    """List the registered models with their parameters and defaults.

    Installed packages' models (entry-point group gensweep.models) follow the built-ins, each with
    its package; one that does not load is one line on stderr.
    """
    import models
    from models import plugins
    from models.cards import paper_defaults_lines
    from models.config import describe_fields

    for name in models.names():
        entry = models.entry(name)
        package = models.distribution(name)
        click.echo(f"{name}{f' (from {package})' if package else ''}: {entry.summary}")
        for field_name, kind, default, description in describe_fields(entry.config_class):
            click.echo(f"    {field_name:<14} {kind:<24} {default:<10} {description}")
        if name == "gan":  # what its null optimizer fields become, variant by variant
            click.echo("    paper defaults (null optimizer/beta1/beta2/n_critic take these; lr_g/lr_d take train.lr):")
            for line in paper_defaults_lines():
                click.echo(f"      {line}")
        click.echo()
    for line in plugins.discovered().broken.values():
        click.echo(f"gensweep models: {line}", err=True)


class _AlignGroup(click.Group):
    """`gensweep align IN OUT` aligns; `gensweep align synth|eval ...` are its helpers."""

    def resolve_command(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)

    def format_usage(self, ctx, formatter):
        formatter.write_usage("gensweep align", "INPUT_DIR|VIDEO OUTPUT_DIR [OPTIONS]  |  synth ...  |  eval ...")


@main.group(cls=_AlignGroup)
def align() -> None:
    """Register frames from a fixed, vibrating camera to one reference (Ray Data, all cores).

    \b
      gensweep align INPUT_DIR OUTPUT_DIR --method ecc|fft|features
      gensweep align VIDEO OUTPUT_DIR     any file OpenCV's VideoCapture opens (mp4, avi, mkv, ...)
      gensweep align synth OUT_DIR        a jittered sequence with known motion (truth.csv)
      gensweep align eval TRANSFORMS_CSV TRUTH_CSV
    """


@align.command("run")
@click.argument("input_dir", type=click.Path())
@click.argument("output_dir", type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["ecc", "fft", "features"]), default="ecc", show_default=True)
@click.option("--motion", help="ecc: translation|euclidean|affine|homography (euclidean); features: homography|affine|partial (partial); fft: translation, or similarity (log-polar).")
@click.option("--detector", type=click.Choice(["sift", "orb", "akaze"]), default="sift", show_default=True, help="features only: sift (sub-pixel), orb (about 4x faster, whole-pixel keypoints) or akaze.")
@click.option("--reference", default="first", show_default=True, help="first (of the selected frames), median (of a sample of them), a frame index, or an image file.")
@click.option("--frames", "frame_range", metavar="START:STOP[:STEP]", help="Align only these frames (Python slice rules over the video's frames, or the folder's sorted files).")
@click.option("--mask", "mask_path", type=click.Path(dir_okay=False), help="Image whose black pixels are ignored (a timestamp, moving trees).")
@click.option("--on-fail", type=click.Choice(["copy", "skip", "identity"]), default="copy", show_default=True, help="A frame that cannot be aligned is copied as it is, left out, or written unwarped.")
@click.option("--overwrite", is_flag=True, help="Redo frames already listed in OUTPUT_DIR/transforms.csv.")
@click.option("--address", help="Join a running Ray cluster: 'auto' or HOST:PORT.")
def align_run(input_dir, output_dir, method, motion, detector, reference, frame_range, mask_path, on_fail, overwrite, address) -> None:
    """Align every frame of INPUT_DIR (or VIDEO) to the reference; write OUTPUT_DIR/<same names>
    (a video's frames: <index>.png), transforms.csv and summary.png.

    A rerun skips the frames transforms.csv has a row for, so an interrupted run (even a killed
    one) resumes. OUTPUT_DIR must not be INPUT_DIR: no file is ever written over a frame, the
    reference or the mask. Exits 0 when frames are aligned, 1 when none is, 2 for a mistake in the
    command or an input that cannot be read (a corrupt video, say).
    """
    from alignment.pipeline import AlignSettings, align_directory

    settings = AlignSettings(method=method, motion=motion, detector=detector, on_fail=on_fail)
    summary = align_directory(
        Path(input_dir), Path(output_dir), settings, reference,
        Path(mask_path) if mask_path else None, overwrite, address, say=click.echo, frames=frame_range,
    )
    click.echo(
        f"aligned {summary.aligned}, failed {summary.failed}, skipped (done before) {summary.skipped} of {summary.total}; "
        f"median score {summary.median_score:.4g}; {summary.frames_per_second:.1f} frames/s"
        + (f" on {summary.nodes} nodes" if summary.nodes > 1 else "")
        + f" (in {summary.seconds:.1f} s"
        + (f"; first aligned frame after {summary.first_frame_seconds:.1f} s)" if summary.aligned + summary.failed else ")")
    )
    for failure in summary.failures:
        click.echo(f"  failed: {failure}")
    for line in summary.picture:
        click.echo(line)
    transforms = Path(output_dir) / "transforms.csv"
    click.echo(f"transforms: {transforms}")
    if not summary.usable:  # a data set of unaligned frames is not a result
        click.echo(f"error: no frame of {input_dir} is aligned in {output_dir}: every one failed (reasons in "
                   f"{transforms}; --overwrite redoes them)", err=True)
        sys.exit(1)


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

    if Path(out_dir).exists() and (not Path(out_dir).is_dir() or any(Path(out_dir).iterdir())):
        # Its frame_NNNN.png and truth.csv would replace files of the same names: real frames.
        raise UserError(f"{out_dir}: exists and is not empty; synth writes into a new or empty directory")
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
    from runner.sweep.launch import shown_path

    return shown_path(path)
