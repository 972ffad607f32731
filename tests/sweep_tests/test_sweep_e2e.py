"""End to end through the installed command: a real Ray runtime, real Optuna, real event files."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from tbreader import hparams_of, read_events

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
pytestmark = pytest.mark.slow

TINY_SWEEP = {
    "name": "tiny_latent",
    "model": {"name": "vae", "arch": "mlp", "hidden_dim": 64},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 2, "batch_size": 64, "steps_per_epoch": 2, "log_every": 1},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "tune": {"metric": "val/recon", "mode": "min"},
}


def _gensweep(*args, cwd):
    return subprocess.run([GENSWEEP, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    result = _gensweep("run", "tiny.yaml", "--storage-path", "out", cwd=root)
    return root, result


def test_run_finishes_every_trial_and_prints_the_summary(finished_sweep):
    _, result = finished_sweep
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "3 of 3 trials finished" in result.stdout
    assert "tensorboard --logdir out/tiny_latent" in result.stdout
    table = result.stdout[result.stdout.index("latent_dim  status") :].splitlines()
    assert sum(line.startswith("*") for line in table[1:4]) == 1  # exactly one best trial marked


def test_progress_is_one_gensweep_line_not_rays_pages(finished_sweep):
    _, result = finished_sweep
    progress = [line for line in result.stdout.splitlines() if re.match(r"gensweep: \d+/3 done", line)]
    assert progress and progress[-1].startswith("gensweep: 3/3 done, 0 running, 0 failed | best val/recon ")
    assert any("left" in line for line in progress[:-1])  # an estimate while trials remained
    everything = result.stdout + result.stderr
    for noise in ("Trial status", "Configuration for experiment", "View detailed results", "Token authentication",
                  "(run_trial pid="):  # the last: worker output copied to the driver
        assert noise not in everything, noise


def test_show_json_lists_each_trial(finished_sweep):
    root, _ = finished_sweep
    result = _gensweep("show", "out/tiny_latent", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    trials = json.loads(result.stdout)
    assert sorted(t["config"]["model.latent_dim"] for t in trials) == [2, 4, 8]
    for trial in trials:
        assert {"trial_id", "status", "config", "metrics", "logdir"} <= set(trial)
        assert trial["status"] == "finished" and trial["epoch"] == 2
        assert trial["config"]["train.epochs"] == 2 and trial["config"]["model.hidden_dim"] == 64
        assert set(trial["metrics"]) >= {"val/recon", "val/kl", "val/loss", "val/active_units", "train/loss"}
        assert Path(trial["logdir"]).is_dir()
    assert sum(t["best"] for t in trials) == 1
    best = next(t for t in trials if t["best"])
    assert best["metrics"]["val/recon"] == min(t["metrics"]["val/recon"] for t in trials)


def test_every_trial_has_scalars_images_and_hparams(finished_sweep):
    root, _ = finished_sweep
    trials = json.loads(_gensweep("show", "out/tiny_latent", "--json", cwd=root).stdout)
    for trial in trials:
        events = read_events(Path(trial["logdir"]))
        assert {"train/loss", "val/recon", "val/kl", "train_step/loss"} <= set(events.Tags()["scalars"])
        assert [e.value for e in events.Scalars("train/epoch")] == [1, 2]
        assert len(events.Scalars("val/recon")) == 2 and {"val/fd", "val/kid"} <= set(events.Tags()["scalars"])
        expected_images = {"samples", "reconstruction"} | ({"manifold"} if trial["config"]["model.latent_dim"] == 2 else set())
        assert set(events.Tags()["images"]) == expected_images
        records = hparams_of(events)
        start = next(r.session_start_info for r in records.values() if r.HasField("session_start_info"))
        assert start.hparams["model.latent_dim"].number_value == trial["config"]["model.latent_dim"]
        assert any(r.HasField("session_end_info") and r.session_end_info.status == 1 for r in records.values())


def test_the_sweep_level_comparison_image(finished_sweep):
    root, _ = finished_sweep
    run_dir = root / "out" / "tiny_latent"
    image = cv2.imread(str(run_dir / "comparison.png"))
    assert image is not None and image.shape[1] > 3 * 8 * 28  # three 8x8 grids side by side
    events = read_events(run_dir / "_comparison")
    assert events.Tags()["images"] == ["comparison/samples"]
    # TensorBoard's copy is the same picture, its size as TensorBoard reads it (no torch wrote it)
    (event,) = events.Images("comparison/samples")
    shown = cv2.imdecode(np.frombuffer(event.encoded_image_string, np.uint8), cv2.IMREAD_COLOR)
    assert (event.height, event.width) == image.shape[:2] and np.array_equal(shown, image)


def test_a_second_run_goes_into_its_own_directory_and_keep_checkpoints_bounds_each_trials_disk(finished_sweep):
    root, _ = finished_sweep
    result = _gensweep(
        "run", "tiny.yaml", "--storage-path", "out", "--keep-checkpoints", "1",
        "--set", "search.model.latent_dim={grid: [2]}", "--set", "train.epochs=4", cwd=root,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # The same spec again: a directory of its own, the first run untouched.
    assert "out/tiny_latent-2" in result.stdout and "1 of 1 trials finished" in result.stdout
    assert len(json.loads(_gensweep("show", "out/tiny_latent", "--json", cwd=root).stdout)) == 3
    (trial_dir,) = [p for p in (root / "out" / "tiny_latent-2").iterdir() if (p / "gensweep.json").exists()]
    assert sorted(p.name for p in trial_dir.glob("checkpoint_*")) == ["checkpoint_000003"]  # the last epoch's only
    # the default keeps two: the sweep above ran two epochs
    kept = {trial_dir.name: sorted(p.name for p in trial_dir.glob("checkpoint_*"))
            for trial_dir in (root / "out" / "tiny_latent").glob("latent_dim=*")}
    assert len(kept) == 3 and all(names == ["checkpoint_000000", "checkpoint_000001"] for names in kept.values()), kept


def test_tpe_with_asha_over_continuous_dimensions(tmp_path):
    spec = {
        "name": "tiny_tpe",
        "model": {"name": "vae", "hidden_dim": 32},
        "data": {"name": "digits", "train_size": 128, "val_size": 64},
        "train": {"epochs": 3, "batch_size": 64},
        "search": {"model.beta": {"uniform": [0.5, 2.0]}, "train.lr": {"loguniform": [1e-4, 1e-2]}},
        "tune": {"num_samples": 4, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2},
    }
    (tmp_path / "tpe.yaml").write_text(yaml.safe_dump(spec))
    result = _gensweep("run", "tpe.yaml", "--storage-path", "out", "-v", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "sampler tpe" in result.stdout
    assert "Trial status" in result.stdout and "done, " not in result.stdout  # -v: Ray's own output
    trials = json.loads(_gensweep("show", "out/tiny_tpe", "--json", cwd=tmp_path).stdout)
    assert len(trials) == 4 and len({t["swept"]["model.beta"] for t in trials}) == 4
    for trial in trials:
        assert 0.5 <= trial["swept"]["model.beta"] <= 2.0 and 1e-4 <= trial["swept"]["train.lr"] <= 1e-2
        assert trial["config"]["model.beta"] == trial["swept"]["model.beta"]  # the sampled value is used
        assert trial["status"] in ("finished", "stopped")
        assert (trial["status"] == "finished") == (trial["epoch"] == 3)


def test_trials_sharing_a_process_keep_their_own_files(tmp_path):
    """More trials than slots: Tune runs trial after trial in one process (reuse_actors), and
    ASHA stops some of them inside tune.report. Every trial's record, event files, samples and
    checkpoints are still complete, and in its own directory only."""
    spec = {
        **TINY_SWEEP,
        "name": "shared_processes",
        "search": {"model.latent_dim": {"grid": [2, 3, 4, 5]}},
        "quality": {"every": 0},
        "tune": {**TINY_SWEEP["tune"], "max_concurrent": 2, "scheduler": "asha", "grace_period": 1,
                 "reduction_factor": 2},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = _gensweep("run", "s.yaml", "--storage-path", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    run_dir = tmp_path / "out" / "shared_processes"
    trial_dirs = sorted(path.parent for path in run_dir.glob("*/gensweep.json"))
    records = {trial_dir: json.loads((trial_dir / "gensweep.json").read_text()) for trial_dir in trial_dirs}
    assert sorted(r["swept"]["model.latent_dim"] for r in records.values()) == [2, 3, 4, 5]
    pids = [r["pid"] for r in records.values()]
    assert len(set(pids)) < len(pids), pids  # some process ran more than one trial
    for trial_dir, record in records.items():
        assert trial_dir.name.endswith(record["trial_id"])
        assert record["status"] in ("finished", "stopped") and (record["status"] == "finished") == (record["epoch"] == 2)
        assert len(list(trial_dir.glob("events.out.tfevents.*"))) == 1  # its own writer, nobody else's
        events = read_events(trial_dir)
        assert [e.value for e in events.Scalars("train/epoch")] == list(range(1, record["epoch"] + 1))
        start = next(r.session_start_info for r in hparams_of(events).values() if r.HasField("session_start_info"))
        assert start.hparams["model.latent_dim"].number_value == record["swept"]["model.latent_dim"]
        assert cv2.imread(str(trial_dir / "samples.png")) is not None
        assert len(list(trial_dir.glob("checkpoint_*"))) == record["epoch"]

    # Nothing carries over from a process's earlier trial (seeds, threads): a trial that ran
    # second in its process trains exactly as it does in a process of its own.
    later = max(records.values(), key=lambda r: (pids.count(r["pid"]) > 1, r["started"]))
    latent_dim = later["swept"]["model.latent_dim"]
    alone = _gensweep("run", "s.yaml", "--storage-path", "out", "--name", "alone", "--set", "tune.scheduler=none",
                      "--set", f"search.model.latent_dim={{grid: [{latent_dim}]}}", cwd=tmp_path)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    (alone_dir,) = [path.parent for path in (tmp_path / "out" / "alone").glob("*/gensweep.json")]
    (later_dir,) = [trial_dir for trial_dir, record in records.items() if record is later]
    curve = lambda trial_dir: [e.value for e in read_events(trial_dir).Scalars("val/recon")]
    assert curve(alone_dir)[: later["epoch"]] == curve(later_dir)


def test_tensorboard_serves_every_trial_on_localhost(finished_sweep):
    import time
    import urllib.request

    root, _ = finished_sweep
    server = subprocess.Popen([GENSWEEP, "tensorboard", "out/tiny_latent", "--port", "0"], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().split()[3]  # "TensorBoard for DIR: http://127.0.0.1:PORT/ ..."
        assert url.startswith("http://127.0.0.1:")
        runs, deadline = [], time.time() + 60
        while len(runs) < 4:  # TensorBoard finds the runs in its first scan of the directory
            assert time.time() < deadline, f"TensorBoard lists {runs} after 60 s"
            try:
                runs = json.loads(urllib.request.urlopen(url + "data/runs", timeout=2).read())
            except OSError:
                pass
            time.sleep(0.2)
        trial_runs = [run for run in runs if run.startswith("latent_dim=")]
        assert len(trial_runs) == 3 and "_comparison" in runs
        tags = json.loads(urllib.request.urlopen(url + "data/plugin/scalars/tags", timeout=5).read())
        assert all("val/recon" in tags[run] for run in trial_runs)
        request = urllib.request.Request(
            url + "data/plugin/hparams/session_groups",
            data=json.dumps({"experimentName": "", "allowedStatuses": ["STATUS_SUCCESS"], "colParams": [],
                             "startIndex": 0, "sliceSize": 10}).encode(),
            headers={"Content-Type": "application/json"},
        )
        groups = json.loads(urllib.request.urlopen(request, timeout=10).read())["sessionGroups"]
        assert sorted(g["hparams"]["model.latent_dim"] for g in groups) == [2, 4, 8]
    finally:
        server.terminate()
        server.wait(timeout=30)
    # Nothing outlives the command: it became the server, rather than leave a child serving.
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)
