"""Trackers: every trial also logged to MLflow or W&B (the spec's tune.loggers), one tracker run
per trial, grouped by the sweep's run name.

What is checked before Ray starts lives here and imports no Ray: the packages (validation: a
missing one is one line with its pip command) and where each tracker writes (just before the
sweep: an MLflow store that does not open, a server that does not answer, is one line too).
The Ray Tune callbacks that do the logging are in runner/sweep/tracker_callbacks.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from runner.errors import GensweepError

# tune.loggers value -> the module it needs, and the extra that installs it (pyproject.toml).


def _import_mlflow() -> None:
    import mlflow  # noqa: F401


def _import_wandb() -> None:
    import wandb  # noqa: F401


# Each tracker: its package, the extra that installs it, and its import (spelt out: nothing is
# imported by a name a spec gives, even from a closed list).
PACKAGES = {"mlflow": ("mlflow", "gensweep[mlflow]", _import_mlflow), "wandb": ("wandb", "gensweep[wandb]", _import_wandb)}

MLFLOW_DATABASE = "mlflow.db"  # in the run directory, when MLFLOW_TRACKING_URI is not set
MLFLOW_ARTIFACTS = "mlartifacts"  # beside it: the sample grids MLflow's local store keeps
WANDB_PROJECT = "gensweep"  # W&B's project when WANDB_PROJECT is not set; the group is the run's name
SERVER_TIMEOUT = 5.0  # seconds an MLflow server has to answer its health check before the sweep


class TrackerError(GensweepError):
    """A tracker in tune.loggers cannot be used (not installed, unreachable); one-line message."""


def require_packages(loggers: Iterable[str]) -> None:
    """Each tracker's package imports: the real import, as the sweep will do it (a package that
    is there but broken fails here too, not after Ray started). MLflow takes ~2 s to import."""
    for logger in dict.fromkeys(loggers):
        module, extra, import_package = PACKAGES[logger]
        if logger == "mlflow":
            # MLflow 3 reports its use to its makers over the network (config.mlflow-telemetry.io)
            # from the process that imports it: a sweep asks nothing of the network the user did
            # not set up. MLFLOW_DISABLE_TELEMETRY=false in the environment turns it back on.
            os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        try:
            import_package()
        except Exception as error:  # noqa: BLE001 - ImportError, or a dependency's version clash
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise TrackerError(
                f"tune.loggers: {logger}: the {module} package does not import ({reason}); "
                f"pip install '{extra}'"
            ) from None


def prepare(loggers: Iterable[str], run_dir: Path, say: Callable[[str], None] = print) -> None:
    """Just before the sweep (Ray not yet started): open each tracker's store and say where it
    logs, one line each. Also before a resume, which logs to the same places."""
    loggers = list(dict.fromkeys(loggers))
    require_packages(loggers)
    if "mlflow" in loggers:
        if "MLFLOW_TRACKING_URI" in os.environ:
            open_mlflow_experiment(run_dir)  # a server that does not answer, a store that does not open
        # else the store in the run directory, made with the first trial's run: a sweep that
        # fails to start leaves none behind
        say(f"gensweep: mlflow: experiment {run_dir.name} at {mlflow_tracking_uri(run_dir)}")
    if "wandb" in loggers:
        mode, why = wandb_mode()
        # In the environment, not only passed to wandb.init: W&B's own usage metrics ask its
        # server from any process whose W&B settings are not offline (this one, and the logging
        # actors, which Ray's workers start with this environment). Before Ray starts, so they see it.
        os.environ["WANDB_MODE"] = mode
        say(f"gensweep: wandb: {mode} ({why}), group {run_dir.name}, files in {run_dir / 'wandb'}")


def mlflow_tracking_uri(run_dir: Path) -> str:
    """MLFLOW_TRACKING_URI, else an SQLite store in the run directory. Not MLflow's file store
    (./mlruns): MLflow 3.17 refuses it unless MLFLOW_ALLOW_FILE_STORE=true ("maintenance mode"),
    and a reader in a notebook would need that setting too."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{run_dir / MLFLOW_DATABASE}"


def open_mlflow_experiment(run_dir: Path) -> str:
    """The id of the run's MLflow experiment (named for the run), made unless it is there;
    TrackerError when the store does not open (MLflow's file store refused, a server that does
    not answer)."""
    uri = mlflow_tracking_uri(run_dir)
    if uri.startswith(("http://", "https://")):
        _require_answer(uri)
    import logging

    from mlflow.tracking import MlflowClient

    # Making the SQLite store logs each schema migration at INFO: noise before the sweep's line.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(run_dir.name)
        if experiment is not None:
            return experiment.experiment_id
        # The local store keeps the sample grids in the run directory too; a server, where it says.
        local = "MLFLOW_TRACKING_URI" not in os.environ
        return client.create_experiment(run_dir.name, artifact_location=str(run_dir / MLFLOW_ARTIFACTS) if local else None)
    except Exception as error:  # noqa: BLE001 - MlflowException, or SQLAlchemy's for a bad database
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrackerError(f"tune.loggers: mlflow: the tracking store {uri} does not open: {reason}") from None


def _require_answer(uri: str) -> None:
    # MLflow's own client retries a server that does not answer for minutes, with back-off; a
    # server's /health answers at once when it is up.
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=SERVER_TIMEOUT):
            pass
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", None) or error
        raise TrackerError(
            f"tune.loggers: mlflow: no MLflow server answers at {uri} (MLFLOW_TRACKING_URI): {reason}; "
            "start it, or unset MLFLOW_TRACKING_URI to log into the run directory"
        ) from None


def wandb_mode() -> tuple[str, str]:
    """W&B's mode and why: WANDB_MODE when set; else online with an API key configured
    (WANDB_API_KEY or `wandb login`), offline without one: nothing tries the network unasked."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"], "WANDB_MODE"
    import wandb

    # verify=False: only whether a key is configured; verifying it would ask W&B's server.
    if wandb.login(prompt=False, verify=False):
        return "online", "an API key is configured"
    return "offline", "no API key configured; `wandb sync` uploads it later"


def tracker_callbacks(loggers: Iterable[str]) -> list:
    """The Ray Tune callbacks that log each trial to the spec's trackers (RunConfig.callbacks).
    They find the run directory from their trials, so a moved run directory resumes into itself."""
    loggers = list(dict.fromkeys(loggers))
    if not loggers:
        return []
    from runner.sweep.tracker_callbacks import MlflowTrialRuns, WandbTrialRuns

    made = {"mlflow": MlflowTrialRuns, "wandb": WandbTrialRuns}
    return [made[logger]() for logger in loggers]
