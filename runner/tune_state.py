"""A run directory's saved Ray Tune and Optuna state, made to follow the directory when it is
moved or copied (`cp -r runs/x y; gensweep resume y`).

Tune pickles its search state with absolute paths in it:
- the Optuna storage, `sqlite:///<run>/optuna.db`, in tuner.pkl and searcher-state-*.pkl
  (unpickling an RDBStorage connects to its database at once);
- the experiment's storage path, in search_gen_state-*.json: Tune makes the trials it has not
  made yet from it. Tuner.restore re-points the trials it had made, not those.
Resumed as they were, a copy wrote its Optuna results and its new trials into the original.

This is the one module that knows those file layouts (Ray 2.60, Optuna 5);
tests/test_run_dirs.py resumes a copy and fails if they change.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import optuna

from runner.files import write_bytes

OPTUNA_FILE = "optuna.db"
SEARCH_GENERATOR_STATE = "search_gen_state-*.json"  # Ray Tune's SearchGenerator.CKPT_FILE_TMPL

_restoring_into: Path | None = None  # the run directory whose state is being unpickled, if any


def optuna_url(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / OPTUNA_FILE}"


class RunDirStorage(optuna.storages.RDBStorage):
    """Optuna's SQLite storage in a run directory's optuna.db: the same as RDBStorage, but
    unpickled while Tune restores a run directory it opens that directory's optuna.db, wherever
    the directory was when it was pickled."""

    def __init__(self, run_dir: Path):
        super().__init__(optuna_url(run_dir))

    def __setstate__(self, state: dict) -> None:
        if _restoring_into is not None:
            state = {**state, "url": optuna_url(_restoring_into)}
        super().__setstate__(state)


@contextlib.contextmanager
def restoring(run_dir: Path) -> Iterator[None]:
    """Around Tuner.restore(run_dir) and the fit that follows (Tune unpickles the searcher in
    both): the state in run_dir reads and writes run_dir's own files, not those of the
    directory it was copied from."""
    global _restoring_into
    _repoint_search_generator(run_dir)
    _restoring_into = run_dir
    try:
        yield
    finally:
        _restoring_into = None


def _repoint_search_generator(run_dir: Path) -> None:
    """The experiment in Tune's saved SearchGenerator state, pointed at run_dir: the trials
    Tune makes after a resume go into it. Rewritten only when the directory moved."""
    import ray.cloudpickle as cloudpickle  # what Tune itself saves the state with

    for path in run_dir.glob(SEARCH_GENERATOR_STATE):
        # Our own run directory, as for Tuner.restore: a trusted pickle.
        state = cloudpickle.loads(path.read_bytes())
        experiment = state.get("experiment") if isinstance(state, dict) else None
        storage = getattr(experiment, "storage", None)
        if storage is None:
            continue
        here = (run_dir.parent.as_posix(), run_dir.name)
        if (storage.storage_fs_path, storage.experiment_dir_name) == here:
            continue
        # The same fields Tune's TuneController._restore_trials sets on the trials it restores;
        # changed in place, as the experiment's spec holds the same StorageContext.
        storage.storage_fs_path, storage.experiment_dir_name = here
        write_bytes(path, cloudpickle.dumps(state))
