"""Faults, for real: a trial process killed mid-run is retried from its checkpoint; a sweep
interrupted with SIGINT resumes with `gensweep resume`, keeping its finished work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from tbreader import read_events

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
pytestmark = pytest.mark.slow

SPEC = {
    "name": "faults",
    "model": {"name": "vae", "hidden_dim": 64},
    "data": {"name": "digits", "train_size": 1024, "val_size": 128},
    "train": {"epochs": 4, "batch_size": 64, "log_every": 4},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "quality": {"samples": 128},
}


def _show(run_dir: Path) -> list[dict]:
    result = subprocess.run([GENSWEEP, "show", str(run_dir), "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def _assert_clean_history(trial: dict, epochs: int) -> None:
    events = read_events(Path(trial["logdir"]))
    steps = [e.step for e in events.Scalars("val/recon")]
    assert len(steps) == epochs and len(set(steps)) == epochs, steps  # no duplicate steps
    assert [e.value for e in events.Scalars("train/epoch")] == list(range(1, epochs + 1))


def test_a_killed_trial_is_retried_from_its_checkpoint(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    marker = tmp_path / "killed-once"
    env = {**os.environ, "GENSWEEP_TEST_KILL_ONCE": str(marker)}
    result = subprocess.run(
        [GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marker.exists()  # one trial process really was killed
    trials = _show(tmp_path / "out" / "faults")
    assert [t["status"] for t in trials] == ["finished"] * 3
    for trial in trials:
        assert trial["epoch"] == 4
        _assert_clean_history(trial, 4)


def test_a_trial_killed_before_its_first_checkpoint_starts_over_with_one_curve(tmp_path):
    # Killed after epoch 1's events were written but before its checkpoint: the retry trains
    # from scratch, and its curves must not show epoch 1 twice.
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SPEC, "search": {"model.latent_dim": {"grid": [2]}}}))
    marker = tmp_path / "killed-once"
    env = {**os.environ, "GENSWEEP_TEST_KILL_ONCE": str(marker), "GENSWEEP_TEST_KILL_EPOCH": "1"}
    result = subprocess.run(
        [GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert marker.exists()
    (trial,) = _show(tmp_path / "out" / "faults")
    assert trial["status"] == "finished" and trial["epoch"] == 4
    _assert_clean_history(trial, 4)


def test_an_interrupted_sweep_resumes(tmp_path):
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 6}, "data": {**SPEC["data"], "train_size": 4096}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "out" / "faults"
    process = subprocess.Popen([GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list(run_dir.glob("*/checkpoint_000002")):
        time.sleep(0.5)
    assert list(run_dir.glob("*/checkpoint_000002")), "no trial reached its third checkpoint"
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=300)
    before = {t["trial_id"]: t for t in _show(run_dir)}
    assert any(t["status"] == "interrupted" for t in before.values()), output[-3000:]
    finished_before = {
        t["trial_id"]: (Path(t["logdir"]) / "result.json").read_text() for t in before.values() if t["status"] == "finished"
    }

    resumed = subprocess.run([GENSWEEP, "resume", str(run_dir)], capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = _show(run_dir)
    assert sorted(t["swept"]["model.latent_dim"] for t in after) == [2, 4, 8]
    assert [t["status"] for t in after] == ["finished"] * 3
    for trial in after:
        _assert_clean_history(trial, 6)
        if trial["trial_id"] in finished_before:
            # Its finished work is kept. A trial whose last report Tune had not yet taken in when
            # SIGINT came (its record is written just before that report) trains its last epoch
            # again from its checkpoint: its results then only grow, and its curves stay clean.
            assert (Path(trial["logdir"]) / "result.json").read_text().startswith(finished_before[trial["trial_id"]])
    # The Optuna study carried on in its SQLite file beside the results: one complete trial a
    # grid point, each with the value Tune reported last.
    import optuna

    study = optuna.load_study(study_name="faults", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["model.latent_dim"] for t in complete) == [2, 4, 8]
    metric = json.loads((run_dir / "sweep.json").read_text())["metrics"][0]
    reported = {t["swept"]["model.latent_dim"]: t["metrics"][metric] for t in after}
    assert all(t.value == pytest.approx(reported[t.params["model.latent_dim"]]) for t in complete)


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path):
    result = subprocess.run([GENSWEEP, "resume", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "not a gensweep run directory" in result.stderr
