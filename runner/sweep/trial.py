"""One Ray Tune trial: the spec with its sampled values, trained, reported and checkpointed.

A thin adapter around runner.train.loop.train: Tune's context, checkpoints and reports live here and
nowhere else. Each trial also keeps a small JSON record (its status, config and last metrics)
in its directory, which `gensweep show` reads without unpickling anything.
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import ray
import torch
from ray import tune

from runner.errors import GensweepError, PermanentError, one_line
from runner.files import read_json, write_json
from runner.ray_internals import trial_storage_path
from runner.results.report import RECORD_FILE, STATE_FILE
from runner.spec import Spec, trial_spec
from runner.timeline import mark
from runner.train import loop
from runner.train.tblog import TrialLogger

mark("trial modules imported")


def run_trial(sampled: dict[str, Any], *, document: dict, source: str, grid: dict[str, list]) -> None:
    """The Tune function trainable. `sampled` holds the swept values by dotted path."""
    mark("trial started")
    spec = trial_spec(document, source, sampled)  # checked whole by the driver: not again per trial
    trial = start_trial(spec, sampled, grid)

    def report(end: loop.EpochEnd) -> None:
        trial.report(end.epoch, end.metrics, lambda path: torch.save(loop.training_state(end), path))

    try:
        loop.train(spec, trial.logger, report, trial.resume_state, assigned_gpus=trial.assigned_gpus)
    except Exception as error:
        trial.fail(one_line(error), permanent=isinstance(error, PermanentError))
        raise
    else:
        trial.close()
    finally:
        # A trial the scheduler stops early ends by SystemExit out of tune.report, past the
        # handler above; its process may go on to the next trial, so its writer closes here
        # (flushing its last epoch) rather than outliving it. A second close does nothing.
        trial.logger.close()


def start_trial(spec: Spec, sampled: dict[str, Any], grid: dict[str, list]) -> TrialSession:
    """Inside a Tune trial: its record, its TensorBoard run and the checkpoint it resumes from."""
    # Ray logs a line per checkpoint; the epoch's report already says as much.
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    logging.getLogger("ray.tune").setLevel(logging.WARNING)
    # Two trials on two cores must not each start a thread per core and fight over them.
    torch.set_num_threads(max(1, int(spec.resources.cpu)))
    cv2.setNumThreads(1)
    return TrialSession(spec, sampled, grid)


class TrialSession:
    """One trial's files and reports: what a plain trial and a pack's member do alike."""

    def __init__(self, spec: Spec, sampled: dict[str, Any], grid: dict[str, list]):
        context = tune.get_context()
        self.spec = spec
        self.trial_id = context.get_trial_id()
        trial_dir = trial_storage_dir(context)
        # Tune retries a failed trial up to max_failures times, whatever the error; one that
        # failed for a reason that does not change (a NaN loss, an unreadable file) fails again
        # at once rather than train for nothing. A later `gensweep resume` tries it again.
        failed_before = permanent_failure(trial_dir / RECORD_FILE)
        if failed_before:
            raise RepeatedFailure(failed_before)
        self.record = TrialRecord(trial_dir / RECORD_FILE, self.trial_id, spec, sampled)
        self.assigned_gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
        # pid: Tune reuses a process for trial after trial; the record says which one ran this.
        self.record.update(node=_node_address(), gpus=self.assigned_gpus, pid=os.getpid())

        self.resume_bytes: bytes | None = None
        self.resume_state: dict | None = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            try:
                _, self.resume_bytes, self.resume_state, notice = newest_loadable_state(Path(checkpoint.path))
            except CheckpointError as error:
                self.fail(str(error), permanent=True)
                raise
            if notice:
                self.record.update(notice=notice)
                print(f"gensweep: trial {self.trial_id}: {notice}", file=sys.stderr, flush=True)

        # A resumed trial drops the events its crashed run wrote after the checkpoint's step.
        resumed = self.resume_state
        if resumed is None:
            # Starting from scratch: event files already here are from a run of this trial that
            # ended before its first checkpoint (interrupted, killed). Its epochs are trained
            # again, so its curves would show every one of them twice.
            for stale in trial_dir.glob("events.out.tfevents.*"):
                stale.unlink()
        self.logger = TrialLogger(trial_dir, purge_step=resumed["global_step"] + 1 if resumed else None)
        self.tensorboard_finished = False  # its TensorBoard session's end is written once
        if resumed is not None:
            # Restored from a checkpoint: its own (a retry, a resume) or, under PBT, a stronger
            # trial's. Either way the record now stands where that checkpoint stood.
            self.record.update(epoch=resumed["epoch"], metrics=resumed.get("metrics", {}))
        else:
            self.logger.hparams(
                {path: sampled[path] for path in sorted(sampled)},
                spec.metric_names(),
                discrete={path: grid[path] for path in grid},
            )

    def report(self, epoch: int, metrics: dict[str, float], write_state: Callable[[Path], None]) -> None:
        """Record, checkpoint (write_state writes the state file) and report one epoch to Tune.

        The record says `finished` only once Tune has the last epoch's result: here, when that
        report returns (close); in the driver, from Tune's results (sweep.finish_records), when
        Tune ends the trial's process at its last report (a scheduler's max_t). Written before
        the report, a Ctrl-C between the two left a trial finished by its record that Tune
        resumed and trained its last epoch again.
        """
        # Tune may end this process as soon as it has the last report, so everything else the
        # trial leaves behind is complete before it reports.
        self.record.update(epoch=epoch, metrics=metrics)
        if epoch == self.spec.train.epochs:
            self._finish_tensorboard(succeeded=True)
        else:
            # The epoch's curves on disk as Tune hears of it (the writer's own flush comes
            # within 10 s): TensorBoard shows each epoch at once, and a trial lost after its
            # report keeps the curves of what it reported.
            self.logger.flush()
        with tempfile.TemporaryDirectory() as directory:
            write_state(Path(directory) / STATE_FILE)
            mark(f"epoch {epoch} reported")
            tune.report(metrics | {"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(directory))

    def fail(self, message: str, permanent: bool = False) -> None:
        """The trial failed: its record and its TensorBoard session say so (the caller raises).

        permanent: it would fail the same way again; Tune's retries in this session end at once.
        """
        self.record.update(status="error", error=message, permanent_in=_ray_session() if permanent else None)
        if hasattr(self, "logger"):  # not yet there when no checkpoint loads
            self._finish_tensorboard(succeeded=False)

    def close(self) -> None:
        """Trained to its last epoch, and Tune has every report (tune.report returns only once the
        driver has taken the result in and asks for the next); or restored at its last epoch."""
        self.record.update(status="finished")
        self._finish_tensorboard(succeeded=True)

    def _finish_tensorboard(self, succeeded: bool) -> None:
        if not self.tensorboard_finished:
            self.tensorboard_finished = True
            self.logger.finish(succeeded=succeeded)


class TrialError(GensweepError, RuntimeError):
    """A trial failed for a reason found elsewhere (its pack's trainer); one-line message."""


class PermanentTrialError(TrialError, PermanentError):
    """A permanent failure found elsewhere (a packed member's NaN loss, in its pack's trainer)."""


class CheckpointError(PermanentError):
    """None of the trial's checkpoints loads; the message names the newest and what is wrong."""


class RepeatedFailure(PermanentError):
    """A retry of a trial that failed permanently earlier in this session: the same message."""


def permanent_failure(record_path: Path) -> str | None:
    """The reason a trial failed permanently earlier in this Ray session (None if it did not).

    Keyed by the session and job: a `gensweep resume` (a new driver, often a new cluster) tries
    the trial again, since the user may have mended what was wrong.
    """
    record = read_json(record_path)
    if isinstance(record, dict) and record.get("status") == "error" and record.get("permanent_in") == _ray_session():
        return str(record.get("error") or "failed before")
    return None


def _ray_session() -> str:
    context = ray.get_runtime_context()
    return f"{context.get_session_name()}/{context.get_job_id()}"


def newest_loadable_state(checkpoint_dir: Path) -> tuple[Path, bytes, dict, str | None]:
    """(file, bytes, state, notice) of the newest checkpoint that loads, from Tune's latest down.

    A trial killed while writing its checkpoint, or a disk that lost a block, leaves a latest
    state file that does not load; retrying it would fail the same way every time. The older
    checkpoints beside it (CheckpointConfig keeps a few) are tried newest first; notice is one
    line saying which was damaged and which the trial goes on from. Raises CheckpointError
    naming the newest file when none loads.
    """
    candidates = [checkpoint_dir]
    index = _checkpoint_index(checkpoint_dir)
    if index is not None:
        numbered = {p: _checkpoint_index(p) for p in checkpoint_dir.parent.glob("checkpoint_*")}
        candidates += sorted((p for p, n in numbered.items() if n is not None and n < index), key=numbered.get, reverse=True)
    where = checkpoint_dir.parent
    failures = []
    for directory in candidates:
        path = directory / STATE_FILE
        try:
            raw, state = _load_state(path)
        except CheckpointError as error:
            failures.append(str(error))
            continue
        notice = None
        if failures:
            notice = f"{'; '.join(failures)}; going on from {directory.name}/{path.name} (epoch {state['epoch']})"
        return path, raw, state, notice
    raise CheckpointError(f"{where}: no checkpoint loads: {'; '.join(failures)}")


def _checkpoint_index(directory: Path) -> int | None:
    prefix, _, number = directory.name.partition("_")
    return int(number) if prefix == "checkpoint" and number.isdigit() else None


def _load_state(path: Path) -> tuple[bytes, dict]:
    """A checkpoint's state file, read and unpickled; CheckpointError says what is wrong with it."""
    where = f"{path.parent.name}/{path.name}"
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CheckpointError(f"{where}: cannot read ({error.strerror or error})") from None
    if not raw:
        raise CheckpointError(f"{where}: empty file")
    if not raw.startswith(b"PK"):  # torch.save writes a zip archive
        raise CheckpointError(f"{where}: not a PyTorch checkpoint (no zip header)")
    try:
        # weights_only: tensors and plain containers, never arbitrary pickled objects.
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises RuntimeError, EOFError, UnpicklingError ...
        reason = str(error).strip().split(". ")[0].splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{where}: truncated or damaged ({len(raw):,} bytes: {reason})") from None
    if not isinstance(state, dict) or "epoch" not in state or "global_step" not in state:
        raise CheckpointError(f"{where}: holds no gensweep training state")
    return raw, state


def trial_storage_dir(context) -> Path:
    """The trial's own directory in the run directory: where its checkpoints go, and its record,
    event files and samples.png with them.

    Not context.get_trial_dir(): that is a local staging directory, and a different one on a
    reused process. Ray 2.60 gives a process's first trial <session>/driver_artifacts/<trial>
    (FunctionTrainable.setup), which the driver copies into the run directory, but every later
    trial <session>/working_dirs/<trial> (FunctionTrainable.reset_config), which nothing copies
    unless SyncConfig(sync_artifacts=True): with reuse_actors, those trials' files were lost.
    Writing straight into the run directory needs no copy at all; it is on storage every node
    sees (runner.cluster.require_shared checks that before a sweep starts).
    """
    kind, path = trial_storage_path(context)
    if kind != "local":
        raise TrialSetupError(f"the run directory must be a filesystem path, not {kind} storage")
    path.mkdir(parents=True, exist_ok=True)
    return path


class TrialSetupError(GensweepError):
    """The trial cannot find where its files go; one-line message."""


def _node_address() -> str:
    return ray.util.get_node_ip_address() + ":" + ray.get_runtime_context().get_node_id()[:8]


class TrialRecord:
    """gensweep.json in the trial directory, rewritten whole at every change."""

    def __init__(self, path: Path, trial_id: str, spec: Spec, sampled: dict[str, Any]):
        self.path = path
        previous = read_json(path) or {}
        self.fields = {
            "trial_id": trial_id,
            "status": "running",
            "swept": dict(sampled),
            "config": spec.flat_config(),
            "metrics": previous.get("metrics", {}),
            "epoch": previous.get("epoch", 0),
            "error": None,
            "attempts": previous.get("attempts", 0) + 1,  # starts of this trial: a retry, a resume
            "started": previous.get("started", time.time()),  # first start: retries keep it
        }
        self.update()

    def update(self, **changes: Any) -> None:
        self.fields.update(changes, updated=time.time())
        write_json(self.path, self.fields)


