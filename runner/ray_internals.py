"""Ray's private names, the only place this project uses them.

Each is here because Ray 2.60 has no public API that does the same job; each has a test in
tests/test_internals.py that checks it against the installed Ray, so an upgrade that moves or
renames one fails that test by name rather than a sweep at run time.

Imports no Ray itself (the callers hand Ray's objects in): runner.cluster imports this module,
and the light commands must stay light (tests/test_layers.py).
"""

from __future__ import annotations

from pathlib import Path

# Ray's notice that a new local cluster turned token authentication on (2.52+): the safe
# default, nothing to act on, and printed at every start. Ray has no setting to silence it but
# its module's logger, named after the private module.
AUTH_TOKEN_NOTICE_LOGGER = "ray._private.authentication.authentication_token_setup"


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
