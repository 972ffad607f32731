"""The Ray Tune callbacks that log each trial to MLflow and W&B (tune.loggers).

W&B: Tune's own WandbLoggerCallback (a logging actor per trial, the config, every result),
with each epoch's sample grids added as images, the group and files of the run directory, and
offline without an API key. MLflow: a callback of our own (MlflowTrialRuns says why not Tune's).
Both find the run directory from their trials, not from a path held at construction: Tune
pickles its callbacks into its saved state, and a run directory may be moved before a resume.
The grids are the PNG pictures each trial rewrites in its directory every epoch; checkpoints
are never uploaded (they stay in the run directory).
"""

from __future__ import annotations

import numbers
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
from ray.air.integrations.wandb import WandbLoggerCallback
from ray.tune.logger import LoggerCallback

from runner import ray_internals
from runner.sweep import trackers

TRIAL_ID_TAG = "gensweep.trial_id"  # finds a trial's MLflow run again when the sweep resumes
NOT_METRICS = {"pid"}  # a process id; Tune's flags (done, should_checkpoint) are bools: left out as such
RUN_TAG = "gensweep.run"  # the run's name, on every trial's run: a sweep's trials in one search


def _run_dir(trial) -> Path:
    # Trials write into <run_dir>/<trial directory> (runner/sweep/trial.py): Tune's storage path.
    return Path(trial.path).parent


def _pictures(trial) -> dict[str, Path]:
    """The trial directory's latest grids by name (samples.png -> "samples"), each rewritten
    whole every epoch (runner/train/loop.py), before the epoch's result is reported."""
    return {path.stem: path for path in sorted(Path(trial.path).glob("*.png"))}


class MlflowTrialRuns(LoggerCallback):
    """One MLflow run per trial in the run's experiment: the swept values as params, every
    numeric result as a metric at Tune's iteration (one an epoch), each epoch's grids as
    artifacts <name>/epoch_NNN.png; tagged with the run's name and the trial's id.

    Not Tune's MLflowLoggerCallback, which logs metrics one call each (0.5 s an epoch on the
    SQLite store, in Tune's loop; one log_batch here: 0.03 s), logs params again whenever a trial
    starts (MLflow refuses a changed one, and PBT changes them), starts a second run for a
    trial resumed in a new process, and uploads the driver's staging directory at the end
    (save_artifact), not the grids.
    """

    def setup(self, *args, **kwargs):
        self.runs = {}  # Tune's trial id -> its MLflow run id
        self.client = None
        self.opened = None  # the run directory the client and experiment are for

    def _open(self, trial) -> None:
        run_dir = _run_dir(trial)
        if self.opened != run_dir:
            from mlflow.tracking import MlflowClient

            self.experiment_id = trackers.open_mlflow_experiment(run_dir)
            self.client = MlflowClient(tracking_uri=trackers.mlflow_tracking_uri(run_dir))
            self.opened = run_dir

    def log_trial_start(self, trial):
        self._open(trial)
        if trial.trial_id in self.runs:
            return  # a trial paused and started again (PBT): its run and params stand
        # A resumed sweep's trial goes on in the run it had: its params stand too.
        earlier = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.`{TRIAL_ID_TAG}` = '{trial.trial_id}'", max_results=1
        )
        if earlier:
            run_id = earlier[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
        else:
            from mlflow.entities import Param

            tags = {RUN_TAG: self.opened.name, TRIAL_ID_TAG: trial.trial_id}
            run_id = self.client.create_run(self.experiment_id, run_name=Path(trial.path).name, tags=tags).info.run_id
            # The values each epoch trained with, under PBT's changes, are metrics (config/<path>).
            params = [Param(path, str(value)) for path, value in sorted(trial.config.items())]
            self.client.log_batch(run_id, params=params)
        self.runs[trial.trial_id] = run_id

    def log_trial_result(self, iteration: int, trial, result: dict):
        from mlflow.entities import Metric

        if trial.trial_id not in self.runs:
            self.log_trial_start(trial)
        run_id = self.runs[trial.trial_id]
        step, now = result.get("training_iteration", iteration), int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in _numbers(result)]
        self.client.log_batch(run_id, metrics=metrics)
        epoch = result.get("epoch")
        pictures = _pictures(trial)
        if epoch is None or not pictures:
            return
        with tempfile.TemporaryDirectory() as staging:
            for name, path in pictures.items():
                # Copied under the epoch's name: MLflow keeps an artifact's file name.
                copy = Path(staging) / name / f"epoch_{int(epoch):03d}.png"
                copy.parent.mkdir()
                shutil.copyfile(path, copy)
                self.client.log_artifact(run_id, str(copy), artifact_path=name)

    def log_trial_end(self, trial, failed: bool = False):
        if trial.trial_id in self.runs:
            self.client.set_terminated(self.runs.pop(trial.trial_id), status="FAILED" if failed else "FINISHED")


def _numbers(result: dict, prefix: str = ""):
    """(key, number) of a Tune result, nested dicts (config) as config/<path>; Tune's bookkeeping
    flags (done, should_checkpoint) and the process id are no metrics."""
    for key, value in result.items():
        if isinstance(value, dict):
            yield from _numbers(value, f"{prefix}{key}/")
        elif isinstance(value, numbers.Number) and not isinstance(value, bool) and key not in NOT_METRICS:
            yield prefix + key, value


class WandbTrialActor(ray_internals.wandb_logging_actor_class(WandbLoggerCallback)):
    """Tune's W&B logging actor, in the sweep's W&B mode, which lets W&B write a run's last
    records before it returns (Tune kills it then: runner/ray_internals.py says why that lost them)."""

    def run(self):
        # The mode in this process's environment too (trackers.prepare says why): a worker of a
        # cluster joined with --address was started with another environment.
        os.environ["WANDB_MODE"] = self.kwargs["mode"]
        super().run()
        import wandb

        wandb.teardown()


class WandbTrialRuns(WandbLoggerCallback):
    """One W&B run per trial (id: Tune's trial id) in the group named for the run: the config,
    every result, and each epoch's grids as images. Offline into <run_dir>/wandb when no API
    key is configured (trackers.wandb_mode)."""

    def __init__(self):
        super().__init__(project=None, upload_checkpoints=False)  # checkpoints stay in the run directory

    def setup(self, *args, **kwargs):
        # Not Tune's setup: it demands an API key unless WANDB_MODE says offline, and the mode
        # is chosen here (the trackers' line before the sweep said which).
        self.project = os.environ.get("WANDB_PROJECT") or trackers.WANDB_PROJECT
        mode, _ = trackers.wandb_mode()
        # Passed to wandb.init, not set in the environment: the logging actors' processes were
        # started with Ray, before this. resume="allow": a resumed trial goes on in its own run.
        self.kwargs.update(mode=mode, resume="allow")

    def log_trial_start(self, trial):
        run_dir = _run_dir(trial)
        self.group = run_dir.name
        # Named as the trial's directory (TensorBoard's run, `gensweep show`); files in dir/wandb/
        self.kwargs.update(name=Path(trial.path).name, dir=str(run_dir))
        super().log_trial_start(trial)

    def on_experiment_end(self, trials, **info):
        # A trial an interrupt stopped would keep its actor, and the sweep, waiting 30 minutes.
        ray_internals.stop_wandb_logging_actors(self)
        super().on_experiment_end(trials, **info)

    def log_trial_result(self, iteration: int, trial, result: dict):
        pictures = {}
        for name, path in _pictures(trial).items():
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                # (H, W, 3) arrays: Tune's callback makes each a wandb.Image
                pictures[name] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        super().log_trial_result(iteration, trial, result | pictures)


ray_internals.use_wandb_logging_actor(WandbTrialRuns, WandbTrialActor)
