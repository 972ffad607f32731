"""Commands that write a file never write it over what a run or a user already keeps: `report -o`
over sweep.json or optuna.db, `sample -o` over a trial's samples.png, `align synth` over frames."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize("kept", ["sweep.json", "optuna.db", "trial_1/gensweep.json"])
def test_report_never_writes_over_a_file_of_the_run(tmp_path, kept):
    run_dir = tmp_path / "run"
    (run_dir / "trial_1").mkdir(parents=True)
    target = run_dir / kept
    target.write_text('{"kept": true}')
    before = _digest(target)
    line = _one_error_line(CliRunner().invoke(main, ["report", str(run_dir), "-o", str(target)]))
    assert "ending in .html" in line
    assert _digest(target) == before


@pytest.mark.parametrize("picture", ["samples.png", "../comparison.png", "reconstruction.png"])
def test_sample_never_writes_over_the_runs_own_pictures(tmp_path, monkeypatch, picture):
    trial_dir = tmp_path / "run" / "latent_dim=2_abc"
    trial_dir.mkdir(parents=True)
    target = (trial_dir / picture).resolve()
    target.write_bytes(b"\x89PNG kept")
    monkeypatch.chdir(trial_dir)  # `gensweep sample . ` inside a trial: -o samples.png is the default
    arguments = ["sample", "."] + ([] if picture == "samples.png" else ["-o", picture])
    line = _one_error_line(CliRunner().invoke(main, arguments))
    assert f"the run's own {target.name}" in line
    assert target.read_bytes() == b"\x89PNG kept"


def test_align_synth_never_writes_into_a_directory_that_holds_files(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    frame = frames / "frame_0000.png"  # a name synth itself would write
    frame.write_bytes(b"a real frame")
    line = _one_error_line(CliRunner().invoke(main, ["align", "synth", str(frames), "--frames", "2", "--size", "32"]))
    assert "not empty" in line
    assert frame.read_bytes() == b"a real frame" and not (frames / "truth.csv").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(main, ["align", "synth", str(empty), "--frames", "2", "--size", "32"]).exit_code == 0
