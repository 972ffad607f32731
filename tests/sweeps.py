"""Driving a real `gensweep run` from a test: started in the background with its output in a
file, waited on by condition (never by a sleep that hopes), and never left running; and killing
one of its trial processes from outside, with a real SIGKILL, at a chosen epoch."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from runner.results.report import COMPARISON_RUN, RECORD_FILE, STATE_FILE

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
LOG_FILE = "run.log"


def start_run(cwd: Path, *arguments: str, environment: dict[str, str] | None = None) -> subprocess.Popen:
    """`gensweep run ARGUMENTS` in cwd (environment: variables set on top of this one's). Its
    output goes to cwd/run.log, not a pipe nobody reads while the test waits: a full pipe would
    block the driver at its next line, and the sweep."""
    with open(cwd / LOG_FILE, "w") as log:
        return subprocess.Popen([GENSWEEP, "run", *arguments], cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(environment or {})})


def wait_for(
    condition: Callable[[], Any], what: str, process: subprocess.Popen, seconds: float = 600, every: float = 0.05
) -> Any:
    """Poll until `condition()` is true (its value) while the run goes on; fail when it ended or
    after `seconds` (Ray's start and the data's first drawing included)."""
    deadline = time.time() + seconds
    while not (value := condition()):
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before {what}"
        assert time.time() < deadline, f"gave up after {seconds:.0f} s waiting for {what}"
        time.sleep(every)
    return value


def output_at_exit(process: subprocess.Popen, cwd: Path, seconds: float = 300) -> str:
    process.wait(timeout=seconds)
    return (cwd / LOG_FILE).read_text()


def end_if_running(process: subprocess.Popen) -> None:
    """A failed test must not leave its sweep training on the machine's cores."""
    if process.poll() is None:
        process.kill()
        process.wait(timeout=60)


def run_killing_one_trial(
    cwd: Path, spec_file: str, run_name: str, *, epoch: int, environment: dict[str, str] | None = None
) -> tuple[Path, str, subprocess.Popen]:
    """`gensweep run SPEC_FILE --storage-path out` in `cwd`, with one trial's process SIGKILLed
    from outside at `epoch`, before that epoch's checkpoint (kill_trial): the killed trial's
    directory, the run's output, the ended process."""
    process = start_run(cwd, spec_file, "--storage-path", "out", environment=environment)
    try:
        killed = kill_trial(cwd / "out" / run_name, process, epoch=epoch)
        output = output_at_exit(process, cwd, seconds=600)
    finally:
        end_if_running(process)
    return killed, output, process


def kill_trial(run_dir: Path, process: subprocess.Popen, *, epoch: int, seconds: float = 600) -> Path:
    """SIGKILL, from outside, the process of the sweep's first trial once it has trained and
    logged `epoch` (a fresh trial's) and before it has a checkpoint of it; returns its directory.

    What the trial has left at the kill is always the same, however fast or loaded the machine:
    Tune holds its checkpoint of epoch - 1 (none for epoch 1), its TensorBoard events of `epoch`
    are on disk, its record says `epoch`, and there is no checkpoint of `epoch` at all.

    Not timed by a poll that hopes to catch the trial between two epochs (on the tests' small
    data an epoch takes a few tenths of a second): the trial is held where it is to die. Before
    it can get there, a named pipe is put where its checkpoint of `epoch` will be written
    (checkpoint_<epoch - 1>/state.pt: one checkpoint an epoch). Ray's copy of that checkpoint
    into the trial directory opens the pipe and waits for a reader that never comes: the trial
    stays inside tune.report, its epoch recorded and logged but not reported, so Tune never
    learns of that checkpoint. It got there past its report of epoch - 1, which Tune lets a
    trial leave only once it holds that epoch's checkpoint. The trial flushed the epoch's
    TensorBoard events before it began the report (runner.sweep.trial). Then the trial is stopped
    (SIGSTOP), its state checked and the pipe taken away while nothing of it runs, and it is
    SIGKILLed: no retry can start before that, so none finds the pipe.

    The pipe is put in place as soon as Tune makes the trial's directory, before the trial's
    process starts: starting it and training `epoch` epochs takes seconds where making the pipe
    takes a poll (10 ms). Were the trial there first, mkdir or mkfifo says so and the test fails
    naming it.
    """
    trial_dir = wait_for(lambda: _first_trial_dir(run_dir), "Tune to make a trial's directory", process, seconds, every=0.01)
    held = trial_dir / f"checkpoint_{epoch - 1:06d}"
    pipe = held / STATE_FILE
    try:
        held.mkdir()
        os.mkfifo(pipe)
    except FileExistsError:
        raise AssertionError(f"{trial_dir.name} began its checkpoint of epoch {epoch} before the test could hold it") from None

    def held_at_its_checkpoint() -> dict | None:
        record = _read_record(trial_dir)
        if record is None or record.get("epoch", 0) < epoch:
            return None
        assert record["epoch"] == epoch, f"{trial_dir.name} went on to epoch {record['epoch']}: nothing held it at {epoch}"
        return record if epoch in _logged_epochs(trial_dir) else None

    record = wait_for(held_at_its_checkpoint, f"{trial_dir.name} to log epoch {epoch} and begin its checkpoint", process, seconds)
    pid = record["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(lambda: _process_state(pid) in ("T", "t"), f"trial process {pid} to stop", process, 60, every=0.01)
        # Nothing of the trial runs now: what is on disk stays as it is read here.
        assert _read_record(trial_dir)["epoch"] == epoch
        assert stat.S_ISFIFO(pipe.lstat().st_mode) and [p.name for p in held.iterdir()] == [STATE_FILE], list(held.iterdir())
        pipe.unlink()
        held.rmdir()
        source = _checkpoint_being_copied(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 60
    while _process_state(pid) not in (None, "Z", "X"):  # a zombie is dead; its parent (Ray's raylet) reaps it
        assert time.time() < deadline, f"trial process {pid} still there 60 s after SIGKILL"
        time.sleep(0.01)
    if source is not None:  # what a killed trial leaves in the temporary directory: not the test's to leave
        shutil.rmtree(source)
    return trial_dir


def _first_trial_dir(run_dir: Path) -> Path | None:
    """The first trial directory Tune made in the run directory (Tune makes them before the trials start)."""
    if not run_dir.is_dir():
        return None
    trials = sorted(p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith((".", COMPARISON_RUN)))
    return trials[0] if trials else None


def _read_record(trial_dir: Path) -> dict | None:
    try:
        return json.loads((trial_dir / RECORD_FILE).read_text())  # written whole (renamed into place)
    except FileNotFoundError:
        return None


def _logged_epochs(trial_dir: Path) -> set[int]:
    """The epochs whose end the trial's TensorBoard event files on disk hold (train/epoch)."""
    from tbreader import read_events

    try:
        return {round(e.value) for e in read_events(trial_dir).Scalars("train/epoch")}
    except KeyError:  # no such scalar on disk yet
        return set()


def _checkpoint_being_copied(pid: int) -> Path | None:
    """The temporary directory (tempfile's, in the trial) whose state file the trial process has
    open, copying it into its trial directory; None when there is none to be seen."""
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:  # closed meanwhile
            continue
        if target.name == STATE_FILE and target.parent.parent == Path(tempfile.gettempdir()):
            return target.parent
    return None


def _process_state(pid: int) -> str | None:
    """The state letter of a process (R, S, T, Z ...) from /proc, or None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    return status.rsplit(")", 1)[1].split()[0]
