"""Damaged checkpoints, for real: a trial whose newest checkpoint is truncated or garbage goes on
from the newest one that loads, and says so in one line; with none that loads it fails once,
naming the file. No record, table or report carries terminal escape codes.

Deterministic without a hook in the trainer: the first run's trial process is SIGKILLed from
outside at epoch 3, before that epoch's checkpoint (sweeps.kill_trial), with no retries, so it
ends with checkpoints of epochs 1 and 2 and nothing running; the test damages them while nothing
is running (each test in its own copy of that run), then `gensweep resume` restores the errored
trial from its newest checkpoint, the damaged one.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from sweeps import GENSWEEP, run_killing_one_trial

pytestmark = pytest.mark.slow

SPEC = {
    "name": "ckpt",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 4, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2]}},
    # ASHA stops a trial at max_t of its time attribute: a trial that went back an epoch must
    # still be let run to its last epoch.
    "tune": {"max_failures": 0, "scheduler": "asha", "grace_period": 1},
}


def _gensweep(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([GENSWEEP, *args], cwd=cwd, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture(scope="module")
def killed_at_epoch_3(tmp_path_factory) -> Path:
    """A run whose only trial was killed at epoch 3: checkpoints of epochs 1 and 2, status error.
    Made once; each test damages and resumes its own copy (tests/sweep_tests/test_run_dirs.py:
    a copied run directory resumes into its own files)."""
    where = tmp_path_factory.mktemp("killed")
    (where / "s.yaml").write_text(yaml.safe_dump(SPEC))
    killed, output, process = run_killing_one_trial(where, "s.yaml", "ckpt", epoch=3)
    assert process.returncode == 1, output[-3000:]
    (trial_dir,) = [p.parent for p in (where / "out" / "ckpt").glob("*/gensweep.json")]
    assert trial_dir == killed
    assert json.loads((trial_dir / "gensweep.json").read_text())["status"] == "error"
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000000", "checkpoint_000001"]
    return trial_dir


def _copy_of(killed_trial_dir: Path, tmp_path: Path) -> Path:
    """The killed run copied into tmp_path/out/ckpt; its trial's directory there."""
    shutil.copytree(killed_trial_dir.parent, tmp_path / "out" / "ckpt")
    return tmp_path / "out" / "ckpt" / killed_trial_dir.name


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _escape_free(run_dir: Path, *outputs: str) -> None:
    for output in outputs:
        assert "\x1b[" not in output, output
    for record in run_dir.glob("*/gensweep.json"):
        assert "\\u001b[" not in record.read_text() and "\x1b[" not in record.read_text()
    shown = _gensweep("show", str(run_dir), cwd=run_dir)
    assert "\x1b[" not in shown.stdout + shown.stderr
    report = _gensweep("report", str(run_dir), cwd=run_dir)
    assert report.returncode == 0, report.stderr
    assert "\x1b[" not in (run_dir / "report.html").read_text()


def test_a_truncated_latest_checkpoint_falls_back_to_the_newest_one_that_loads(killed_at_epoch_3, tmp_path):
    trial_dir = _copy_of(killed_at_epoch_3, tmp_path)
    _truncate(trial_dir / "checkpoint_000001" / "state.pt")

    resumed = _gensweep("resume", "out/ckpt", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    record = json.loads((trial_dir / "gensweep.json").read_text())
    assert record["status"] == "finished" and record["epoch"] == 4, record
    # One line, naming the damaged file and where the trial went on from.
    notices = [line for line in resumed.stdout.splitlines() if "checkpoint_000001" in line]
    assert len(notices) == 1, resumed.stdout
    assert "checkpoint_000000" in notices[0] and "epoch 1" in notices[0], notices
    assert "Traceback" not in resumed.stdout + resumed.stderr
    _escape_free(tmp_path / "out" / "ckpt", resumed.stdout, resumed.stderr)


def test_a_trial_none_of_whose_checkpoints_loads_fails_once_naming_the_file(killed_at_epoch_3, tmp_path):
    trial_dir = _copy_of(killed_at_epoch_3, tmp_path)
    _truncate(trial_dir / "checkpoint_000001" / "state.pt")
    (trial_dir / "checkpoint_000000" / "state.pt").write_bytes(b"not a checkpoint at all")

    resumed = _gensweep("resume", "out/ckpt", cwd=tmp_path)
    assert resumed.returncode == 1, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    record = json.loads((trial_dir / "gensweep.json").read_text())
    assert record["status"] == "error", record
    error = record["error"]
    assert "\n" not in error and "checkpoint_000001/state.pt" in error and "no checkpoint" in error, error
    assert error in resumed.stdout  # the summary table carries the same one line
    # At verbose 0 the terminal gets the table, not pages of Tune's tracebacks.
    assert "Traceback" not in resumed.stdout + resumed.stderr
    assert len((resumed.stdout + resumed.stderr).splitlines()) < 25, resumed.stdout + resumed.stderr
    _escape_free(tmp_path / "out" / "ckpt", resumed.stdout, resumed.stderr)
