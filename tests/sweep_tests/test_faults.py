"""Faults, for real: a trial process killed mid-run is retried from its checkpoint; a sweep
interrupted with SIGINT resumes with `gensweep resume`, keeping its finished work."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
from pathlib import Path

import pytest
import yaml
from sweeps import GENSWEEP, end_if_running, output_at_exit, run_killing_one_trial, start_run, wait_for
from tbreader import read_events

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
    # One trial, so that nothing but its own checkpoints makes the driver copy its result.json
    # and progress.csv into the run directory: Tune does that every 10 s or more (never here),
    # and after every CheckpointConfig.num_to_keep (2) checkpoints of a trial. Killed at epoch 4,
    # the trial's epoch 3 result is in the driver's copies alone: Ray's loggers, restarting the
    # trial, copied the run directory's older ones over them (the lost worker host in
    # test_netns_cluster lost a result that way).
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SPEC, "search": {"model.latent_dim": {"grid": [2]}}}))
    killed, output, process = run_killing_one_trial(tmp_path, "s.yaml", "faults", epoch=4,
                                                    environment={"TUNE_GLOBAL_CHECKPOINT_S": "3600"})
    assert process.returncode == 0, output[-3000:]
    (trial,) = _show(tmp_path / "out" / "faults")
    assert trial["status"] == "finished" and trial["epoch"] == 4
    _assert_clean_history(trial, 4)
    # Its process really was killed and the trial started again, from its checkpoint: Tune had
    # epochs 1 to 3 from the killed process, and no epoch twice, in both of its files.
    assert json.loads((killed / "gensweep.json").read_text())["attempts"] == 2
    assert [json.loads(line)["epoch"] for line in (killed / "result.json").read_text().splitlines()] == [1, 2, 3, 4]
    with open(killed / "progress.csv", newline="") as progress:
        assert [int(row["epoch"]) for row in csv.DictReader(progress)] == [1, 2, 3, 4]


def test_a_trial_killed_before_its_first_checkpoint_starts_over_with_one_curve(tmp_path):
    # Killed after epoch 1's events were written (on disk) but before its checkpoint: the retry
    # trains from scratch, and its curves must not show epoch 1 twice.
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**SPEC, "search": {"model.latent_dim": {"grid": [2]}}}))
    killed, output, process = run_killing_one_trial(tmp_path, "s.yaml", "faults", epoch=1)
    assert process.returncode == 0, output[-3000:]
    (trial,) = _show(tmp_path / "out" / "faults")
    assert trial["status"] == "finished" and trial["epoch"] == 4
    assert json.loads((killed / "gensweep.json").read_text())["attempts"] == 2
    _assert_clean_history(trial, 4)


def _records(run_dir: Path) -> dict[Path, dict]:
    """Every trial's record as its trial wrote it so far (written whole: never half of one)."""
    return {path.parent: json.loads(path.read_text()) for path in run_dir.glob("*/gensweep.json")}


def test_an_interrupted_sweep_resumes(tmp_path):
    # One trial at a time, so that when SIGINT comes one trial has finished and the next has a
    # checkpoint and epochs to go: both kinds are there to resume, every run.
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 6}, "data": {**SPEC["data"], "train_size": 2048},
            "tune": {"max_concurrent": 1}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "out" / "faults"
    process = start_run(tmp_path, "s.yaml", "--storage-path", "out")

    def one_finished_and_the_next_checkpointed() -> bool:
        records = _records(run_dir).items()
        return any(r["status"] == "finished" for _, r in records) and any(
            # a checkpoint, and three epochs or more to go: Tune takes in one report at most after SIGINT
            r["status"] == "running" and r["epoch"] <= 3 and (d / "checkpoint_000000").exists() for d, r in records
        )

    try:
        wait_for(one_finished_and_the_next_checkpointed, "one trial finished and the next checkpointed", process)
        process.send_signal(signal.SIGINT)
        output = output_at_exit(process, tmp_path)
    finally:
        end_if_running(process)
    before = {t["trial_id"]: t for t in _show(run_dir)}
    assert any(t["status"] == "interrupted" for t in before.values()), output[-3000:]
    finished_before = {
        t["trial_id"]: (Path(t["logdir"]) / "result.json").read_text() for t in before.values() if t["status"] == "finished"
    }
    assert finished_before, output[-3000:]

    resumed = subprocess.run([GENSWEEP, "resume", str(run_dir)], capture_output=True, text=True, timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = _show(run_dir)
    assert sorted(t["swept"]["model.latent_dim"] for t in after) == [2, 4, 8]
    assert [t["status"] for t in after] == ["finished"] * 3
    for trial in after:
        _assert_clean_history(trial, 6)
    for trial_id, results in finished_before.items():
        # A finished record means Tune had its last result: not run again, its results unchanged.
        trial = next(t for t in after if t["trial_id"] == trial_id)
        assert (Path(trial["logdir"]) / "result.json").read_text() == results
    # The Optuna study carried on in its SQLite file beside the results: one complete trial a
    # grid point, each with the value Tune reported last.
    import optuna

    study = optuna.load_study(study_name="faults", storage=f"sqlite:///{run_dir / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["model.latent_dim"] for t in complete) == [2, 4, 8]
    metric = json.loads((run_dir / "sweep.json").read_text())["metrics"][0]
    reported = {t["swept"]["model.latent_dim"]: t["metrics"][metric] for t in after}
    assert all(t.value == pytest.approx(reported[t.params["model.latent_dim"]]) for t in complete)


def test_a_record_says_finished_only_once_tune_has_the_last_result(tmp_path):
    # The driver is stopped (SIGSTOP) while the trial trains its one epoch, so Tune cannot take
    # that epoch's report in: the trial must not call itself finished. Its record said so just
    # before the report, and a Ctrl-C in between left a finished trial that Tune trained again.
    spec = {**SPEC, "train": {**SPEC["train"], "epochs": 1, "batch_size": 4}, "data": {**SPEC["data"], "train_size": 2048},
            "search": {"model.latent_dim": {"grid": [2]}}, "quality": {"every": 0}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "out" / "faults"
    process = start_run(tmp_path, "s.yaml", "--storage-path", "out")
    try:
        (trial_dir,) = wait_for(lambda: list(_records(run_dir)), "the trial to start", process)
        process.send_signal(signal.SIGSTOP)  # the trial was setting up: an epoch of 512 steps to go
        record = wait_for(lambda: _records(run_dir)[trial_dir]["epoch"] == 1 and _records(run_dir)[trial_dir],
                           "the trial to train its epoch and report it", process)
        assert not (trial_dir / "result.json").exists() or not (trial_dir / "result.json").read_text().strip()
        assert record["status"] == "running"
        process.send_signal(signal.SIGCONT)
        output = output_at_exit(process, tmp_path)
    finally:
        process.send_signal(signal.SIGCONT)
        end_if_running(process)
    assert process.returncode == 0, output[-3000:]
    (trial,) = _show(run_dir)
    assert trial["status"] == "finished" and trial["epoch"] == 1
    assert [json.loads(line)["epoch"] for line in (trial_dir / "result.json").read_text().splitlines()] == [1]


def test_resume_refuses_a_directory_that_is_not_a_run(tmp_path):
    result = subprocess.run([GENSWEEP, "resume", str(tmp_path)], capture_output=True, text=True, check=False)
    assert result.returncode == 2 and "not a gensweep run directory" in result.stderr
