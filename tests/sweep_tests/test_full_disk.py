"""A full disk, for real: a sweep's --storage-path on a small tmpfs that fills mid-sweep ends in
one line naming the full filesystem, leaves no half-written file of ours, and `gensweep resume`
finishes the sweep once space is back (Tune's state that the full disk cut short included)."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mounts import tmpfs

from runner.files import write_bytes
from runner.sweep.tune_state import BACKUP_DIR, DAMAGED_PREFIX, back_up, repair

GENSWEEP = str(Path(sys.executable).parent / "gensweep")

SPEC = {
    "name": "full",
    "model": {"name": "vae", "hidden_dim": 16},  # checkpoints of ~0.3 MB: the whole sweep fits in 16 MB
    "data": {"name": "digits", "train_size": 2048, "val_size": 64},
    "train": {"epochs": 6, "batch_size": 64, "log_every": 4},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "quality": {"every": 0},
}


def _fill(directory: Path, leave: int) -> Path:
    """Take all the filesystem's free space but `leave` bytes."""
    filler = directory / "filler"
    stats = os.statvfs(directory)
    size = max(0, stats.f_bavail * stats.f_frsize - leave)
    try:
        with open(filler, "wb") as file:
            file.writelines(b"\0" * 65536 for _ in range(size // 65536))
            file.write(b"\0" * (size % 65536))
    except OSError:
        pass  # a trial wrote meanwhile: the disk is full all the same
    return filler


def _show(run_dir: Path) -> list[dict]:
    result = subprocess.run([GENSWEEP, "show", str(run_dir), "--json"], capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


@pytest.mark.slow
def test_a_disk_that_fills_mid_sweep_ends_in_one_line_and_resume_finishes_the_sweep(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    with tmpfs(tmp_path / "store", "size=16m") as store:
        run_dir = store / "full"
        with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
            process = subprocess.Popen([GENSWEEP, "run", "s.yaml", "--storage-path", str(store), "--keep-checkpoints", "1"],
                                       cwd=tmp_path, stdout=out, stderr=err, text=True)
            try:
                deadline = time.time() + 300
                while not list(run_dir.glob("*/checkpoint_*/state.pt")):
                    assert time.time() < deadline and process.poll() is None, "no checkpoint appeared"
                    time.sleep(0.2)
                filler = _fill(store, leave=64 * 1024)  # less than any checkpoint
                process.wait(timeout=600)
            finally:
                if process.poll() is None:
                    process.kill()
        stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
        everything = stdout + stderr
        assert process.returncode == 1, everything[-3000:]
        # One line says so, with the full filesystem's place; none of Ray's hundreds.
        assert stderr.strip() == (
            f"error: {run_dir}: the disk is full (no space left on {store}); finished trials and their "
            f"checkpoints are kept: free some space, then: gensweep resume {run_dir}"
        ), everything[-3000:]
        for noise in ("Traceback", "Errno 28", "Aborted!", "OSError"):
            assert noise not in everything, everything[-3000:]
        assert not list(run_dir.glob("**/.*.tmp")), "a write cut short left its temporary file"

        filler.unlink()
        # Tune copies its state over the last one in place, so a disk that fills during the copy
        # leaves it cut short (seen: a 16 KB prefix of the experiment state, an empty searcher
        # state). Whether this run's last copy hit the full disk depends on timing: make sure.
        for pattern, keep in (("experiment_state-*.json", 0.5), ("searcher-state-*.pkl", 0)):
            (newest,) = sorted(run_dir.glob(pattern))[-1:]
            newest.write_bytes(newest.read_bytes()[: int(newest.stat().st_size * keep)])
        resumed = subprocess.run([GENSWEEP, "resume", str(run_dir)], capture_output=True, text=True, timeout=900, check=False)
        assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
        assert "Traceback" not in resumed.stdout + resumed.stderr
        assert "resuming from Ray Tune's last whole state" in resumed.stdout
        trials = _show(run_dir)
        assert sorted(t["swept"]["model.latent_dim"] for t in trials) == [2, 4, 8]
        assert [(t["status"], t["epoch"]) for t in trials] == [("finished", 6)] * 3


def test_a_write_cut_short_by_a_full_disk_leaves_no_temporary(tmp_path):
    with tmpfs(tmp_path / "small", "size=64k") as small:
        with pytest.raises(OSError):
            write_bytes(small / "big.bin", b"\0" * (1024 * 1024))
        assert list(small.iterdir()) == []
        write_bytes(small / "small.bin", b"fits")  # and the space it took is free again
        assert (small / "small.bin").read_bytes() == b"fits"


def _state_files(run_dir: Path, session: str, trials: list[str]) -> None:
    (run_dir / f"experiment_state-{session}.json").write_text(json.dumps({"trial_data": trials}))
    (run_dir / f"searcher-state-{session}.pkl").write_bytes(pickle.dumps({"trials": trials}))
    (run_dir / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": len(trials)}))


def test_damaged_tune_state_is_put_back_to_its_last_whole_copy(tmp_path):
    # Tune's state files as a full disk leaves them: the newest experiment state truncated and
    # the searcher's empty. Nothing here is unpickled: the check walks the pickle's opcodes.
    _state_files(tmp_path, "2026-01-01_00-00-00", ["a", "b"])
    assert back_up(tmp_path)
    _state_files(tmp_path, "2026-01-01_00-00-00", ["a", "b", "c"])
    whole = (tmp_path / "experiment_state-2026-01-01_00-00-00.json").read_bytes()
    (tmp_path / "experiment_state-2026-01-01_00-00-00.json").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "searcher-state-2026-01-01_00-00-00.pkl").write_bytes(b"")
    assert not back_up(tmp_path)  # a damaged set is never copied over the whole one

    assert sorted(repair(tmp_path)) == ["experiment_state-2026-01-01_00-00-00.json", "searcher-state-2026-01-01_00-00-00.pkl"]
    assert json.loads((tmp_path / "experiment_state-2026-01-01_00-00-00.json").read_text()) == {"trial_data": ["a", "b"]}
    # The searcher and the search generator come back from the same moment as the trials.
    assert pickle.loads((tmp_path / "searcher-state-2026-01-01_00-00-00.pkl").read_bytes()) == {"trials": ["a", "b"]}
    assert pickle.loads((tmp_path / "search_gen_state-2026-01-01_00-00-00.json").read_bytes()) == {"counter": 2}
    assert (tmp_path / f"{DAMAGED_PREFIX}experiment_state-2026-01-01_00-00-00.json").read_bytes() == whole[: len(whole) // 2]
    assert repair(tmp_path) == []  # whole now: nothing more to do
    assert (tmp_path / BACKUP_DIR).is_dir()


def test_without_a_copy_a_damaged_newest_state_gives_way_to_the_previous_session(tmp_path):
    _state_files(tmp_path, "2026-01-01_00-00-00", ["a"])
    (tmp_path / "experiment_state-2026-01-02_00-00-00.json").write_bytes(b"")
    assert repair(tmp_path) == ["experiment_state-2026-01-02_00-00-00.json"]
    assert sorted(p.name for p in tmp_path.glob("experiment_state-*.json")) == ["experiment_state-2026-01-01_00-00-00.json"]


@pytest.mark.slow
def test_a_disk_full_before_the_first_trial_is_one_line(tmp_path):
    # Full from the start: sweep.json or Optuna's SQLite study cannot be written (SQLite says
    # "database or disk is full" in an OperationalError, not an OSError).
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    with tmpfs(tmp_path / "store", "size=64k") as store:
        _fill(store, leave=4096)
        result = subprocess.run([GENSWEEP, "run", "s.yaml", "--storage-path", str(store)], cwd=tmp_path,
                                capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.strip() == f"error: {store}: the disk is full (no space left on {store})", result.stderr[-3000:]


def _tune_state(configs: dict[str, dict]) -> str:
    """An experiment state in Ray Tune 2.60's layout: trial_data holds [trial JSON, runtime JSON]."""
    trials = [[json.dumps({"trial_id": trial_id, "status": "RUNNING", "config": config}), "{}"]
              for trial_id, config in configs.items()]
    return json.dumps({"trial_data": trials, "runner_data": {}, "stats": {}})


@pytest.mark.parametrize("seed", range(3))
def test_a_resume_from_an_older_state_asks_optuna_again_for_what_only_the_study_remembers(tmp_path, seed):
    # Tune saved its state when it had asked for two of the grid's three points; Optuna's study
    # (written as each point is asked for) has all three RUNNING, and a fourth trial whose ask was
    # cut short before its params. Without the study brought level, GridSampler took the third
    # point for taken and handed out one already run.
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from runner.sweep.tune_state import RunDirStorage, offer_again_what_tune_lost

    grid = {"model.latent_dim": [2, 4, 8]}

    def searcher() -> OptunaSearch:  # as runner/sweep/driver.py makes it; Tuner.restore makes it again on the same study
        return OptunaSearch(space={"model.latent_dim": optuna.distributions.CategoricalDistribution([2, 4, 8])},
                            metric="val/loss", mode="min", study_name="grid", storage=RunDirStorage(tmp_path),
                            sampler=optuna.samplers.GridSampler(grid, seed=seed))

    before = searcher()
    given = {trial_id: before.suggest(trial_id) for trial_id in ("a", "b", "c")}
    assert sorted(config["model.latent_dim"] for config in given.values()) == [2, 4, 8]
    study = optuna.load_study(study_name="grid", storage=RunDirStorage(tmp_path))
    study.ask()  # the driver killed while Optuna recorded a trial: no params yet
    (tmp_path / "experiment_state-2026-12-01_00-00-00.json").write_text(_tune_state({"a": given["a"], "b": given["b"]}))

    assert offer_again_what_tune_lost(tmp_path, "grid", list(grid), grid) == 2
    assert offer_again_what_tune_lost(tmp_path, "grid", list(grid), grid) == 0  # level now: a second resume changes nothing
    assert searcher().suggest("d") == given["c"]
    states = [trial.state for trial in study.trials]
    assert states.count(optuna.trial.TrialState.RUNNING) == 3 and states.count(optuna.trial.TrialState.FAIL) == 2
    assert optuna.trial.TrialState.WAITING not in states


def test_a_trial_tune_knows_is_left_as_it_is_however_it_ended(tmp_path):
    import optuna

    from runner.sweep.tune_state import RunDirStorage, offer_again_what_tune_lost

    study = optuna.create_study(study_name="s", storage=RunDirStorage(tmp_path))
    kept = [study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)}) for _ in range(3)]
    study.tell(kept[0], 0.5)  # finished; the others running (an interrupt)
    configs = {f"t{index}": {"train.lr": trial.params["train.lr"]} for index, trial in enumerate(kept)}
    (tmp_path / "experiment_state-2026-12-01_00-00-00.json").write_text(_tune_state(configs))
    assert offer_again_what_tune_lost(tmp_path, "s", ["train.lr"], None) == 0
    assert [trial.state.name for trial in study.trials] == ["COMPLETE", "RUNNING", "RUNNING"]
