"""Damaged files in a run directory: `show`, `report` and `sample` name each damaged file in one
line and go on with the rest (a trial's record), or stop with one line naming it (a sweep.json
that `sample` needs). Never a traceback, never a trial that vanishes without a word."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from runner.cli import main

DOCUMENT = {
    "name": "damaged",
    "model": {"name": "vae", "latent_dim": 2, "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 2, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
    "quality": {"every": 0},
}


def _run_dir(tmp_path: Path) -> Path:
    """A finished run of three trials laid out as `gensweep run` leaves it (the fields of a real
    run's sweep.json and gensweep.json records, a samples.png each)."""
    run_dir = tmp_path / "damaged"
    run_dir.mkdir()
    (run_dir / "sweep.json").write_text(json.dumps({
        "name": "damaged", "run_name": "damaged", "source": "s.yaml", "metrics": ["val/loss"], "modes": ["min"],
        "document": DOCUMENT, "started": "2026-12-01T01:30:24",
    }, indent=2))
    for index, latent in enumerate((2, 4, 8)):
        trial_id = f"a{index}b2c3d4"
        directory = run_dir / f"latent_dim={latent}_{trial_id}"
        directory.mkdir()
        record = {
            "trial_id": trial_id, "status": "finished", "swept": {"model.latent_dim": latent},
            "config": {"model.name": "vae", "data.name": "digits", "model.latent_dim": latent, "train.epochs": 2},
            "metrics": {"train/loss": 540.0 - latent, "val/loss": 530.0 + latent, "val/recon": 529.0 + latent, "val/kl": 0.5},
            "epoch": 2, "error": None, "started": 1796088624.52, "updated": 1796088633.12,
            "node": "192.0.2.2:7e5cfa10", "gpus": [], "pid": 6883,
        }
        (directory / "gensweep.json").write_text(json.dumps(record, indent=2))
        picture = np.random.default_rng(index).integers(0, 256, (30, 40, 3), dtype=np.uint8)
        cv2.imwrite(str(directory / "samples.png"), picture)
    return run_dir


class _Result:
    """What the command printed, as a user sees it: stdout, stderr and the exit status."""

    def __init__(self, result):
        self.returncode, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)


def _gensweep(*arguments) -> _Result:
    return _Result(CliRunner().invoke(main, [str(argument) for argument in arguments]))


def _record_of(run_dir: Path, latent: int) -> Path:
    return next(run_dir.glob(f"latent_dim={latent}_*/gensweep.json"))


def _assert_shows_the_other_two(run_dir: Path, damaged: Path, why: str) -> None:
    """show and report: exit 0, one warning line naming the damaged file, the other trials in full."""
    shown = _gensweep("show", run_dir, "--json")
    assert shown.returncode == 0, shown.stderr[-3000:]
    warning = shown.stderr.splitlines()
    assert len(warning) == 1 and warning[0].startswith(f"warning: {damaged}: {why}"), shown.stderr
    assert warning[0].endswith("; trial left out")
    trials = json.loads(shown.stdout)
    assert sorted(t["swept"]["model.latent_dim"] for t in trials) == [2, 8]
    assert [t["best"] for t in trials] == [True, False]  # the best of what is left: latent 2
    table = _gensweep("show", run_dir)
    assert table.returncode == 0 and len(table.stdout.splitlines()) == 3  # header and two rows
    assert table.stderr == shown.stderr

    page = run_dir / "page.html"
    report = _gensweep("report", run_dir, "-o", page)
    assert report.returncode == 0, report.stderr[-3000:]
    assert report.stderr.splitlines() == warning
    html = page.read_text()
    assert "Damaged files, left out" in html and str(damaged) in html
    assert "2 of 2 trials finished" in html


def test_a_truncated_record_is_named_and_the_rest_shown(tmp_path):
    run_dir = _run_dir(tmp_path)
    record = _record_of(run_dir, 4)
    text = record.read_text()
    record.write_text(text[: len(text) // 2])  # a crash or a full disk in the middle of a write
    _assert_shows_the_other_two(run_dir, record, "damaged (not JSON: ")  # then the parser's own words


def test_an_empty_record_is_named_and_the_rest_shown(tmp_path):
    run_dir = _run_dir(tmp_path)
    record = _record_of(run_dir, 4)
    record.write_text("")
    _assert_shows_the_other_two(run_dir, record, "damaged (empty)")


@pytest.mark.parametrize(
    "field, value, expected",
    [
        ("metrics", [1, 2], "an object of numbers, got list [1, 2]"),
        ("metrics", {"val/loss": "low"}, 'an object of numbers, got dict {"val/loss": "low"}'),
        ("swept", "latent_dim=4", 'an object of swept values, got str "latent_dim=4"'),
        ("epoch", "2", 'a whole number, got str "2"'),
        ("trial_id", 17, "a trial id, got int 17"),
        ("gpus", "0", 'a list of GPU ids, got str "0"'),
        ("status", ["finished"], 'a status, got list ["finished"]'),
        ("updated", "yesterday", 'a time, got str "yesterday"'),
    ],
)
def test_a_record_with_a_field_of_the_wrong_kind_is_named_and_the_rest_shown(tmp_path, field, value, expected):
    run_dir = _run_dir(tmp_path)
    record = _record_of(run_dir, 4)
    fields = json.loads(record.read_text())
    fields[field] = value
    record.write_text(json.dumps(fields))
    _assert_shows_the_other_two(run_dir, record, f"damaged record ({field}: expected {expected})")
    sampled = _gensweep("sample", record.parent, "-o", tmp_path / "s.png")
    assert sampled.returncode == 2
    assert sampled.stderr.splitlines() == [f"error: {record}: damaged record ({field}: expected {expected})"]


def test_a_record_that_is_a_list_is_named(tmp_path):
    run_dir = _run_dir(tmp_path)
    record = _record_of(run_dir, 4)
    record.write_text("[1, 2, 3]")
    _assert_shows_the_other_two(run_dir, record, "damaged (expected a JSON object, got list [1, 2, 3])")


@pytest.mark.parametrize(
    "content, why",
    [
        ("[1, 2]", "damaged (expected a JSON object, got list [1, 2])"),
        ('{"name": "damaged", "met', "damaged (not JSON: "),
        ('{"metrics": "val/loss", "modes": ["min"], "document": {}}', 'damaged (metrics: expected a list of metric names, got str "val/loss")'),
        ('{"metrics": ["val/loss"], "modes": "min", "document": {}}', 'damaged (modes: expected \'min\' or \'max\' for each metric, got str "min")'),
        ('{"metrics": ["val/loss"], "modes": ["min"], "document": [1]}', "damaged (document: expected an object, got list [1])"),
    ],
)
def test_a_damaged_sweep_json_is_named_show_and_report_go_on_and_sample_stops(tmp_path, content, why):
    run_dir = _run_dir(tmp_path)
    (run_dir / "sweep.json").write_text(content)
    sweep = run_dir / "sweep.json"

    shown = _gensweep("show", run_dir, "--json")
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert len(shown.stderr.splitlines()) == 1 and shown.stderr.startswith(f"warning: {sweep}: {why}")
    trials = json.loads(shown.stdout)
    assert sorted(t["swept"]["model.latent_dim"] for t in trials) == [2, 4, 8]
    assert not any(t["best"] for t in trials)  # no objective known: none marked

    report = _gensweep("report", run_dir, "-o", run_dir / "page.html")
    assert report.returncode == 0, report.stderr[-3000:]
    assert len(report.stderr.splitlines()) == 1 and report.stderr.startswith(f"warning: {sweep}: {why}")
    assert "3 of 3 trials finished" in (run_dir / "page.html").read_text()

    # sample needs the spec in sweep.json to rebuild the model: it stops, naming the file.
    sampled = _gensweep("sample", next(run_dir.glob("latent_dim=2_*")), "-o", tmp_path / "s.png")
    assert sampled.returncode == 2
    assert len(sampled.stderr.splitlines()) == 1 and sampled.stderr.startswith(f"error: {sweep}: ")
    assert "Traceback" not in sampled.stderr and not (tmp_path / "s.png").exists()


def test_a_damaged_samples_picture_is_named_and_the_report_written(tmp_path):
    run_dir = _run_dir(tmp_path)
    picture = _record_of(run_dir, 4).parent / "samples.png"
    picture.write_bytes(picture.read_bytes()[:10])
    report = _gensweep("report", run_dir, "-o", run_dir / "page.html")
    assert report.returncode == 0, report.stderr[-3000:]
    assert report.stderr.splitlines() == [f"warning: {picture}: damaged (not a PNG file); samples left out"]
    assert "3 of 3 trials finished" in (run_dir / "page.html").read_text()


def test_a_run_directory_with_only_a_damaged_sweep_json_says_so(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "sweep.json").write_text("[]")
    shown = _gensweep("show", run_dir)
    assert shown.returncode == 0
    assert shown.stderr.splitlines() == [f"warning: {run_dir / 'sweep.json'}: damaged (expected a JSON object, got list [])"]
    assert shown.stdout.strip() == "(no trials)"


@pytest.mark.parametrize("content, why", [("[1, 2]", "damaged (expected a JSON object, got list [1, 2])"), ("", "damaged (empty)")])
def test_resume_names_a_damaged_sweep_json_before_ray_starts(tmp_path, content, why):
    run_dir = _run_dir(tmp_path)
    (run_dir / "sweep.json").write_text(content)
    resumed = _gensweep("resume", run_dir)
    assert resumed.returncode == 2
    assert resumed.stderr.splitlines() == [f"error: {run_dir / 'sweep.json'}: {why}"]


def test_resume_names_a_damaged_optuna_db_before_ray_starts(tmp_path):
    run_dir = _run_dir(tmp_path)
    trials = [[json.dumps({"trial_id": "a0b2c3d4", "status": "TERMINATED", "config": {"model.latent_dim": 2}}), "{}"]]
    (run_dir / "experiment_state-2026-12-01_01-30-24.json").write_text(json.dumps({"trial_data": trials}))
    (run_dir / "optuna.db").write_bytes(b"SQLite format 2\0" + bytes(range(256)) * 8)  # not a database
    resumed = _gensweep("resume", run_dir)
    assert resumed.returncode == 2
    assert resumed.stderr.splitlines() == [
        f"error: {run_dir / 'optuna.db'}: Optuna's study does not read ((sqlite3.DatabaseError) file is not a database)"
    ]
