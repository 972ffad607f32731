"""Starting a new sweep from a spec file: the one implementation behind `gensweep run` and
`gensweep.run` (the Python API), so both refuse the same mistakes with the same one-line errors
and leave the same run directory behind.

Everything a run can be refused for is checked before Ray starts: the storage path, the run's
name, the spec, a directory that cannot be written.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from runner.errors import GensweepError
from runner.files import DiskFullError, is_disk_full, mount_point
from runner.results.run_view import objective_text, trials_text
from runner.spec import Spec, load_spec
from runner.spec.names import check_run_name
from runner.sweep import trackers
from runner.sweep.driver import CHECKPOINTS_KEPT, SweepOutcome, claim_run_dir, run_sweep
from runner.timeline import mark
from runner.train.prepare import prepare_data


def start_sweep(
    spec_path: str | Path,
    overrides: Iterable[str] = (),
    *,
    storage_path: str | Path = "runs",
    name: str | None = None,
    address: str | None = None,
    verbose: int = 0,
    keep_checkpoints: int = CHECKPOINTS_KEPT,
    say: Callable[[str], None] = print,
) -> tuple[Spec, SweepOutcome]:
    """Validate the spec (with `overrides`, "key=value" as --set takes them), claim a new run
    directory under `storage_path` and run the sweep there; `say` gets the lines a run prints
    before its progress. Raises a GensweepError (or ConfigError) for a user's mistake.

    A KeyboardInterrupt that escapes came before the sweep started: the sweep handles its own.
    """
    storage_text = str(storage_path)
    if "://" in storage_text:
        raise GensweepError(
            f"--storage-path {storage_text}: storage URIs are not supported; mount shared storage "
            "(NFS, EFS, ...) at the same path on every node and give that path"
        )
    if name is not None:
        check_run_name(name, "--name")  # before the spec: a name that escapes is refused first
    mark("command started")
    spec = load_spec(spec_path, list(overrides))
    trackers.require_packages(spec.tune.loggers)
    mark("spec checked")
    check_run_name(name or spec.name, f"{spec_path}: name")
    storage = Path(storage_path).expanduser().resolve()
    # Before anything is made there, and before Ray starts: a file in the way, a read-only disk.
    require_writable(storage, f"--storage-path {storage_text}")
    claim = claim_run_dir(storage, name or spec.name)
    try:
        say(
            f"gensweep: {spec.name}: {trials_text(spec.num_samples)} of {spec.model_name} on {spec.data_name}, "
            f"sampler {spec.sampler if spec.search else '-'}, optimizing {objective_text(spec.metrics, spec.modes)}"
        )
        say(f"gensweep: {spec.quality_plan().line()}")
        for note in spec.notes():
            say(f"gensweep: note: {note}")
        prepare_data(spec, say=lambda message: say(f"gensweep: {message}"))
        mark("data ready")
        say(f"gensweep: results in {shown_path(claim.path)}")
        trackers.prepare(spec.tune.loggers, claim.path, say)
        outcome = run_sweep(spec, claim.path, address=address, verbose=verbose, keep_checkpoints=keep_checkpoints)
    except BaseException as error:
        claim.release()  # a sweep that did not start leaves no empty run behind
        if isinstance(error, Exception) and not isinstance(error, GensweepError):
            raise_if_disk_full(error, Path(storage_path))  # an OSError, or SQLite's through Optuna
        raise
    return spec, outcome


def require_writable(directory: Path, label: str) -> None:
    """Before Ray starts: the results can be written under `directory` (it, or the nearest
    directory above it that exists, takes a new file). Nothing is left behind."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise GensweepError(f"{label}: {existing} is a file, not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing, prefix=".gensweep-write-check-"):
            pass
    except OSError as error:
        raise GensweepError(f"{label}: cannot write in {existing} ({error.strerror or error})") from None


def raise_if_disk_full(error: Exception, where: Path) -> None:
    """A full disk met outside the sweep's own watch (writing sweep.json, restoring): one line."""
    if is_disk_full(error):
        raise DiskFullError(f"{where}: the disk is full (no space left on {mount_point(where)})") from None


def shown_path(path: Path) -> str:
    """A path as messages show it: relative to the working directory when under it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
