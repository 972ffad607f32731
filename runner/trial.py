"""One Ray Tune trial: the spec with its sampled values, trained, reported and checkpointed.

A thin adapter around runner.loop.train: Tune's context, checkpoints and reports live here and
nowhere else. Each trial also keeps a small JSON record (its status, config and last metrics)
in its directory, which `gensweep show` reads without unpickling anything.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import ray
import torch
from ray import tune

from runner import loop
from runner.errors import GensweepError, one_line
from runner.files import read_json, write_json
from runner.report import RECORD_FILE, STATE_FILE
from runner.spec import Spec, trial_spec
from runner.tblog import TrialLogger


def run_trial(sampled: dict[str, Any], *, document: dict, source: str, grid: dict[str, list]) -> None:
    """The Tune function trainable. `sampled` holds the swept values by dotted path."""
    spec = trial_spec(document, source, sampled)  # checked whole by the driver: not again per trial
    trial = start_trial(spec, sampled, grid)

    def report(end: loop.EpochEnd) -> None:
        trial.report(end.epoch, end.metrics, lambda path: torch.save(loop.training_state(end), path))

    try:
        loop.train(spec, trial.logger, report, trial.resume_state, assigned_gpus=trial.assigned_gpus)
    except Exception as error:
        trial.fail(one_line(error))
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
        self.record = TrialRecord(trial_dir / RECORD_FILE, self.trial_id, spec, sampled)
        self.assigned_gpus = [str(gpu) for gpu in ray.get_gpu_ids()]
        # pid: Tune reuses a process for trial after trial; the record says which one ran this.
        self.record.update(node=_node_address(), gpus=self.assigned_gpus, pid=os.getpid())

        self.resume_bytes: bytes | None = None
        self.resume_state: dict | None = None
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as directory:
                self.resume_bytes = (Path(directory) / STATE_FILE).read_bytes()
            # weights_only: tensors and plain containers, never arbitrary pickled objects.
            self.resume_state = torch.load(io.BytesIO(self.resume_bytes), map_location="cpu", weights_only=True)

        # A resumed trial drops the events its crashed run wrote after the checkpoint's step.
        resumed = self.resume_state
        if resumed is None:
            # Starting from scratch: event files already here are from a run of this trial that
            # ended before its first checkpoint (interrupted, killed). Its epochs are trained
            # again, so its curves would show every one of them twice.
            for stale in trial_dir.glob("events.out.tfevents.*"):
                stale.unlink()
        self.logger = TrialLogger(trial_dir, purge_step=resumed["global_step"] + 1 if resumed else None)
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
        """Record, checkpoint (write_state writes the state file) and report one epoch to Tune."""
        _die_once_for_tests(epoch)
        last = epoch == self.spec.train.epochs
        # Tune may end this process as soon as it has the last report (a scheduler's max_t), so
        # everything the trial leaves behind is complete before it reports.
        self.record.update(status="finished" if last else "running", epoch=epoch, metrics=metrics)
        if last:
            self.logger.finish(succeeded=True)
        with tempfile.TemporaryDirectory() as directory:
            write_state(Path(directory) / STATE_FILE)
            tune.report(metrics | {"epoch": epoch}, checkpoint=tune.Checkpoint.from_directory(directory))

    def fail(self, message: str) -> None:
        """The trial failed: its record and its TensorBoard session say so (the caller raises)."""
        self.record.update(status="error", error=message)
        self.logger.finish(succeeded=False)

    def close(self) -> None:
        if self.record.fields["status"] != "finished":  # restored at its last epoch: nothing left to train
            self.record.update(status="finished")
            self.logger.finish(succeeded=True)


class TrialError(GensweepError, RuntimeError):
    """A trial failed for a reason found elsewhere (its pack's trainer); one-line message."""


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
    storage = context.get_storage()  # the session's, replaced by Ray at every reset: this trial's
    if storage.storage_filesystem.type_name != "local":
        raise TrialSetupError(
            f"the run directory must be a filesystem path, not {storage.storage_filesystem.type_name} storage"
        )
    path = Path(storage.trial_fs_path)
    path.mkdir(parents=True, exist_ok=True)
    return path


class TrialSetupError(GensweepError):
    """The trial cannot find where its files go; one-line message."""


def _node_address() -> str:
    return ray.util.get_node_ip_address() + ":" + ray.get_runtime_context().get_node_id()[:8]


def _die_once_for_tests(epoch: int) -> None:
    """Test-only: GENSWEEP_TEST_KILL_ONCE=FILE kills this process, once per FILE, at epoch 2
    (or GENSWEEP_TEST_KILL_EPOCH).

    A real SIGKILL, before that epoch's checkpoint: how the fault-tolerance tests lose a trial.
    """
    marker = os.environ.get("GENSWEEP_TEST_KILL_ONCE")
    if marker and epoch == int(os.environ.get("GENSWEEP_TEST_KILL_EPOCH", "2")):
        try:
            with open(marker, "x"):  # exclusive create: the first trial to get here dies
                pass
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)


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
            "started": previous.get("started", time.time()),  # first start: retries keep it
        }
        self.update()

    def update(self, **changes: Any) -> None:
        self.fields.update(changes, updated=time.time())
        write_json(self.path, self.fields)


