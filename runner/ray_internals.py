"""Ray's private names, the only place this project uses them.

Each is here because Ray 2.60 has no public API that does the same job; each has a test in
tests/test_internals.py that checks it against the installed Ray, so an upgrade that moves or
renames one fails that test by name rather than a sweep at run time.

Imports no Ray at its top (the callers hand Ray's objects in, or a function imports what it
patches): runner.cluster imports this module, and the light commands must stay light
(tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

from runner.processes import kill_and_wait

# Ray's notice that a new local cluster turned token authentication on (2.52+): the safe
# default, nothing to act on, and printed at every start. Ray has no setting to silence it but
# its module's logger, named after the private module.
AUTH_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


# Ray's setting that starts a worker process a CPU, idle, when the first driver connects. Tune
# gives every trial's actor a runtime_env, and Ray hands such an actor only an idle worker of
# the same runtime_env, never one of these (BENCHMARKS.md, "Start-up"): a sweep's idle workers only took CPU (two processes importing
# Ray beside the driver and the first trial's process, on a 2-core machine), which sweeps and
# tests running side by side share; a 1-trial run alone was as fast within noise. Private: a
# RAY_CONFIG entry of the raylet, read from the environment of the process that starts Ray.
NO_IDLE_WORKERS_AT_START = ("RAY_prestart_worker_first_driver", "0")


def trial_storage_path(context) -> tuple[str, Path]:
    """The trial's directory on the run's storage, and that storage's kind ("local", "s3", ...).
    `context`: ray.tune.get_context() in the trial (not imported here: only runner/sweep imports
    Ray Tune, tests/test_layers.py).

    Private: TuneContext.get_storage() (a DeveloperAPI "that may change without notice") and its
    StorageContext (ray.train._internal.storage): trial_fs_path, storage_filesystem. The public
    get_trial_dir() is a per-process staging directory (runner.sweep.trial.trial_storage_dir
    says why that loses files), and the directory's name cannot be made again in the trial:
    Tune names it once, from the trial's first config, which PBT later changes.
    """
    storage = context.get_storage()  # the session's, replaced by Ray at every reset: this trial's
    return storage.storage_filesystem.type_name, Path(storage.trial_fs_path)



def shutdown_at_once(ray) -> None:
    """ray.shutdown() for a Ray this process started, once nothing runs on it: the driver
    disconnects (while Ray's processes still answer), then every process Ray started here, and
    every process they started (workers, agents), is killed at once and waited for.

    Ray's own shutdown ends its processes one kind at a time, raylet first, each given a second
    to leave: ~1.1 s at the end of every sweep, for processes that hold nothing of ours (a
    trial's files are complete before its last report; Tune has ended every trial by now). Told
    to stop all at once, they wait on one another instead (seconds each). A Ray this process
    joined (no node of its own) is only disconnected, as by ray.shutdown().

    Private: ray._private.worker._global_node (the node ray.init started here), its
    all_processes (process type -> [ProcessInfo(process=Popen)]) and destroy_external_storage().
    """
    import psutil

    worker = ray._private.worker
    node = worker._global_node
    if node is None:
        ray.shutdown()
        return
    started = [info.process for infos in node.all_processes.values() for info in infos]
    family = []
    for process in started:
        try:
            parent = psutil.Process(process.pid)
            family += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass
    if node.is_head():
        node.destroy_external_storage()  # spilled objects, as ray.shutdown() removes them
    worker._global_node = None  # ray.shutdown() now disconnects and leaves the processes to us
    try:
        ray.shutdown()
    finally:
        kill_and_wait(family)
        for process in started:
            process.wait(timeout=10)  # this process's own children: reaped here


def reread_authentication_settings() -> None:
    """Make a process that has imported Ray read RAY_AUTH_MODE and RAY_AUTH_TOKEN_PATH (or
    RAY_AUTH_TOKEN) again: Ray reads them once, into a cached config and a cached token, so a
    change to os.environ after `import ray` would otherwise go unseen and the cluster refuse
    the connection. Ray does the same when ray.init turns token authentication on itself.

    Private: ray._raylet.Config.initialize("") and
    ray._raylet.AuthenticationTokenLoader.instance().reset_cache(), as
    ray._private.authentication.authentication_token_setup calls them.
    """
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def wandb_logging_actor_class(callback_class) -> type:
    """The actor class a WandbLoggerCallback (ray.air.integrations.wandb) starts for each trial:
    its run() calls wandb.init, logs what the queue brings, then wandb.finish.

    Private: WandbLoggerCallback._logger_actor_cls (the class attribute subclasses set to their
    own actor; the class itself is _WandbLoggingActor). Subclassed because Tune kills the actor
    (ray.kill) as soon as run() returns, and wandb 0.31's finish() returns before its service
    has written the run's last records: a run's last epochs were lost. The subclass tears W&B
    down (wandb.teardown waits for the service) before run() returns.
    """
    return callback_class._logger_actor_cls


def use_wandb_logging_actor(callback_class, actor_class) -> None:
    """Make `callback_class` (a WandbLoggerCallback subclass) start `actor_class` for each trial."""
    callback_class._logger_actor_cls = actor_class


def stop_wandb_logging_actors(callback) -> None:
    """Send every trial's W&B logging actor its end. Tune sends it when a trial ends; a trial an
    interrupt stopped never ends for Tune (it is resumable), so its actor waits on, and Tune's
    on_experiment_end waits for it upload_timeout (30 minutes). An end sent twice is never read.

    Private: WandbLoggerCallback._trial_queues (trial -> its actor's queue) and
    _signal_logging_actor_stop(trial).
    """
    for trial in list(callback._trial_queues):
        callback._signal_logging_actor_stop(trial)


def keep_the_drivers_newer_trial_files(logger_class) -> None:
    """Make `logger_class` (a subclass of Tune's JsonLoggerCallback or CSVLoggerCallback) keep
    the driver's copy of a restarted trial's file (result.json, progress.csv) when that copy
    already holds everything the run's storage has.

    Tune's loggers write those files in the driver's staging directory, which Tune copies into
    the run directory every 10 s or more and after every num_to_keep checkpoints of a trial.
    When a trial restarts from its checkpoint (a retry after its process or host was lost),
    Ray 2.60's loggers copy the run directory's copy over the driver's, unconditionally: the
    results reported since Tune's last copy were lost, though their checkpoint was kept (the
    restarted trial went on from epoch 3 and its files had no epoch 2). Where the driver's copy
    is not the stored one and more (a `gensweep resume`: a new driver with no copy yet; a file
    changed in storage), Ray's copy goes ahead as before.

    Private: the loggers' _restore_from_remote(file_name, trial), called by their
    log_trial_start (JSON) and _setup_trial (CSV); the trial's storage context (trial.storage:
    trial_fs_path, storage_filesystem).
    """
    restore = logger_class._restore_from_remote

    def restore_unless_the_driver_has_more(self, file_name: str, trial) -> None:
        if not _driver_copy_holds_the_stored_one(trial, file_name):
            restore(self, file_name, trial)

    logger_class._restore_from_remote = restore_unless_the_driver_has_more


def _driver_copy_holds_the_stored_one(trial, file_name: str) -> bool:
    local = Path(trial.local_path, file_name)
    if not local.is_file():
        return False
    storage = trial.storage
    try:
        with storage.storage_filesystem.open_input_stream(f"{storage.trial_fs_path}/{file_name}") as stream:
            stored = stream.read()
    except FileNotFoundError:
        return True  # nothing stored yet: Ray would warn and keep the driver's copy too
    except OSError:
        return False  # let Ray's copy say what is wrong, as it would have
    return local.read_bytes().startswith(stored)


# The class names Ray's usage tag counts as built-in callbacks besides Tune's default loggers
# (ray.air._internal.usage._count_callbacks): Ray compares names, never classes.
INTEGRATION_CALLBACK_NAMES = ("WandbLoggerCallback", "MLflowLoggerCallback", "CometLoggerCallback", "AimLoggerCallback")


def count_callbacks_without_importing_integrations(callback_class, logger_callback_class, default_callback_classes) -> None:
    """Make Ray's usage tag of a sweep's callbacks count them as before, by class name, without
    importing MLflow, W&B, Comet and Aim. The caller hands in Tune's Callback, LoggerCallback and
    DEFAULT_CALLBACK_CLASSES (ray.tune is the sweep's to import: tests/test_layers.py).

    Tune's run() tags the callbacks it is given on every sweep, usage stats on or off, and
    Ray 2.60's count imports each integration's module to read its class's name: with MLflow
    and W&B installed, 1.2-1.4 s of the driver's start-up before the first trial is asked for
    (BENCHMARKS.md, "Start-up"), for packages the sweep may never use.

    Private: ray.air._internal.usage._count_callbacks(callbacks), called by its tag_callbacks.
    """
    from ray.air._internal import usage

    built_in = set(INTEGRATION_CALLBACK_NAMES) | {default.__name__ for default in default_callback_classes}

    def count_callbacks(callbacks) -> dict[str, int]:
        counts: dict[str, int] = {}
        for callback in callbacks or []:
            if not isinstance(callback, callback_class):
                continue  # Ray counts only Tune's callbacks (others fail later)
            name = type(callback).__name__
            if name not in built_in:
                name = "CustomLoggerCallback" if isinstance(callback, logger_callback_class) else "CustomCallback"
            counts[name] = counts.get(name, 0) + 1
        return counts

    usage._count_callbacks = count_callbacks
