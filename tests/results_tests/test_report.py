"""Reading a run directory back: records, statuses after Tune returns, best trial, table, sort, CSV."""

from __future__ import annotations

import csv
import io
import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.results.report import (
    SWEEP_FILE,
    TABLE_METRICS,
    ReportError,
    TrialSummary,
    collect,
    comparison_image,
    format_table,
    load_run,
    sort_trials,
)
from runner.sweep.driver import finish_records


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


def test_a_trial_tune_completed_at_its_last_epoch_is_finished(tmp_path):
    # A scheduler's max_t ends a trial at its last report, before the trial can mark itself
    # finished (it does so only once Tune has that report): the driver does, from Tune's word.
    (tmp_path / SWEEP_FILE).write_text(json.dumps({"metrics": ["val/recon"], "modes": ["min"]}))
    for name, epochs in (("latent_dim=2_aaaa", 3), ("latent_dim=4_bbbb", 5), ("latent_dim=8_cccc", 3)):
        directory = _trial(tmp_path, name, "running", int(name.split("=")[1][0]), 1.0)  # at epoch 3
        record = json.loads((directory / "gensweep.json").read_text())
        (directory / "gensweep.json").write_text(json.dumps({**record, "config": {"train.epochs": epochs}}))
    trials = finish_records(tmp_path, {}, {"latent_dim=2_aaaa", "latent_dim=4_bbbb"})
    assert [t.status for t in trials] == ["finished", "stopped", "interrupted"]


def test_a_record_left_interrupted_of_a_trial_tune_completed_is_put_right(tmp_path):
    # A second Ctrl-C (or a full disk) cut the last sweep short before the records were final;
    # its resume finds Tune's word that the trial had completed, and says so.
    from runner.sweep.records import mark_completed

    for name, epochs in (("latent_dim=2_aaaa", 3), ("latent_dim=4_bbbb", 3), ("latent_dim=8_cccc", 5)):
        directory = _trial(tmp_path, name, "interrupted", int(name.split("=")[1][0]), 1.0)  # at epoch 3
        record = json.loads((directory / "gensweep.json").read_text())
        (directory / "gensweep.json").write_text(json.dumps({**record, "config": {"train.epochs": epochs}}))
    trials = finish_records(tmp_path, {}, {"latent_dim=2_aaaa"})
    assert [t.status for t in trials] == ["finished", "interrupted", "interrupted"]
    mark_completed(tmp_path / "latent_dim=8_cccc" / "gensweep.json")  # the driver, as Tune completes it
    assert [t.status for t in collect(tmp_path)] == ["finished", "interrupted", "stopped"]


def test_comparison_image_labels_each_trial(tmp_path):
    for index, latent in enumerate((2, 4)):
        directory = _trial(tmp_path, f"latent_dim={latent}_{index:04d}", "finished", latent, 1.0)
        cv2.imwrite(str(directory / "samples.png"), np.full((50, 50, 3), 128 * index, np.uint8))
    image = comparison_image(collect(tmp_path), "samples.png", scale=2)
    assert image.shape[1] == 2 * 100 + 12 and image.shape[0] > 100  # caption strip on top
    assert image[-1, :100].mean() == 0 and image[-1, -100:].mean() == 128


def test_pareto_front_of_two_objectives():
    from runner.results.run_view import RunView, mark_best

    def trial(name, recon, fd, status="finished"):
        return TrialSummary(name, status, {}, {}, {"val/recon": recon, "val/fd": fd}, "")

    trials = [trial("a", 1, 9), trial("b", 2, 5), trial("c", 3, 6), trial("d", 4, 1), trial("e", 0, 0, "error")]
    mark_best(trials, ["val/recon", "val/fd"], ["min", "min"])
    assert [t.pareto for t in trials] == [True, True, False, True, False]  # c is beaten by b
    assert [RunView.mark(t) for t in trials] == ["P", "P", "", "P", ""]
    mark_best(trials, ["val/recon", "val/fd"], ["max", "max"])
    assert [t.trial_id for t in trials if t.pareto] == ["a", "c", "d"]  # b is now beaten by c
    assert not any(t.best for t in trials)


def test_one_model_gives_the_table_csv_and_page_their_columns():
    from runner.results.run_view import run_view

    others = [f"val/m{i}" for i in range(6)]
    metrics = {"val/recon": 1.0, "train/loss": 2.0, **{name: float(i) for i, name in enumerate(others)}}
    trials = [TrialSummary("a", "finished", {"train.lr": 0.1, "model.beta": 0.5}, {}, metrics, "")]
    objectives = ["val/recon", "val/fid"]  # val/fid: no trial reports it yet
    table = run_view(trials, objectives, ["min", "max"], most=TABLE_METRICS)
    assert table.swept == ["model.beta", "train.lr"] and table.headers == ["beta", "lr"]
    assert table.metrics == ["val/recon", "val/fid", *others[:TABLE_METRICS]]
    assert table.cells(trials[0]) == (["0.5", "0.1"], ["1", "-", "0", "1", "2", "3"])
    assert table.objective_text == "val/recon (min), val/fid (max)"
    assert table.scored == [] and table.legend.startswith("P: on the Pareto front")  # val/fid missing: unscored
    assert run_view(trials, objectives).metrics == ["val/recon", "val/fid", *others]  # the HTML page: every val/ one
    data = run_view(trials, objectives, every_metric=True)  # the CSV: every reported metric
    assert data.metrics == ["val/recon", "train/loss", *others]
    assert data.values(trials[0]) == [0.5, 0.1, 1.0, 2.0, *range(6)]


def _scored_run(run_dir):
    """Four finished-or-not trials of a two-objective sweep: val/recon (min), val/psnr (max)."""
    (run_dir / SWEEP_FILE).write_text(json.dumps({"metrics": ["val/recon", "val/psnr"], "modes": ["min", "max"]}))
    for latent, recon, psnr, fd in ((2, 30.0, 21.5, 7.0), (4, 10.0, 20.0, None), (8, 20.0, 25.0, 5.0), (16, None, None, 9.0)):
        directory = run_dir / f"latent_dim={latent}_{latent:04d}"
        directory.mkdir()
        metrics = {name: value for name, value in (("val/recon", recon), ("val/psnr", psnr), ("val/fd", fd)) if value is not None}
        record = {"trial_id": f"{latent:04d}", "status": "finished" if recon else "error", "swept": {"model.latent_dim": latent},
                  "metrics": metrics, "error": None if recon else "ValueError: boom"}
        (directory / "gensweep.json").write_text(json.dumps(record))


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("val/recon", ["0004", "0008", "0002", "0016"]),  # an objective to minimize; 16 has none: last
        ("val/psnr", ["0008", "0002", "0004", "0016"]),  # an objective to maximize: highest first
        ("val/fd", ["0008", "0002", "0016", "0004"]),  # not an objective: ascending; 4 has none: last
    ],
)
def test_sort_trials_follows_the_objective_direction(tmp_path, metric, expected):
    _scored_run(tmp_path)
    run = load_run(tmp_path)
    assert [t.trial_id for t in sort_trials(run.trials, metric, run.objectives, run.modes)] == expected


def test_sort_by_an_unknown_metric_names_the_known_ones(tmp_path):
    _scored_run(tmp_path)
    with pytest.raises(ReportError, match=r"no trial reports this metric \(known: val/fd, val/psnr, val/recon\)"):
        sort_trials(load_run(tmp_path).trials, "val/fid")


def test_show_sort_top_and_csv(tmp_path):
    _scored_run(tmp_path)
    result = CliRunner().invoke(main, ["show", str(tmp_path), "--csv", "--sort", "val/psnr", "--top", "2"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert list(rows[0]) == ["trial_id", "status", "model.latent_dim", "val/recon", "val/psnr", "val/fd"]
    assert [(r["trial_id"], r["model.latent_dim"], float(r["val/psnr"])) for r in rows] == [("0008", "8", 25.0), ("0002", "2", 21.5)]
    everything = list(csv.DictReader(io.StringIO(CliRunner().invoke(main, ["show", str(tmp_path), "--csv"]).output)))
    assert [r["trial_id"] for r in everything] == ["0002", "0004", "0008", "0016"]  # by swept value
    assert everything[1]["val/fd"] == "" and everything[3]["status"] == "error"  # missing: an empty cell

    table = CliRunner().invoke(main, ["show", str(tmp_path), "--sort", "val/recon", "--top", "1"]).output.splitlines()
    assert len(table) == 2 and table[1].split()[:3] == ["P", "0004", "4"]  # header and the best; marks kept
    shown = json.loads(CliRunner().invoke(main, ["show", str(tmp_path), "--json", "--sort", "val/fd"]).output)
    assert [t["trial_id"] for t in shown] == ["0008", "0002", "0016", "0004"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sort", "val/fid"], "error: --sort val/fid: no trial reports this metric (known: val/fd, val/psnr, val/recon)"),
        (["--csv", "--json"], "error: --json and --csv: choose one"),
        (["--top", "0"], None),  # click's own range check: exit 2 too
    ],
)
def test_show_refuses_bad_options_in_one_line(tmp_path, args, message):
    _scored_run(tmp_path)
    result = CliRunner().invoke(main, ["show", str(tmp_path), *args])
    assert result.exit_code == 2
    assert result.stderr == message + "\n" if message else "'--top'" in result.stderr


def test_show_on_a_directory_that_is_no_run(tmp_path):
    result = CliRunner().invoke(main, ["show", str(tmp_path)])
    assert result.exit_code == 2 and result.stderr == f"error: {tmp_path}: not a gensweep run directory (no sweep.json, no trials)\n"
