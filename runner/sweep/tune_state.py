"""Ray Tune's saved experiment state in a run directory: kept whole through a full disk, and
made to follow the directory when it is moved or copied. The one module that knows those file
layouts (Ray 2.60, Optuna 5); tests/sweep_tests/test_full_disk.py and tests/sweep_tests/test_run_dirs.py fail if they change.

A last good copy, and repair. Tune 2.60 writes its state (experiment_state-<session>.json,
searcher-state-<session>.pkl, search_gen_state-<session>.json, basic-variant-state-<session>.json:
one of each a run or resume) in a local staging directory, then copies it over the run
directory's files with pyarrow, in place. When the disk fills during that copy, the only state
of the session is left truncated or empty, and Tuner.restore fails (a JSONDecodeError, an
EOFError, then OptunaSearch's "no search space"). So the set of state files, whenever all of
them read whole, is copied to BACKUP_DIR (written aside, then renamed in: the copy is never half
old, half new), and repair() puts that copy back in place of damaged files before Tuner.restore
reads them. Reading a file whole here never unpickles it: pickletools walks the opcodes.

Relocation (`cp -r runs/x y; gensweep resume y`). Tune pickles its search state with absolute
paths in it:
- the Optuna storage, `sqlite:///<run>/optuna.db`, in tuner.pkl and searcher-state-*.pkl
  (unpickling an RDBStorage connects to its database at once);
- the experiment's storage path, in search_gen_state-*.json: Tune makes the trials it has not
  made yet from it. Tuner.restore re-points the trials it had made, not those.
Resumed as they were, a copy wrote its Optuna results and its new trials into the original.
"""

from __future__ import annotations

import contextlib
import fnmatch
import itertools
import json
import os
import pickletools
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
from ray.tune import Callback
from sqlalchemy.exc import SQLAlchemyError

from runner.errors import GensweepError
from runner.files import write_bytes

BACKUP_DIR = ".gensweep-tune-state"  # in the run directory
DAMAGED_PREFIX = "damaged-"  # a damaged state file is renamed so; Tune's patterns no longer match it
# Tune's state files and how each is written: JSON text, or a (cloud)pickle whatever its suffix.
STATE_FILES = {
    "experiment_state-*.json": "json",
    "searcher-state-*.pkl": "pickle",
    "search_gen_state-*.json": "pickle",
    "basic-variant-state-*.json": "pickle",
}
BACKUP_INTERVAL = 2.0  # seconds between looks at the state files; Tune saves every ~10 s or per checkpoint


def reads_whole(path: Path, kind: str) -> bool:
    """The file is complete: JSON that parses, or a pickle stream that ends where it should."""
    return whole_content(path, kind) is not None


def whole_content(path: Path, kind: str) -> bytes | None:
    """The file's bytes when they are complete (read once: what was checked is what is kept)."""
    try:
        content = path.read_bytes()
        if kind == "json":
            json.loads(content)
        else:
            for _ in pickletools.genops(content):
                pass
    except (OSError, ValueError, EOFError):
        return None
    return content or None


def newest_state_files(run_dir: Path) -> dict[str, Path]:
    """The newest file of each kind (Tune reads the newest by name: names carry the session's time)."""
    names = sorted(entry.name for entry in os.scandir(run_dir) if entry.is_file())
    newest = {}
    for pattern in STATE_FILES:
        matching = fnmatch.filter(names, pattern)
        if matching:
            newest[pattern] = run_dir / matching[-1]
    return newest


def back_up(run_dir: Path) -> bool:
    """Copy the newest state files to BACKUP_DIR when every one of them reads whole."""
    newest = newest_state_files(run_dir)
    # Each file read once, checked and kept as read: Tune's syncing thread may rewrite it meanwhile.
    contents = {path.name: whole_content(path, STATE_FILES[pattern]) for pattern, path in newest.items()}
    if "experiment_state-*.json" not in newest or None in contents.values():
        return False
    backup, fresh, old = run_dir / BACKUP_DIR, run_dir / f"{BACKUP_DIR}.new", run_dir / f"{BACKUP_DIR}.old"
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        fresh.mkdir()
        for name, content in contents.items():
            write_bytes(fresh / name, content)
    except OSError:
        shutil.rmtree(fresh, ignore_errors=True)  # a full disk: the backup there stays as it was
        raise
    shutil.rmtree(old, ignore_errors=True)
    if backup.exists():
        backup.rename(old)
    fresh.rename(backup)
    shutil.rmtree(old, ignore_errors=True)
    return True


def repair(run_dir: Path) -> list[str]:
    """Before Tuner.restore: when a newest state file is damaged, rename it aside and put the
    last whole set back, all of it (so searcher and trials come from one moment). Returns the
    names of the damaged files (empty when all read whole)."""
    newest = newest_state_files(run_dir)
    damaged = [path for pattern, path in newest.items() if not reads_whole(path, STATE_FILES[pattern])]
    if not damaged:
        return []
    backup = next((d for d in (run_dir / BACKUP_DIR, run_dir / f"{BACKUP_DIR}.old") if d.is_dir()), None)
    saved = {path.name: path for path in backup.iterdir()} if backup is not None else {}
    for path in newest.values():
        if path in damaged or (saved and path.name not in saved):
            path.rename(path.with_name(DAMAGED_PREFIX + path.name))
    for name, path in saved.items():
        write_bytes(run_dir / name, path.read_bytes())
    return [path.name for path in damaged]


class StateBackup(Callback):
    """Tune callback: back_up() the run directory's state every BACKUP_INTERVAL seconds or so.

    Holds no path (Tune pickles its callbacks with the run, which may move): the run directory
    is the trials' experiment directory, asked of them each time.
    """

    def __init__(self):
        self.last_look = 0.0

    def on_step_end(self, iteration, trials, **info):
        now = time.monotonic()
        if not trials or now - self.last_look < BACKUP_INTERVAL:
            return
        self.last_look = now
        try:
            back_up(Path(trials[0].storage.experiment_fs_path))
        except OSError:
            pass  # a full disk: the copy taken before it filled is the one a resume needs

    def on_experiment_end(self, trials, **info):
        self.last_look = 0.0
        self.on_step_end(0, trials)


# ---- the Optuna study, brought level with Tune's state -------------------------------------

def _tune_configs(run_dir: Path) -> list[dict] | None:
    """The configs of every trial in Tune's newest experiment state, however it ended; None when
    there is no state that reads whole."""
    path = newest_state_files(run_dir).get("experiment_state-*.json")
    content = whole_content(path, "json") if path is not None else None
    if content is None:
        return None
    configs = []
    for entry in json.loads(content).get("trial_data", []):
        trial = json.loads(entry[0]) if isinstance(entry, list) else entry  # Tune 2.60: [trial json, runtime json]
        configs.append(trial.get("config") if isinstance(trial.get("config"), dict) else {})
    return configs


class StudyError(GensweepError):
    """The run directory's optuna.db cannot be read; one line naming it."""


ASKED_AGAIN = "gensweep_asked_again"  # user attribute of a trial enqueued here: its values, as JSON


def offer_again_what_tune_lost(run_dir: Path, study_name: str, names: list[str], grid: dict[str, list] | None) -> int:
    """Before Tuner.restore: bring the Optuna study level with Tune's restored state. Returns how
    many trials of the study Tune's state does not know.

    Optuna writes each trial to optuna.db as it is asked for; Tune saves its own state every ~10
    s. A state older than the study (the backup repair() put back, or a driver killed between
    the two) leaves trials RUNNING in the study that no Tune trial will ever finish: they are
    closed as failed. GridSampler counts such trials as run, and asked for more it hands out a
    point already run (a grid of 2/4/8 resumed as 4, 4, 8); so with `grid` (a grid sweep of one
    trial per point) the points no Tune trial holds are enqueued, and the trials Tune asks for
    next are exactly those.

    Tune's trials and Optuna's are matched by their values of the swept `names` (the config Tune
    holds is the params Optuna gave it), one for one: a trial Tune knows, however it ended, is
    left as it is. A trial whose ask was cut short (params missing) matches none.
    """
    if not (run_dir / OPTUNA_FILE).is_file():
        return 0  # PBT, or nothing swept: no study
    configs = _tune_configs(run_dir)
    if configs is None:
        return 0  # Tune's restore says what is wrong itself
    try:
        study = optuna.load_study(study_name=study_name, storage=optuna_url(run_dir))
    except KeyError:
        return 0  # the driver stopped before it asked Optuna for anything
    except SQLAlchemyError as error:  # not a database, or a damaged one: Tune's restore would fail on it too
        raise StudyError(f"{run_dir / OPTUNA_FILE}: Optuna's study does not read ({str(error).splitlines()[0]})") from None
    trial_state = optuna.trial.TrialState
    held_by_tune = [_values_of(config, names) for config in configs]
    unmatched, lost, asked_again = list(held_by_tune), [], set()
    for trial in study.get_trials(deepcopy=False):
        if trial.state == trial_state.WAITING:
            asked_again.add(trial.user_attrs.get(ASKED_AGAIN))  # enqueued by an earlier resume
        elif (values := _values_of(trial.params, names)) in unmatched:
            unmatched.remove(values)
        elif trial.state == trial_state.RUNNING:
            lost.append(trial)
    for trial in lost:
        study.tell(trial.number, state=trial_state.FAIL)
    for point in itertools.product(*grid.values()) if grid is not None else ():
        values = _values_of(dict(zip(grid, point, strict=True)), names)
        if values not in held_by_tune and values not in asked_again:
            study.enqueue_trial(dict(zip(grid, point, strict=True)), user_attrs={ASKED_AGAIN: values})
    return len(lost)


def _values_of(values: dict, names: list[str]) -> str:
    # As JSON, the form Tune saved its configs in (values of any kind compare as their text).
    return json.dumps([values.get(name) for name in names], default=str)


# ---- relocation ---------------------------------------------------------------------------

OPTUNA_FILE = "optuna.db"
SEARCH_GENERATOR_STATE = "search_gen_state-*.json"  # Ray Tune's SearchGenerator.CKPT_FILE_TMPL

_restoring_into: Path | None = None  # the run directory whose state is being unpickled, if any


def optuna_url(run_dir: Path) -> str:
    return f"sqlite:///{run_dir / OPTUNA_FILE}"


def _sqlite_file(url: str) -> Path:
    """The database file of an optuna_url (sqlite:///ABSOLUTE/PATH)."""
    return Path(url.removeprefix("sqlite:///"))


class RunDirStorage(optuna.storages.RDBStorage):
    """Optuna's SQLite storage in a run directory's optuna.db: the same as RDBStorage, but
    unpickled while Tune restores a run directory it opens that directory's optuna.db, wherever
    the directory was when it was pickled."""

    def __init__(self, run_dir: Path):
        super().__init__(optuna_url(run_dir))

    def __setstate__(self, state: dict) -> None:
        if _restoring_into is not None:
            state = {**state, "url": optuna_url(_restoring_into)}
        elif not _sqlite_file(state.get("url", "")).is_file():
            # Unpickled outside a resume (a user's Tuner.restore(run_dir, ...).get_results(), to
            # read the results) from a directory moved since it was saved: Optuna would connect
            # at once to the old path and fail ("unable to open database file"), or make an empty
            # optuna.db there. Reading results never uses the study: left unconnected.
            self.__dict__.update(state)
            return
        super().__setstate__(state)

    def __getattr__(self, name: str):
        # Only for attributes not set: those an unconnected storage (above) lacks.
        if name in ("engine", "scoped_session", "_version_manager"):
            raise StudyError(f"{self.__dict__.get('url')}: not there (the run directory moved since Ray Tune "
                             "saved it); continue a moved sweep with: gensweep resume RUN_DIR")
        raise AttributeError(name)


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
    from ray import cloudpickle  # what Tune itself saves the state with

    # Only the newest, which is the one Tune reads (an older session's may be damaged: unread).
    path = newest_state_files(run_dir).get(SEARCH_GENERATOR_STATE)
    if path is None or not reads_whole(path, STATE_FILES[SEARCH_GENERATOR_STATE]):
        return  # none, or damaged beyond repair(): Tune's restore says so itself
    # Our own run directory, as for Tuner.restore: a trusted pickle.
    state = cloudpickle.loads(path.read_bytes())
    experiment = state.get("experiment") if isinstance(state, dict) else None
    storage = getattr(experiment, "storage", None)
    here = (run_dir.parent.as_posix(), run_dir.name)
    if storage is None or (storage.storage_fs_path, storage.experiment_dir_name) == here:
        return
    # The same fields Tune's TuneController._restore_trials sets on the trials it restores;
    # changed in place, as the experiment's spec holds the same StorageContext.
    storage.storage_fs_path, storage.experiment_dir_name = here
    write_bytes(path, cloudpickle.dumps(state))
