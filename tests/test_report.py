"""Reading a run directory back: records, statuses after Tune returns, best trial, table."""

from __future__ import annotations

import json

import cv2
import numpy as np

from runner.report import SWEEP_FILE, collect, comparison_image, format_table
from runner.sweep import finish_records


def _trial(run_dir, name, status, latent, recon, error=None):
    directory = run_dir / name
    directory.mkdir(parents=True)
    record = {"trial_id": name[-4:], "status": status, "swept": {"model.latent_dim": latent},
              "config": {"model.latent_dim": latent}, "metrics": {"val/recon": recon}, "epoch": 3, "error": error}
    (directory / "gensweep.json").write_text(json.dumps(record))
    return directory


def test_statuses_after_tune_returns_and_the_best_trial(tmp_path):
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"metrics": ["val/recon"], "modes": ["min"]}))
    _trial(tmp_path, "latent_dim=8_aaaa", "finished", 8, 80.0)
    _trial(tmp_path, "latent_dim=4_bbbb", "finished", 4, 95.0)
    _trial(tmp_path, "latent_dim=2_cccc", "running", 2, 60.0)  # lower, but never finished
    _trial(tmp_path, "latent_dim=16_dddd", "running", 16, 70.0)
    _trial(tmp_path, "latent_dim=32_eeee", "running", 32, 75.0)
    trials = finish_records(tmp_path, {"latent_dim=16_dddd": "RayActorError: the worker died"}, {"latent_dim=32_eeee"})
    by_latent = {t.swept["model.latent_dim"]: t for t in trials}
    assert [t.swept["model.latent_dim"] for t in trials] == [2, 4, 8, 16, 32]  # sorted by value
    assert by_latent[32].status == "stopped"
    assert by_latent[2].status == "interrupted"
    assert by_latent[16].status == "error" and by_latent[16].error == "RayActorError: the worker died"
    assert [t.best for t in trials] == [False, False, True, False, False]
    table = format_table(collect(tmp_path), ["val/recon"]).splitlines()
    assert table[0].split()[:4] == ["trial", "latent_dim", "status", "epochs"]
    assert table[3].startswith("*") and "80" in table[3]
    assert "error: RayActorError: the worker died" in table[4]


def test_comparison_image_labels_each_trial(tmp_path):
    for index, latent in enumerate((2, 4)):
        directory = _trial(tmp_path, f"latent_dim={latent}_{index:04d}", "finished", latent, 1.0)
        cv2.imwrite(str(directory / "samples.png"), np.full((50, 50, 3), 128 * index, np.uint8))
    image = comparison_image(collect(tmp_path), "samples.png", scale=2)
    assert image.shape[1] == 2 * 100 + 12 and image.shape[0] > 100  # caption strip on top
    assert image[-1, :100].mean() == 0 and image[-1, -100:].mean() == 128


def test_pareto_front_of_two_objectives():
    from runner.report import TrialSummary, mark_best

    def trial(name, recon, fd, status="finished"):
        return TrialSummary(name, status, {}, {}, {"val/recon": recon, "val/fd": fd}, "")

    trials = [trial("a", 1, 9), trial("b", 2, 5), trial("c", 3, 6), trial("d", 4, 1), trial("e", 0, 0, "error")]
    mark_best(trials, ["val/recon", "val/fd"], ["min", "min"])
    assert [t.pareto for t in trials] == [True, True, False, True, False]  # c is beaten by b
    mark_best(trials, ["val/recon", "val/fd"], ["max", "max"])
    assert [t.trial_id for t in trials if t.pareto] == ["a", "c", "d"]  # b is now beaten by c
    assert not any(t.best for t in trials)
