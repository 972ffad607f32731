"""A run directory opened by the tools a researcher already has (README, "Interoperability"):
Ray Tune's ExperimentAnalysis and Tuner.restore read its trials, and the real optuna-dashboard
server serves its optuna.db. One real sweep for them all (Ray's start costs ~10 s a sweep); what
each tool reads must equal gensweep's own records (`gensweep show --json`)."""

from __future__ import annotations

import json
import pickle
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runner.cli import main

OPTUNA_DASHBOARD = str(Path(sys.executable).parent / "optuna-dashboard")
OBJECTIVE = "val/loss"  # the vae's default tune.metric, minimized


def _write_spec(tmp_path: Path, name: str, latent_dims: list[int]) -> Path:
    spec = {
        "name": name,
        "model": {"name": "vae", "hidden_dim": 32},
        "data": {"name": "digits", "train_size": 256, "val_size": 64},
        "train": {"epochs": 2, "batch_size": 64},
        "search": {"model.latent_dim": {"grid": latent_dims}},
        "quality": {"every": 0},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "s.yaml"


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    """The run directory (absolute: Ray's readers take no relative path) and gensweep's records
    by trial id."""
    root = tmp_path_factory.mktemp("interop")
    spec = _write_spec(root, "interop", [2, 4])
    result = CliRunner().invoke(main, ["run", str(spec), "--storage-path", str(root / "out")])
    assert result.exit_code == 0, result.output[-3000:]
    run_dir = (root / "out" / "interop").resolve()
    records = json.loads(CliRunner().invoke(main, ["show", str(run_dir), "--json"]).output)
    assert [r["status"] for r in records] == ["finished", "finished"]
    return run_dir, {r["trial_id"]: r for r in records}


# -- Ray Tune -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_experiment_analysis_reads_the_trials_and_their_metrics(sweep):
    from ray.tune import ExperimentAnalysis

    run_dir, records = sweep
    analysis = ExperimentAnalysis(str(run_dir))

    trials = {trial.trial_id: trial for trial in analysis.trials}
    assert trials.keys() == records.keys()
    for trial_id, trial in trials.items():
        record = records[trial_id]
        assert trial.status == "TERMINATED"
        assert trial.config == record["swept"]
        assert Path(trial.path).parent == run_dir  # the trial directories gensweep made
        assert trial.last_result["epoch"] == 2
        for metric in ("val/loss", "val/recon", "val/kl", "train/loss"):
            assert trial.last_result[metric] == record["metrics"][metric], (trial_id, metric)
    frame = analysis.dataframe().set_index("trial_id")  # one row a trial, as the README shows it
    assert frame[OBJECTIVE].to_dict() == {t: r["metrics"][OBJECTIVE] for t, r in records.items()}
    assert frame["config/model.latent_dim"].to_dict() == {t: r["swept"]["model.latent_dim"] for t, r in records.items()}
    best = analysis.get_best_trial(OBJECTIVE, "min")
    assert best.trial_id == min(records, key=lambda t: records[t]["metrics"][OBJECTIVE])


def _restored_results(run_dir: Path) -> dict[str, dict]:
    """What a user gets from Tuner.restore(run_dir, trainable=run_trial).get_results(): metrics
    by trial id. The trainable is only checked by name ('run_trial', gensweep's); get_results()
    runs nothing and needs no Ray."""
    from ray import tune

    from runner.sweep.trial import run_trial

    results = tune.Tuner.restore(str(run_dir), trainable=run_trial).get_results()
    assert not results.errors
    return {result.metrics["trial_id"]: {"config": result.config, "path": result.path, **result.metrics}
            for result in results}


@pytest.mark.slow
def test_tuner_restore_lists_the_same_trials(sweep):
    run_dir, records = sweep
    restored = _restored_results(run_dir)

    assert restored.keys() == records.keys()
    for trial_id, result in restored.items():
        assert result["config"] == records[trial_id]["swept"]
        assert Path(result["path"]).parent == run_dir
        assert result[OBJECTIVE] == records[trial_id]["metrics"][OBJECTIVE]


@pytest.mark.slow
def test_tuner_restore_reads_a_moved_run_directory(sweep):
    # Tune's tuner.pkl holds the Optuna storage at the path the run was made in: unpickled there,
    # it failed ("unable to open database file") once the directory moved.
    run_dir, records = sweep
    moved = run_dir.parent / "moved"
    run_dir.rename(moved)
    try:
        restored = _restored_results(moved)
        assert not run_dir.exists()  # no optuna.db made at the old path
    finally:
        moved.rename(run_dir)
    assert {trial_id: result[OBJECTIVE] for trial_id, result in restored.items()} == {
        trial_id: record["metrics"][OBJECTIVE] for trial_id, record in records.items()
    }
    assert {Path(result["path"]).parent for result in restored.values()} == {moved}


def test_a_study_storage_unpickled_after_its_directory_moved_says_so_when_used(tmp_path):
    import optuna

    from runner.sweep.tune_state import RunDirStorage, StudyError

    (tmp_path / "run").mkdir()
    optuna.create_study(study_name="s", storage=RunDirStorage(tmp_path / "run"))  # creates run/optuna.db
    pickled = pickle.dumps(RunDirStorage(tmp_path / "run"))
    (tmp_path / "run").rename(tmp_path / "moved")

    storage = pickle.loads(pickled)  # no connection, no file made at the old path
    assert not (tmp_path / "run").exists()
    with pytest.raises(StudyError, match=r"run/optuna.db: not there .*gensweep resume"):
        storage.get_all_studies()


# -- optuna-dashboard ---------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


def _get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def _wait_for_server(url: str, server: subprocess.Popen, seconds: float = 60) -> dict:
    deadline = time.time() + seconds
    while True:
        try:
            return _get_json(url)
        except (urllib.error.URLError, ConnectionError):
            assert server.poll() is None, f"optuna-dashboard exited ({server.returncode}): {server.stdout.read()}"
            assert time.time() < deadline, f"optuna-dashboard did not answer {url} within {seconds:.0f} s"
            time.sleep(0.1)


@pytest.mark.slow
def test_optuna_dashboard_serves_the_study(sweep):
    run_dir, records = sweep
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [OPTUNA_DASHBOARD, f"sqlite:///{run_dir / 'optuna.db'}", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        studies = _wait_for_server(f"{base}/api/studies", server)["study_summaries"]
        assert [(s["study_name"], s["directions"]) for s in studies] == [("interop", ["minimize"])]
        study = _get_json(f"{base}/api/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert study["name"] == "interop"
    served = {
        int(next(p["param_external_value"] for p in trial["params"] if p["name"] == "model.latent_dim")):
            (trial["state"], trial["values"])
        for trial in study["trials"]
    }
    assert served == {
        record["swept"]["model.latent_dim"]: ("Complete", [record["metrics"][OBJECTIVE]]) for record in records.values()
    }
