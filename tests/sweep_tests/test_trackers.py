"""tune.loggers: real sweeps logged to MLflow (its SQLite store in the run directory, read back
with MLflow's own client) and to W&B (offline, read back from the run's .wandb file), a resumed
sweep logging on into the same runs, and a tracker that cannot be used refused in one line
before Ray starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
import yaml
from sweeps import end_if_running, start_run, wait_for
from wandbreader import config_of, history, run_info

ROOT = Path(__file__).resolve().parents[2]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")
EPOCH_METRICS = ("train/loss", "val/loss", "val/recon", "val/kl")  # the VAE's, reported every epoch
# No key, no network: W&B offline whatever the machine's settings; MLflow's store in the run.
OFFLINE = {"WANDB_MODE": "offline", "WANDB_API_KEY": "", "WANDB_SILENT": "true"}


def _write_spec(tmp_path: Path, name: str, search: dict, epochs: int, loggers: list[str]) -> Path:
    spec = {
        "name": name,
        "model": {"name": "vae", "hidden_dim": 32},
        "data": {"name": "digits", "train_size": 512, "val_size": 64},
        "train": {"epochs": epochs, "batch_size": 64, "log_every": 4},
        "search": search,
        "quality": {"every": 0},
        "tune": {"loggers": loggers},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "s.yaml"


def _environment(**extra: str) -> dict[str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "WANDB_"))}
    return environment | OFFLINE | {"PYTHONPATH": str(ROOT)} | extra


def _mlflow_runs(run_dir: Path):
    import mlflow

    uri = f"sqlite:///{run_dir / 'mlflow.db'}"
    # set_tracking_uri also sets MLFLOW_TRACKING_URI, which a sweep this process starts later
    # would honour (and log into this run's store): put back as it was.
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[run_dir.name]), mlflow.MlflowClient(uri)
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if before is not None:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _metric_steps(client, run_id: str, metric: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, metric))


def _artifact_image(client, run_id: str, artifact: str, tmp_path: Path):
    import mlflow

    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(tmp_path / run_id),
                                                tracking_uri=client.tracking_uri)
    return cv2.imread(local)


def _wandb_runs(run_dir: Path) -> dict[str, list[Path]]:
    """Each trial id's .wandb files, in the order they were written (a resumed trial has two)."""
    runs: dict[str, list[Path]] = {}
    for file in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        runs.setdefault(file.stem.removeprefix("run-"), []).append(file)
    return runs


@pytest.mark.slow
def test_each_trial_is_one_mlflow_run_and_one_wandb_run(tmp_path):
    _write_spec(tmp_path, "tracked", {"model.latent_dim": {"grid": [2, 4]}}, epochs=2, loggers=["mlflow", "wandb"])
    result = subprocess.run([GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path, env=_environment(),
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "out" / "tracked"
    # Where each tracker logs, one line each, before the sweep.
    assert f"gensweep: mlflow: experiment tracked at sqlite:///{run_dir / 'mlflow.db'}" in result.stdout
    assert f"gensweep: wandb: offline (WANDB_MODE), group tracked, files in {run_dir / 'wandb'}" in result.stdout
    trial_dirs = {json.loads(path.read_text())["trial_id"]: path.parent for path in run_dir.glob("*/gensweep.json")}
    records = {trial_id: json.loads((path / "gensweep.json").read_text()) for trial_id, path in trial_dirs.items()}
    assert len(records) == 2

    runs, client = _mlflow_runs(run_dir)
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}
    assert set(runs["tags.gensweep.run"]) == {"tracked"}
    for _, run in runs.iterrows():
        record = records[run["tags.gensweep.trial_id"]]
        assert run["tags.mlflow.runName"] == trial_dirs[run["tags.gensweep.trial_id"]].name  # latent_dim=2_<id>
        assert run["params.model.latent_dim"] == str(record["swept"]["model.latent_dim"])
        for metric in EPOCH_METRICS:
            assert _metric_steps(client, run.run_id, metric) == [1, 2], metric
            assert run[f"metrics.{metric}"] == pytest.approx(record["metrics"][metric])  # the last epoch's
        assert [a.path for a in client.list_artifacts(run.run_id, "samples")] == ["samples/epoch_001.png", "samples/epoch_002.png"]
        image = _artifact_image(client, run.run_id, "samples/epoch_002.png", tmp_path)
        on_disk = cv2.imread(str(trial_dirs[run["tags.gensweep.trial_id"]] / "samples.png"))
        assert image is not None and image.shape[2] == 3 and image.shape[:2] == on_disk.shape[:2]
        assert (image == on_disk).all()  # the last epoch's grid, the very picture the trial left
    # No checkpoint went along: the artifacts are the grids alone.
    assert not list((run_dir / "mlartifacts").rglob("*.pt")) and not list((run_dir / "mlartifacts").rglob("checkpoint_*"))

    wandb_runs = _wandb_runs(run_dir)
    assert sorted(wandb_runs) == sorted(records)
    for trial_id, (file,) in wandb_runs.items():
        info = run_info(file)
        assert (info.run_group, info.project, info.display_name) == ("tracked", "gensweep", trial_dirs[trial_id].name)
        assert config_of(info)["model.latent_dim"] == records[trial_id]["swept"]["model.latent_dim"]
        logged = history(file)
        assert [entry["epoch"] for entry in logged] == [1, 2]
        for metric in EPOCH_METRICS:
            assert all(isinstance(entry[metric], float) for entry in logged), metric
        assert logged[-1]["val/loss"] == pytest.approx(records[trial_id]["metrics"]["val/loss"])
        # Each epoch's grid as a W&B image, its file in the offline run's media.
        for entry in logged:
            grid = cv2.imread(str(file.parent / "files" / entry["samples/path"]))
            assert grid is not None and grid.shape[:2] == (entry["samples/height"], entry["samples/width"])


@pytest.mark.slow
def test_a_resumed_sweep_logs_on_into_the_same_runs(tmp_path):
    # One trial of 1 epoch, one of 16: interrupted once the short one is done and the long one has
    # a checkpoint (as tests/sweep_tests/test_interrupts.py does), then resumed to its end.
    _write_spec(tmp_path, "again", {"train.epochs": {"grid": [1, 16]}}, epochs=16, loggers=["mlflow", "wandb"])
    run_dir = tmp_path / "out" / "again"
    os.environ.update(OFFLINE)  # start_run's process inherits it; restored below
    try:
        process = start_run(tmp_path, "s.yaml", "--storage-path", "out")
        try:
            wait_for(lambda: "1/2 done" in (tmp_path / "run.log").read_text(), "the 1-epoch trial to finish", process)
            # Tune keeps the latest two checkpoints: the fourth epoch's or a later one
            wait_for(lambda: list(run_dir.glob("epochs=16_*/checkpoint_00000[3-9]")), "4 epochs of the long trial", process)
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=300) == 130, (tmp_path / "run.log").read_text()[-3000:]
        finally:
            end_if_running(process)
    finally:
        for key in OFFLINE:
            os.environ.pop(key, None)
    runs, client = _mlflow_runs(run_dir)
    long_run = runs[runs["params.train.epochs"] == "16"].iloc[0]
    interrupted_at = _metric_steps(client, long_run.run_id, "val/loss")
    assert 3 <= len(interrupted_at) < 16

    resumed = subprocess.run([GENSWEEP, "resume", str(run_dir)], env=_environment(), capture_output=True, text=True,
                             timeout=600, check=False)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert f"gensweep: mlflow: experiment again at sqlite:///{run_dir / 'mlflow.db'}" in resumed.stdout

    runs, client = _mlflow_runs(run_dir)
    assert len(runs) == 2 and set(runs["status"]) == {"FINISHED"}  # the same two runs, not a third
    long_run = runs[runs["params.train.epochs"] == "16"].iloc[0]
    # Every epoch logged, the resume's after the run's (an epoch the interrupt cut short, after
    # its result reached the tracker, is trained and logged again: at most one such).
    steps = _metric_steps(client, long_run.run_id, "val/loss")
    assert sorted(set(steps)) == list(range(1, 17)) and len(steps) - 16 <= 1
    artifacts = [a.path for a in client.list_artifacts(long_run.run_id, "samples")]
    assert artifacts == [f"samples/epoch_{epoch:03d}.png" for epoch in range(1, 17)]
    assert _artifact_image(client, long_run.run_id, "samples/epoch_016.png", tmp_path) is not None

    # W&B: the resumed trial logs on under its id, in a second offline run of the same group.
    long_id = long_run["tags.gensweep.trial_id"]
    files = _wandb_runs(run_dir)[long_id]
    assert len(files) == 2 and {run_info(file).run_group for file in files} == {"again"}
    epochs = [entry["epoch"] for file in files for entry in history(file)]
    assert sorted(set(epochs)) == list(range(1, 17)) and epochs[-1] == 16


PROBE = """
import sys
import runner.cli as cli
try:
    cli.main(sys.argv[1:])
finally:
    print("RAY IMPORTED" if "ray" in sys.modules else "NO RAY", file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_missing_package_is_one_line_before_ray_starts(tmp_path, command):
    # A module named mlflow first on the path that fails to import, as a missing one does.
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "mlflow.py").write_text("raise ImportError('No module named mlflow')\n")
    _write_spec(tmp_path, "missing", {"model.latent_dim": {"grid": [2, 4]}}, epochs=1, loggers=["wandb", "mlflow"])
    result = subprocess.run([sys.executable, "-c", PROBE, command, "s.yaml", *(["--storage-path", "out"] * (command == "run"))],
                            cwd=tmp_path, env=_environment(PYTHONPATH=f"{shim}:{ROOT}"), capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line != "NO RAY"]
    missing = "error: tune.loggers: mlflow: the mlflow package does not import (No module named mlflow); "
    assert errors == [missing + "pip install 'gensweep[mlflow]'"], result.stderr
    assert result.stderr.splitlines()[-1] == "NO RAY"  # Ray not started, not even imported
    assert not (tmp_path / "out").exists()  # and no run directory made


def test_an_mlflow_server_that_does_not_answer_is_one_line_before_ray_starts(tmp_path):
    import socket

    with socket.socket() as unused:  # a port nothing listens on: bound, never listening
        unused.bind(("127.0.0.1", 0))
        address = f"http://127.0.0.1:{unused.getsockname()[1]}"
        _write_spec(tmp_path, "server", {"model.latent_dim": {"grid": [2, 4]}}, epochs=1, loggers=["mlflow"])
        result = subprocess.run([sys.executable, "-c", PROBE, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path,
                                env=_environment(MLFLOW_TRACKING_URI=address), capture_output=True, text=True,
                                timeout=120, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line != "NO RAY"]
    assert len(errors) == 1 and errors[0].startswith(f"error: tune.loggers: mlflow: no MLflow server answers at {address}")
    assert result.stderr.splitlines()[-1] == "NO RAY"
    assert not list((tmp_path / "out").glob("*"))  # the claimed run directory given back


def test_loggers_is_a_closed_list_empty_by_default(tmp_path):
    from runner.spec import SpecError, load_spec

    path = _write_spec(tmp_path, "closed", {"model.latent_dim": {"grid": [2, 4]}}, epochs=1, loggers=["mlflow"])
    assert load_spec(path, []).tune.loggers == ["mlflow"]
    with pytest.raises(SpecError, match="tune.loggers.*Input should be 'mlflow' or 'wandb'"):
        load_spec(path, ["tune.loggers=[mlflow, tensorboard]"])
    document = yaml.safe_load(path.read_text())
    del document["tune"]
    path.write_text(yaml.safe_dump(document))
    assert load_spec(path, []).tune.loggers == []


@pytest.mark.parametrize("environment, mode", [
    # No key anywhere (HOME without a netrc): nothing goes online unasked. (With a key W&B goes
    # online, and its usage metrics ask its server at exit: not a test for a machine offline.)
    ({}, "offline"),
    ({"WANDB_API_KEY": "k" * 40, "WANDB_MODE": "offline"}, "offline"),
    ({"WANDB_MODE": "disabled"}, "disabled"),
])
def test_wandb_is_offline_unless_a_key_is_configured_or_wandb_mode_says(tmp_path, environment, mode):
    probe = "from runner.sweep.trackers import wandb_mode; print(wandb_mode()[0])"
    clean = {key: value for key, value in _environment().items() if not key.startswith("WANDB_")}
    result = subprocess.run([sys.executable, "-c", probe], env=clean | {"HOME": str(tmp_path), **environment},
                            capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.split() == [mode]
