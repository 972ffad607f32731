"""Run and trial directories: each run claims its own directory (two runs started together get
one each), a sweep that cannot start leaves none behind, and no name turns into a path outside
the storage path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from ray.tune.experiment import Trial
from sweeps import GENSWEEP, end_if_running, output_at_exit, start_run, wait_for

from runner.spec.names import RUN_NAME
from runner.sweep.driver import CLAIM_FILE, LOCK_FILE, claim_run_dir, trial_dirname

SPEC = {
    "name": "together",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 2, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "quality": {"every": 0},
}


def _write_spec(directory: Path, **changes) -> Path:
    path = directory / "s.yaml"
    path.write_text(yaml.safe_dump(SPEC | changes))
    return path


def _everything_under(directory: Path) -> set[str]:
    return {str(path.relative_to(directory)) for path in directory.rglob("*")}


# -- claiming a run directory -------------------------------------------------------------------
def test_a_claimed_directory_is_never_handed_out_again(tmp_path):
    first = claim_run_dir(tmp_path, "s").path
    second = claim_run_dir(tmp_path, "s").path  # the first has not written anything yet: still taken
    assert (first, second) == (tmp_path / "s", tmp_path / "s-2")
    (tmp_path / "s-3").mkdir()
    (tmp_path / "s-3" / "sweep.json").write_text("{}")  # an earlier run
    (tmp_path / "s-4").mkdir()  # empty: fine to use
    assert claim_run_dir(tmp_path, "s").path == tmp_path / "s-4"


def test_a_released_claim_leaves_nothing_but_a_started_run_is_kept(tmp_path):
    unused = claim_run_dir(tmp_path / "new" / "runs", "s")  # makes new/runs for it
    started = claim_run_dir(tmp_path / "runs", "s")
    (started.path / "sweep.json").write_text("{}")
    unused.release()
    started.release()
    assert list(tmp_path.iterdir()) == [tmp_path / "runs"]  # new/runs/s, new/runs and new: gone
    assert sorted(p.name for p in started.path.iterdir()) == ["sweep.json"]  # the claim file is gone too
    (tmp_path / "mine").mkdir()
    claim_run_dir(tmp_path / "mine", "s").release()
    assert (tmp_path / "mine").is_dir()  # there before the claim: left as it was


CLAIMER = """
import sys, time
from pathlib import Path
from runner.sweep.driver import claim_run_dir
start = Path(sys.argv[2])
Path(sys.argv[3]).touch()  # imported: ready
while not start.exists():  # every process waits here, then all claim at once
    time.sleep(0.001)
print(claim_run_dir(Path(sys.argv[1]), "s").path.name)
"""


def test_processes_claiming_at_the_same_moment_each_get_their_own(tmp_path):
    storage, start = tmp_path / "runs", tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    processes = [
        subprocess.Popen([sys.executable, "-c", CLAIMER, str(storage), str(start), str(flag)], stdout=subprocess.PIPE, text=True)
        for flag in ready
    ]
    deadline = time.time() + 300
    while time.time() < deadline and not all(flag.exists() for flag in ready):
        time.sleep(0.05)
    assert all(flag.exists() for flag in ready), "the claiming processes did not start"
    start.touch()  # all four are waiting for this: they claim at the same moment
    names = [process.communicate(timeout=60)[0].strip() for process in processes]
    assert sorted(names) == ["s", "s-2", "s-3", "s-4"]
    assert all((storage / name / CLAIM_FILE).exists() for name in names)


@pytest.mark.slow
def test_two_runs_started_together_each_get_their_own_directory_study_and_grid(tmp_path):
    import optuna

    spec = _write_spec(tmp_path)
    runs = [
        subprocess.Popen([GENSWEEP, "run", str(spec), "--storage-path", str(tmp_path / "out")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(output[-3000:] for output in outputs)
    run_dirs = sorted((tmp_path / "out").iterdir())
    assert [d.name for d in run_dirs] == ["together", "together-2"]
    for run_dir in run_dirs:
        assert not (run_dir / CLAIM_FILE).exists()
        records = [json.loads(p.read_text()) for p in run_dir.glob("*/gensweep.json")]
        # Each grid point exactly once in each run, each finished.
        assert sorted(r["swept"]["model.latent_dim"] for r in records) == [2, 4, 8]
        assert {r["status"] for r in records} == {"finished"}
        # Its own study, in its own optuna.db: three complete trials, one a grid point.
        study = optuna.load_study(study_name="together", storage=f"sqlite:///{run_dir / 'optuna.db'}")
        complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert sorted(t.params["model.latent_dim"] for t in complete) == [2, 4, 8]
        assert len(study.trials) == 3
        # Its own Tune experiment: the trials Tune knows are this directory's trials.
        state = json.loads(max(run_dir.glob("experiment_state-*.json")).read_text())
        assert len(state["trial_data"]) == 3


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the probe is


def test_a_sweep_that_cannot_start_leaves_no_run_directory(tmp_path):
    spec = _write_spec(tmp_path)
    result = subprocess.run(
        [GENSWEEP, "run", str(spec), "--storage-path", str(tmp_path / "out"), "--address", f"127.0.0.1:{_closed_port()}"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.startswith("error: --address") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()  # no empty "together" that looks like a run, nor the out made for it


def test_a_storage_path_that_is_a_file_is_one_line(tmp_path):
    spec = _write_spec(tmp_path)
    (tmp_path / "out").write_text("not a directory")
    result = subprocess.run([GENSWEEP, "run", str(spec), "--storage-path", str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr[-2000:]
    assert result.stderr.startswith("error: --storage-path")


# -- names that would be paths ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../escape", "/abs/olute", "a/b", "..", ".", ".hidden", "-x", "", "a b", "x" * 101])
def test_a_run_name_that_is_not_one_safe_component_is_refused(tmp_path, name):
    work = tmp_path / "deep" / "work"
    work.mkdir(parents=True)
    _write_spec(work)
    before = _everything_under(tmp_path)
    result = subprocess.run([GENSWEEP, "run", "s.yaml", "--name", name, "--storage-path", "out"],
                            cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.startswith("error: --name") and len(result.stderr.splitlines()) == 1
    assert _everything_under(tmp_path) == before  # nothing written, inside or outside
    assert not Path("/abs").exists()


@pytest.mark.parametrize("name", ["..", "-x"])
def test_a_spec_name_that_is_not_one_safe_component_is_refused(tmp_path, name):
    # The spec's own name is the run's name when --name is not given.
    work = tmp_path / "work"
    work.mkdir()
    _write_spec(work, name=name)
    before = _everything_under(tmp_path)
    result = subprocess.run([GENSWEEP, "run", "s.yaml", "--storage-path", "out"],
                            cwd=work, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert _everything_under(tmp_path) == before


def test_good_run_names_pass():
    for name in ["vae_latent", "run-2", "v1.2", "_x", "A9"]:
        assert RUN_NAME.fullmatch(name)


@pytest.mark.parametrize(
    "config",
    [
        {"model.arch": "../x"},
        {"model.arch": "/etc"},
        {"model.arch": ".."},
        {"model.arch": "a/../../b", "train.lr": 0.001},
        {"model.arch": "x" * 300},  # a long value is cut short, never the trial id
        {"model.arch": "../" * 100, "model.latent_dim": 2},
    ],
)
def test_trial_directory_names_are_one_safe_component_ending_in_the_trial_id(tmp_path, config):
    trial = Trial("run_trial", config=config, trial_id="ab12cd34", stub=True)  # what Tune hands the creator
    name = trial_dirname(trial)
    assert name.endswith("_ab12cd34")
    assert os.sep not in name and name not in (".", "..") and not name.startswith((".", "-"))
    assert len(name) <= 120
    assert (tmp_path / name).resolve().parent == tmp_path.resolve()


# -- a moved or copied run directory ------------------------------------------------------------
def _checksums(directory: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(directory)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_a_copied_run_directory_resumes_into_its_own_files_and_a_moved_one_where_it_is_now(tmp_path):
    import optuna

    # One trial at a time, interrupted during the first: Tune has not made the other two yet,
    # so the resumed copy makes them from its saved search state.
    spec = _write_spec(tmp_path, name="original", train={"epochs": 12, "batch_size": 64}, tune={"max_concurrent": 1})
    original = tmp_path / "out" / "original"
    process = start_run(tmp_path, str(spec), "--storage-path", str(tmp_path / "out"))
    try:
        wait_for(lambda: list(original.glob("*/checkpoint_000001")), "a trial's second checkpoint", process, 300)
        process.send_signal(signal.SIGINT)
        output = output_at_exit(process, tmp_path)
    finally:
        end_if_running(process)
    assert len(list(original.glob("*/gensweep.json"))) == 1, output[-3000:]

    copy = tmp_path / "elsewhere" / "copy"
    copy.parent.mkdir()
    shutil.copytree(original, copy)
    before = _checksums(original)
    resumed = subprocess.run([GENSWEEP, "resume", str(copy)], capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]

    assert _checksums(original) == before  # not a byte of the original changed, nothing added
    records = [json.loads(p.read_text()) for p in copy.glob("*/gensweep.json")]
    assert sorted(r["swept"]["model.latent_dim"] for r in records) == [2, 4, 8]
    assert {r["status"] for r in records} == {"finished"}
    study = optuna.load_study(study_name="original", storage=f"sqlite:///{copy / 'optuna.db'}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.params["model.latent_dim"] for t in complete) == [2, 4, 8]

    # And the finished copy, moved, resumes where it is now: nothing made again where it was.
    moved = tmp_path / "here"
    copy.rename(moved)
    resumed = subprocess.run([GENSWEEP, "resume", str(moved)], capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert list(copy.parent.iterdir()) == []
    assert "3 of 3 trials finished" in resumed.stdout
    assert _checksums(original) == before


@pytest.mark.slow
def test_a_copied_packed_run_resumes_with_its_packs(tmp_path):
    # Tune's saved callbacks name the packs' hub after the run: the copy's hub must answer to it.
    spec = _write_spec(tmp_path, name="packed", train={"epochs": 10, "batch_size": 64, "steps_per_epoch": 2},
                       search={"train.lr": {"grid": [1e-2, 3e-3, 1e-3, 3e-4]}}, tune={"pack": 2, "pack_wait": 5})
    original = tmp_path / "out" / "packed"
    process = start_run(tmp_path, str(spec), "--storage-path", str(tmp_path / "out"))
    try:
        wait_for(lambda: list(original.glob("*/checkpoint_000001")), "a trial's second checkpoint", process, 300)
        process.send_signal(signal.SIGINT)
        output = output_at_exit(process, tmp_path)
    finally:
        end_if_running(process)
    records = [json.loads(p.read_text()) for p in original.glob("*/gensweep.json")]
    assert any(r["status"] != "finished" for r in records), output[-3000:]

    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    before = _checksums(original)
    resumed = subprocess.run([GENSWEEP, "resume", str(copy)], capture_output=True, text=True, timeout=900, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert _checksums(original) == before
    records = [json.loads(p.read_text()) for p in copy.glob("*/gensweep.json")]
    assert sorted(r["swept"]["train.lr"] for r in records) == [3e-4, 1e-3, 3e-3, 1e-2]
    assert {r["status"] for r in records} == {"finished"}


def test_a_run_directory_in_use_is_not_resumed_a_second_time(tmp_path):
    import fcntl

    # A run directory whose sweep is still going (its lock held, as `gensweep run` holds it) and
    # whose Tune state looks damaged to a resume: a second driver would rename the live run's
    # files and write to its study.
    run_dir = tmp_path / "busy"
    run_dir.mkdir()
    document = yaml.safe_load(_write_spec(tmp_path, name="busy").read_text())
    (run_dir / "sweep.json").write_text(json.dumps({"name": "busy", "document": document}))
    (run_dir / "experiment_state-2026-12-01_00-00-00.json").write_text("{\"cut sho")  # being written
    with open(run_dir / LOCK_FILE, "a+") as lock:
        before = _everything_under(run_dir)
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run([GENSWEEP, "resume", str(run_dir)], capture_output=True, text=True, timeout=300,
                                check=False)
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.splitlines() == [
        f"error: {run_dir}: another gensweep run or resume is working in it; wait for it to end (or stop it) first"
    ]
    assert _everything_under(run_dir) == before  # nothing renamed, repaired or added
