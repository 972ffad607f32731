"""A sweep: the spec's search space run as Ray Tune trials, with Optuna choosing the values.

The only module that builds Tuners, samplers and schedulers. Ray is started here with the
machine's cores (or joined with --address) and shut down here when it was started here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from models.config import as_dict
from runner import ray_internals
from runner.cluster import end_ray_started_here, require_shared, start_or_join
from runner.errors import GensweepError, one_line
from runner.files import DiskFullError, is_disk_full, mount_point, read_json, write_bytes, write_json
from runner.results.report import (
    COMPARISON_FILE,
    COMPARISON_RUN,
    RECORD_FILE,
    SWEEP_FILE,
    TrialSummary,
    collect,
    comparison_image,
    read_sweep,
)
from runner.spec import SearchDim, Spec
from runner.timeline import mark

# Tune's own CSV/JSON files stay (they are the standard format); its TensorBoard logger goes:
# every trial writes its own, richer event files, and two writers in one run clutter the tab.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Snapshotting the experiment every epoch is what gives resumability; its warning is noise.
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

CHECKPOINTS_KEPT = 2


_USER_PENDING_TRIALS = os.environ.get("TUNE_MAX_PENDING_TRIALS_PG")


def _allow_pending_trials(spec: Spec) -> None:
    # With a search algorithm Tune keeps one trial pending at a time, so each trial waits for
    # the previous one's process to start: set the bound to the trials that fit in the cluster
    # at once (set anew for every sweep: one process may run several, on different clusters).

    # A pack's members are trials too: K of them per slot.
    trials_at_once = _slots(spec) * spec.tune.pack
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = _USER_PENDING_TRIALS or str(trials_at_once)


def _slots(spec: Spec) -> int:
    """How many trials (or packs) the cluster's CPUs and GPUs can train at once."""
    import ray

    resources = ray.cluster_resources()
    slots = resources.get("CPU", 1) / spec.resources.cpu if spec.resources.cpu else 1
    if spec.resources.gpu and resources.get("GPU"):
        slots = min(slots, resources["GPU"] / spec.resources.gpu)
    return max(1, int(slots))


class SweepError(GensweepError):
    """The sweep cannot start (no Ray cluster at an address, for example); one-line message."""


@dataclass
class SweepOutcome:
    run_dir: Path
    trials: list[TrialSummary]
    seconds: float
    stopped_by: int | None = None  # the signal (SIGINT, SIGTERM) that interrupted the sweep

    @property
    def finished(self) -> int:
        return sum(t.status == "finished" for t in self.trials)


CLAIM_FILE = ".gensweep-claim"  # in a run directory from its claim until its sweep.json is written
LOCK_FILE = ".gensweep-lock"  # held (flock) by the one run or resume working in a run directory


@dataclass
class RunDirClaim:
    """A run directory claimed for one sweep, and the directories the claim made to hold it."""

    path: Path
    made: list[Path]  # deepest first: the run directory, then --storage-path and its parents made for it

    def release(self) -> None:
        """Give the directory back when the sweep did not start: its claim goes, and each
        directory the claim made that is still empty, so no empty run is left to look like one
        (a sweep that started keeps everything it wrote)."""
        (self.path / CLAIM_FILE).unlink(missing_ok=True)
        (self.path / LOCK_FILE).unlink(missing_ok=True)  # run_sweep has let go of it by now
        for directory in self.made:
            try:
                directory.rmdir()  # only when empty
            except OSError:
                return


def claim_run_dir(storage_path: Path, name: str) -> RunDirClaim:
    """storage_path/name, or name-2, name-3, ... when an earlier run is there: never overwrite.

    The directory is claimed as it is chosen, so two `gensweep run` started at the same moment
    get one each: the claim file is created exclusively (O_EXCL), and a directory holding
    anything (a run, or another claim) is passed over. An empty directory is used.
    """
    missing = [directory for directory in [storage_path, *storage_path.parents] if not directory.exists()]
    number = 1
    while True:
        candidate = storage_path / (name if number == 1 else f"{name}-{number}")
        try:
            made = _claim(storage_path, candidate)
        except OSError as error:  # a file in the way, a read-only or full filesystem
            raise SweepError(f"--storage-path {storage_path}: cannot make a run directory there "
                             f"({error.strerror or error})") from None
        if made is not None:
            return RunDirClaim(candidate, [candidate] * made + missing)
        number += 1


def _claim(storage_path: Path, candidate: Path) -> bool | None:
    """Claimed: whether the candidate was made here (True) or was there, empty (False). None:
    taken."""
    storage_path.mkdir(parents=True, exist_ok=True)
    try:
        candidate.mkdir()
        made = True
    except FileExistsError:
        if not candidate.is_dir() or any(candidate.iterdir()):
            return None  # an earlier run, another run's claim, or a file of that name
        made = False
    try:
        (candidate / CLAIM_FILE).open("x").close()  # exclusive: of runs that saw it empty, one wins
    except FileExistsError:
        return None
    return made


@contextlib.contextmanager
def holding_run_dir(run_dir: Path):
    """The run directory for this process alone while it runs or resumes the sweep: a second
    `gensweep resume` (or one started while `gensweep run` still works there) would drive one
    Tune experiment and one Optuna study from two places. An flock, so a killed process lets go."""
    import fcntl

    with open(run_dir / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(f"{run_dir}: another gensweep run or resume is working in it; "
                             "wait for it to end (or stop it) first") from None
        yield


def run_sweep(
    spec: Spec, run_dir: Path, address: str | None = None, verbose: int = 0, keep_checkpoints: int = CHECKPOINTS_KEPT
) -> SweepOutcome:
    """verbose 0: one gensweep progress line; 1 and 2: Ray Tune's own output instead."""
    with holding_run_dir(run_dir):
        return _run_sweep(spec, run_dir, address, verbose, keep_checkpoints)


def _run_sweep(spec: Spec, run_dir: Path, address: str | None, verbose: int, keep_checkpoints: int) -> SweepOutcome:
    from ray import tune

    from runner.sweep.progress import ProgressLine  # imports Ray Tune: only when a sweep really runs
    from runner.sweep.records import CompletedRecords
    from runner.sweep.result_files import CsvResults, JsonResults
    from runner.sweep.trackers import tracker_callbacks
    from runner.sweep.tune_state import StateBackup

    started = time.time()
    started_ray = _start_on_shared_storage(spec, run_dir, address, quiet=verbose == 0)
    mark("ray ready")
    # run_name: the name the run was made under; a packed run's hub keeps it when the run
    # directory is moved or copied (Tune's saved callbacks carry it).
    write_json(
        run_dir / SWEEP_FILE,
        {"name": spec.name, "run_name": run_dir.name, "source": spec.source, "metrics": spec.metrics,
         "modes": spec.modes, "document": spec.document, "started": time.strftime("%Y-%m-%dT%H:%M:%S")},
    )
    (run_dir / CLAIM_FILE).unlink(missing_ok=True)  # sweep.json now marks the directory as taken
    search_space = {path: _domain(dim) for path, dim in spec.search.items()}
    hub_name = _start_packing(spec, run_dir.name)
    tuner = tune.Tuner(
        _trainable(spec, hub_name),
        param_space=search_space,
        tune_config=tune.TuneConfig(
            # One objective: Tune's own, shared by searcher and scheduler. Several: Optuna's alone.
            metric=spec.metrics[0] if len(spec.metrics) == 1 else None,
            mode=spec.modes[0] if len(spec.modes) == 1 else None,
            search_alg=_search_algorithm(spec, run_dir),
            scheduler=_scheduler(spec, search_space),
            num_samples=spec.num_samples,
            max_concurrent_trials=_max_concurrent(spec),
            trial_dirname_creator=trial_dirname,
            # A trial process starts in ~5 s (torch's imports): keep it for the next trial, under
            # every scheduler. Each trial writes into its own directory in the run directory
            # (runner.sweep.trial.trial_storage_dir), never Ray's per-process staging directory.
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=run_dir.name,
            storage_path=str(run_dir.parent),
            callbacks=[JsonResults(), CsvResults()] + (
                [ProgressLine(spec.num_samples, spec.train.epochs, spec.metrics, spec.modes)] if verbose == 0 else []
            ) + _packing_callbacks(hub_name) + [StateBackup(), CompletedRecords()] + tracker_callbacks(spec.tune.loggers),
            # A failed trial restarts from its last checkpoint, up to max_failures times.
            failure_config=tune.FailureConfig(max_failures=spec.tune.max_failures),
            # PBT's weaker trials restore a stronger one's recent checkpoint: keep a few more.
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=max(keep_checkpoints, 4 if spec.tune.scheduler == "pbt" else 1)
            ),
            verbose=verbose,
        ),
    )
    try:
        return _fit(tuner, run_dir, started, started_ray, verbose)
    finally:
        _HUBS.pop(hub_name, None)  # the hub (and any pack still training) ends with the sweep


def resume_sweep(run_dir: Path, address: str | None = None) -> tuple[Spec, SweepOutcome]:
    """Continue an interrupted sweep: unfinished and failed trials go on from their checkpoints,
    finished ones stay as they are, and the search algorithm's state carries on."""
    from ray import tune

    from runner.spec import parse_document
    from runner.sweep import trackers
    from runner.sweep.tune_state import offer_again_what_tune_lost, restoring

    sweep, problem = read_sweep(run_dir)
    if not sweep.get("document"):
        if not (run_dir / SWEEP_FILE).exists():
            raise SweepError(f"{run_dir}: not a gensweep run directory (no {SWEEP_FILE})")
        raise SweepError(problem or f"{run_dir / SWEEP_FILE}: no spec in it (no document): cannot resume")
    with holding_run_dir(run_dir):  # before the repair: it renames files a live run writes
        _repair_state(run_dir)
        spec = parse_document(sweep["document"], sweep.get("source", str(run_dir / SWEEP_FILE)))
        trackers.prepare(spec.tune.loggers, run_dir)  # Tune's saved callbacks log on: their packages, their stores
        # a grid sweep of one trial per point: the points its restored state lost are asked again
        grid = _grid(spec) if spec.sampler == "grid" and spec.num_samples == spec.grid_size else None
        lost = offer_again_what_tune_lost(run_dir, spec.name, list(spec.search), grid)
        if lost:
            print(f"gensweep: {lost} trial(s) Optuna handed out were not in Ray Tune's saved state: they run now")
        started = time.time()
        started_ray = _start_on_shared_storage(spec, run_dir, address, quiet=True)
        try:
            if not tune.Tuner.can_restore(str(run_dir)):
                raise SweepError(f"{run_dir}: Ray Tune saved no state here to resume from")
            # Restoring unpickles the searcher's state: our own run directory, so a trusted path.
            # The callbacks come back from Tune's saved state, PackDepartures with the hub's name:
            # the name the run was made under, so the new hub answers to it in a moved directory.
            hub_name = _start_packing(spec, str(sweep.get("run_name") or run_dir.name))
            try:
                # Tune's saved state names the directory the run was made in: read and write this one.
                with restoring(run_dir):
                    tuner = tune.Tuner.restore(str(run_dir), _trainable(spec, hub_name), resume_unfinished=True,
                                               resume_errored=True)
                    return spec, _fit(tuner, run_dir, started, started_ray)
            finally:
                _HUBS.pop(hub_name, None)
        except BaseException:
            if started_ray:  # failed before _fit, which shuts down itself (a second shutdown does nothing)
                import ray

                ray.shutdown()
            raise


def _repair_state(run_dir: Path) -> None:
    """Files a full disk left damaged: Tune's state (back to its last whole copy) and the
    temporaries of writes it cut short."""
    from runner.sweep.tune_state import repair

    if not (run_dir / SWEEP_FILE).is_file():
        return  # not a run directory (resume_sweep says so): touch nothing in it
    for temporary in run_dir.glob("**/.*.tmp"):
        if re.fullmatch(r"\..+\.\d+\.tmp", temporary.name):
            temporary.unlink(missing_ok=True)  # write_bytes' own (.NAME.PID.tmp), cut short mid-write
    damaged = repair(run_dir)
    if damaged:
        print(f"gensweep: {', '.join(damaged)} damaged (a full disk?): resuming from Ray Tune's last whole state")


_USER_OUTPUT_CHOICE = os.environ.get("RAY_AIR_NEW_OUTPUT")


def _choose_output(verbose: int) -> None:
    # Tune's newer output engine prints its configuration box and result path even when told
    # to be silent; the older one, at verbose 0, prints nothing, leaving the line to gensweep.
    os.environ["RAY_AIR_NEW_OUTPUT"] = _USER_OUTPUT_CHOICE or ("0" if verbose == 0 else "1")


def _restore_output_choice() -> None:
    # Processes started later from this one (a test's `gensweep run -v`) must not inherit it.
    if _USER_OUTPUT_CHOICE is None:
        os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    else:
        os.environ["RAY_AIR_NEW_OUTPUT"] = _USER_OUTPUT_CHOICE


def _start_on_shared_storage(spec: Spec, run_dir: Path, address: str | None, quiet: bool) -> bool:
    """Start or join Ray; on several nodes, every node must see the results and data directories."""
    import ray

    started_ray = start_or_join(address, quiet)
    # Every directory the data section names (path, input_path, a_path, ...), as the spec
    # resolves them to absolute paths.
    paths = {"--storage-path": run_dir.parent} | {
        f"data.{key}": Path(value) for key, value in as_dict(spec.data).items()
        if (key == "path" or key.endswith("_path")) and value
    }
    try:
        require_shared(paths)
        if spec.resources.gpu > 0 and not ray.cluster_resources().get("GPU"):
            if started_ray:  # nothing will ever add a GPU to Ray started here: say so, do not wait
                raise SweepError(f"resources.gpu: {spec.resources.gpu} per trial, but this machine has no GPU for Ray")
            print(f"gensweep: resources.gpu: {spec.resources.gpu}: no GPU in the cluster yet; trials wait for the autoscaler to add one")
    except GensweepError:
        if started_ray:
            ray.shutdown()
        raise
    _allow_pending_trials(spec)
    return started_ray


def _trainable(spec: Spec, hub_name: str | None):
    from ray import tune

    grid = {path: list(dim.values) for path, dim in spec.search.items() if dim.kind == "grid"}
    if hub_name is None:
        from runner.sweep.trainable import run_trial  # torch: imported in the trial's process only

        trainable = tune.with_parameters(run_trial, document=spec.document, source=spec.source, grid=grid)
        return tune.with_resources(trainable, {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu})
    from runner.sweep.pack_trial import run_packed_trial

    trainable = tune.with_parameters(
        run_packed_trial, document=spec.document, source=spec.source, grid=grid, hub_name=hub_name
    )
    # A member only relays its pack's epochs; the pack's trainer holds the GPU and the rest of
    # the CPUs (Tune refuses trials of no resources at all).
    return tune.with_resources(trainable, {"cpu": MEMBER_CPU})


def _max_concurrent(spec: Spec) -> int | None:
    if spec.tune.pack == 1:
        return spec.tune.max_concurrent or None
    # Members hold a sliver of CPU each, so Tune alone would start them without bound; and a
    # pack's trainer holds the rest of its CPUs, which only fits while no more members are alive
    # than the packs that fit can take. More would leave no room for any trainer.
    members = _slots(spec) * spec.tune.pack
    if spec.tune.max_concurrent > members:
        print(f"gensweep: tune.max_concurrent: {spec.tune.max_concurrent} is more members than "
              f"{members // spec.tune.pack} packs of {spec.tune.pack} can train at once: {members} at a time")
    return min(spec.tune.max_concurrent or members, members)


def _start_packing(spec: Spec, run_name: str) -> str | None:
    """A packed sweep's hub (runner/sweep/pack_trial.py), named for this run; None when not packed."""
    if spec.tune.pack == 1:
        return None
    from runner.sweep.pack_trial import start_hub

    hub_name = f"gensweep-packs:{run_name}"
    _HUBS[hub_name] = start_hub(spec, hub_name, MEMBER_CPU)  # held here: the hub lives while the sweep does
    return hub_name


def _packing_callbacks(hub_name: str | None) -> list:
    if hub_name is None:
        return []
    from runner.sweep.pack_trial import PackDepartures

    return [PackDepartures(hub_name)]


_HUBS: dict = {}
MEMBER_CPU = 0.01  # what a pack's member holds of the pack's CPUs (runner/sweep/pack_trial.py)


def _fit(tuner, run_dir: Path, started: float, started_ray: bool, verbose: int = 0) -> SweepOutcome:
    from runner.sweep.disk_full import DiskFullWatch
    from runner.sweep.interrupts import StopSignals

    # Optuna's GridSampler calls Study.stop once the grid is exhausted; Ray warns that this is
    # unusual, on every sweep. It is expected here.
    logging.getLogger("ray.tune.search.optuna.optuna_search").setLevel(logging.ERROR)
    # A trial an interrupt stopped before its first report has no metrics; Ray warns about each.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    from ray.tune import Callback
    from ray.tune.logger import LoggerCallback
    from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES

    # Ray's usage tag of the callbacks imported MLflow and W&B (1.2-1.4 s) to read two names
    ray_internals.count_callbacks_without_importing_integrations(Callback, LoggerCallback, DEFAULT_CALLBACK_CLASSES)
    _choose_output(verbose)
    errors, completed = {}, set()
    quiet = _quiet_trial_errors() if verbose == 0 else contextlib.nullcontext()
    # Held until the records are final: a signal in between still ends in an orderly stop.
    with StopSignals() as signals, DiskFullWatch() as disk:
        try:
            mark("tune starting")
            with quiet:
                results = tuner.fit()
            mark("tune finished")
            # one_line: Tune's error is the worker's RayTaskError, a page of traceback in colour.
            errors = {Path(r.path).name: one_line(r.error) for r in results if r.error is not None}
            # "done": Tune completed the trial, whether at its last epoch or stopped early by ASHA.
            completed = {Path(r.path).name for r in results if r.error is None and r.metrics and r.metrics.get("done")}
        except KeyboardInterrupt:
            pass  # a second signal, or one before Tune's loop ran: every unfinished trial is interrupted
        except Exception as error:
            # On a full disk Tune leaves empty files it then fails to read back (error.pkl: EOFError).
            if not (disk.seen or is_disk_full(error)):
                raise
        finally:
            signals.settle()
            if started_ray:
                end_ray_started_here()
                mark("ray shut down")
            _restore_output_choice()
        disk_full = disk.seen or any(is_disk_full(message) for message in errors.values())
        try:
            trials = finish_records(run_dir, {} if disk_full else errors, completed)
            if not disk_full:
                for notice in _notices_since(run_dir, started):
                    print(f"gensweep: {notice}")
            write_comparison(run_dir, trials)
        except OSError as error:
            if not is_disk_full(error):
                raise
            disk_full = True
    if disk_full:
        raise DiskFullError(
            f"{run_dir}: the disk is full (no space left on {mount_point(run_dir)}); finished trials and "
            f"their checkpoints are kept: free some space, then: gensweep resume {run_dir}"
        )
    mark("records written")
    return SweepOutcome(run_dir, trials, time.time() - started, stopped_by=signals.received)


@contextlib.contextmanager
def _quiet_trial_errors():
    """At verbose 0, no pages of Tune's tracebacks: each failed trial's one-line reason is in
    its record and in the summary table. Tune logs each failure with its traceback (unless
    TUNE_PRINT_ALL_TRIAL_ERRORS=0, read when fit starts) and lists the failed trials at the end."""
    user_choice = os.environ.get("TUNE_PRINT_ALL_TRIAL_ERRORS")
    os.environ["TUNE_PRINT_ALL_TRIAL_ERRORS"] = user_choice or "0"
    tune_logger = logging.getLogger("ray.tune.tune")
    tune_logger.addFilter(_not_the_list_of_failed_trials)
    try:
        yield
    finally:
        tune_logger.removeFilter(_not_the_list_of_failed_trials)
        if user_choice is None:
            os.environ.pop("TUNE_PRINT_ALL_TRIAL_ERRORS", None)


def _not_the_list_of_failed_trials(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("Trials did not complete")


def _notices_since(run_dir: Path, started: float) -> list[str]:
    """The one-line notices trials left in their records during this sweep (a damaged checkpoint
    passed over): at verbose 0 a trial's own output does not reach this terminal."""
    notices = []
    for path in sorted(run_dir.glob(f"*/{RECORD_FILE}")):
        record = read_json(path)
        if isinstance(record, dict) and record.get("notice") and (record.get("updated") or 0) >= started:
            notices.append(f"trial {path.parent.name}: {record['notice']}")
    return notices


def finish_records(run_dir: Path, errors: dict[str, str], completed: set[str] = frozenset()) -> list[TrialSummary]:
    """Once Tune has returned, no trial is running: say what became of the ones still marked so.

    A trial Tune saw fail without its own record saying so (its process was killed) is an
    error with Tune's reason; one Tune completed at its last epoch finished (a scheduler's max_t
    ends a trial at its last report, before the trial could say so itself), and before it was
    stopped early by the scheduler; any other was interrupted (Ctrl-C).
    """
    from runner.sweep.records import completed_status  # imports Ray Tune: only once a sweep ran

    for path in run_dir.glob(f"*/{RECORD_FILE}"):
        record = read_json(path)
        # interrupted too: a record an interrupt left so, of a trial Tune had in fact completed
        # (a second Ctrl-C, a full disk), is put right by the resume that finds it so.
        if not isinstance(record, dict) or record.get("status") not in ("running", "interrupted", None):
            continue
        message = errors.get(path.parent.name)
        if message:
            record.update(status="error", error=message)
        elif path.parent.name in completed:
            record.update(status=completed_status(record))
        elif record.get("status") == "interrupted":
            continue
        else:
            record.update(status="interrupted")
        write_json(path, record)
    return collect(run_dir)


def write_comparison(run_dir: Path, trials: list[TrialSummary]) -> Path | None:
    """The sweep-level picture: trials' samples side by side (the best SHOWN_TRIALS of a larger
    sweep, said on the picture), as PNG and in TensorBoard."""
    from runner.results.report import SAMPLES_FILE
    from runner.train.tb_image_run import write_image_event

    sweep = read_json(run_dir / SWEEP_FILE)
    sweep = sweep if isinstance(sweep, dict) else {}
    objectives, modes = sweep.get("metrics"), sweep.get("modes")  # a damaged sweep.json: no ranking, say so
    if not (isinstance(objectives, list) and isinstance(modes, list) and all(isinstance(m, str) for m in objectives)):
        objectives, modes = [], []
    # A trial interrupted before its first epoch has no samples yet (OpenCV would warn about each).
    with_samples = [t for t in trials if (Path(t.logdir) / SAMPLES_FILE).is_file()]
    image = comparison_image(with_samples, SAMPLES_FILE, objectives=objectives, modes=modes)
    if image is None:
        return None
    import cv2

    path = run_dir / COMPARISON_FILE
    # Encoded, then written whole: cv2.imwrite on a full disk returns False and leaves a stub.
    encoded, png = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not encoded:
        raise OSError(f"OpenCV could not encode the {image.shape} comparison image as PNG")
    write_bytes(path, png.tobytes())
    write_image_event(run_dir / COMPARISON_RUN, "comparison/samples", png.tobytes(), *image.shape)
    return path


TRIAL_NAME_VALUES = 100  # characters of swept values in a trial's directory name; its id follows


def trial_dirname(trial) -> str:
    """latent_dim=2_ab12cd34: readable run names in TensorBoard, unique by Tune's trial id.

    Swept values may be any strings ('../x', '/etc'): every character outside a safe set
    becomes '-', so the name is one path component inside the run directory, and the values
    are cut short before the id, never the id.
    """
    parts = [f"{path.split('.')[-1]}={_short(value)}" for path, value in sorted(trial.config.items())]
    values = re.sub(r"[^A-Za-z0-9_.=+-]", "-", "_".join(parts))[:TRIAL_NAME_VALUES]
    return f"{values}_{trial.trial_id}" if values else str(trial.trial_id)


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _domain(dim: SearchDim):
    from ray import tune

    if dim.kind in ("grid", "choice"):
        return tune.choice(list(dim.values))
    if dim.kind == "uniform":
        return tune.uniform(dim.low, dim.high)
    if dim.kind == "loguniform":
        return tune.loguniform(dim.low, dim.high)
    return tune.randint(int(dim.low), int(dim.high) + 1)  # randint excludes high; ours includes it


def _grid(spec: Spec) -> dict[str, list]:
    return {path: list(dim.values) for path, dim in spec.search.items()}


def _search_algorithm(spec: Spec, run_dir: Path):
    if not spec.search or spec.sampler == "pbt":
        return None  # nothing to choose, or PBT's own sampling (it refuses a search algorithm)
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from runner.sweep.tune_state import RunDirStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seed = spec.tune.seed
    samplers = {
        "grid": lambda: optuna.samplers.GridSampler(_grid(spec), seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }
    # The study lives beside the results, in Optuna's own SQLite storage: optuna-dashboard and
    # Optuna's analysis read it, and a resumed sweep goes on writing to it (the run directory's
    # own, when it was moved or copied: runner/sweep/tune_state.py).
    storage = RunDirStorage(run_dir)
    study = {"sampler": samplers[spec.sampler](), "storage": storage, "study_name": spec.name}
    if len(spec.metrics) > 1:
        return OptunaSearch(metric=spec.metrics, mode=spec.modes, **study)
    return OptunaSearch(**study)


def _scheduler(spec: Spec, search_space: dict):
    if spec.tune.scheduler == "none":
        return None
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if spec.tune.scheduler == "pbt":
        # Every perturbation_interval epochs the bottom quarter of the population copies a top
        # trial's checkpoint and perturbs its values; trials checkpoint every epoch already.
        return PopulationBasedTraining(
            time_attr="training_iteration",
            perturbation_interval=spec.tune.perturbation_interval,
            hyperparam_mutations=search_space,
        )

    return ASHAScheduler(
        # Epochs, not Tune's count of reports: a trial that went back to an older checkpoint (its
        # newest did not load) reports some epochs twice, and must still reach its last.
        time_attr="epoch",
        max_t=spec.train.epochs,
        grace_period=spec.tune.grace_period,
        reduction_factor=spec.tune.reduction_factor,
    )
