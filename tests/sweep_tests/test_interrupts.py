"""Interrupts, for real: a `gensweep run` process gets SIGINT (Ctrl-C: to its whole process
group, as a terminal sends it) or SIGTERM (`kill PID`) while one trial has finished and another
is training; it marks the unfinished one `interrupted`, prints the command that resumes it and
exits 130 or 143; `gensweep resume` then finishes the sweep."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from tbreader import read_events

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
pytestmark = pytest.mark.slow

# Two trials side by side (two CPUs): one of 1 epoch, one of 40. The short one is finished long
# before the long one can be, so a signal sent once the short one is done and the long one has
# a checkpoint always finds one finished and one training.
SPEC = {
    "name": "intr",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 512, "val_size": 64},
    "train": {"epochs": 40, "batch_size": 64, "log_every": 4},
    "search": {"train.epochs": {"grid": [1, 40]}},
    "quality": {"every": 0},
}


class _Lines:
    """A process's output lines, read as they come (a thread drains the pipe)."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def text(self) -> str:
        self._thread.join(timeout=60)
        return "\n".join(self.lines)


def _show(run_dir: Path) -> list[dict]:
    result = subprocess.run([GENSWEEP, "show", str(run_dir), "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def _wait_for(condition, what: str, output: _Lines, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}:\n" + "\n".join(output.lines[-40:])
        time.sleep(0.2)


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["SIGINT", "SIGTERM"])
def test_a_signal_interrupts_the_sweep_and_resume_finishes_it(tmp_path, signum, status):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    run_dir = tmp_path / "out" / "intr"
    process = subprocess.Popen(
        [GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True,  # its own process group, as in a shell
    )
    output = _Lines(process)
    try:
        _wait_for(lambda: any("1/2 done" in line for line in output.lines), "the 1-epoch trial to finish", output)
        _wait_for(lambda: list(run_dir.glob("epochs=40_*/checkpoint_*")), "a checkpoint of the 40-epoch trial", output)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        else:
            process.send_signal(signal.SIGTERM)  # `kill PID`, a scheduler's stop: the process alone
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    text = output.text()
    assert process.returncode == status, text[-3000:]

    # One line says how to go on, in gensweep's words, not Tune's; no stack dump, no traceback.
    resume_lines = [line for line in text.splitlines() if "gensweep resume" in line]
    assert resume_lines == [f"Interrupted by {signal.Signals(signum).name}; continue with:  gensweep resume out/intr"], text[-3000:]
    for noise in ("Tuner.restore", "Traceback", "SIGTERM received", "Stop signal received", "Failed to fetch metrics"):
        assert noise not in text, text[-3000:]
    # The progress line's last word counts only what really finished.
    progress = [line for line in text.splitlines() if re.match(r"gensweep: \d+/2 done", line)]
    assert progress[-1].startswith("gensweep: 1/2 done, 0 running, 0 failed, 1 interrupted"), progress

    by_epochs = {t["swept"]["train.epochs"]: t for t in _show(run_dir)}
    assert by_epochs[1]["status"] == "finished"
    assert by_epochs[40]["status"] == "interrupted" and 1 <= by_epochs[40]["epoch"] < 40
    finished_result = (Path(by_epochs[1]["logdir"]) / "result.json").read_text()

    resumed = subprocess.run([GENSWEEP, "resume", str(run_dir)], capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = {t["swept"]["train.epochs"]: t for t in _show(run_dir)}
    assert [after[1]["status"], after[40]["status"]] == ["finished", "finished"]
    assert after[40]["epoch"] == 40
    assert (Path(after[1]["logdir"]) / "result.json").read_text().startswith(finished_result)
    # The sweep's comparison: one image a step (the run's, then the resume's), never two at one.
    images = read_events(run_dir / "_comparison").Images("comparison/samples")
    assert [image.step for image in images] == [0, 1]


def test_signals_while_the_records_are_made_final_are_noted_and_stop_nothing():
    # After Tune's loop returned, a second Ctrl-C must not raise in the middle of writing the
    # records (one would be left `running`); the exit status still says which signal came.
    from runner.sweep.interrupts import StopSignals

    with StopSignals() as signals:
        signals.settle()
        for _ in range(2):
            os.kill(os.getpid(), signal.SIGINT)  # real signals, handled before kill returns
        assert signals.received == signal.SIGINT
