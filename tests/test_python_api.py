"""The Python API (gensweep.load, gensweep.run) on a real tiny sweep: Ray, Optuna and trials for
real, in this process as a notebook would run it. load() must be `gensweep show --csv` typed, and
a mistake must raise the error the command line prints as its one line."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pandas
import pytest
import yaml
from click.testing import CliRunner

import gensweep
from runner.cli import main
from runner.errors import GensweepError
from runner.spec import SpecError

GENSWEEP = str(Path(sys.executable).parent / "gensweep")

TINY_SWEEP = {
    "name": "api_tiny",
    "model": {"name": "vae", "arch": "mlp", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 128, "val_size": 64},
    "train": {"epochs": 1, "batch_size": 64, "steps_per_epoch": 1},
    "search": {"model.latent_dim": {"grid": [2]}},  # one trial: Ray's start is most of the time
    "tune": {"metric": "val/recon", "mode": "min"},
    "quality": {"every": 0},
}


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """gensweep.run in this process: the run directory it returned, and the storage path."""
    root = tmp_path_factory.mktemp("api")
    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    run_dir = gensweep.run(root / "tiny.yaml", ["train.seed=3"], storage_path=root / "out")
    return run_dir, root


@pytest.mark.slow
def test_run_returns_the_new_run_directory(api_run):
    run_dir, root = api_run
    assert run_dir == (root / "out" / "api_tiny").resolve()
    assert (run_dir / "sweep.json").is_file()


@pytest.mark.slow
def test_load_is_show_csv_typed(api_run):
    run_dir, _ = api_run
    shown = subprocess.run([GENSWEEP, "show", str(run_dir), "--csv"], capture_output=True, text=True, check=True,
                           timeout=120)
    expected = pandas.read_csv(io.StringIO(shown.stdout), dtype={"trial_id": str})
    expected["status"] = expected["status"].astype("category")

    frame = gensweep.load(run_dir)

    pandas.testing.assert_frame_equal(frame, expected)  # columns, order, values and dtypes
    assert list(frame.columns[:3]) == ["trial_id", "status", "model.latent_dim"]
    assert frame["val/recon"].dtype == "float64" and frame["model.latent_dim"].dtype == "int64"
    assert list(frame["model.latent_dim"]) == [2] and set(frame["status"]) == {"finished"}


@pytest.mark.slow
def test_load_takes_a_path_as_text_too(api_run):
    run_dir, _ = api_run
    assert gensweep.load(str(run_dir)).shape == gensweep.load(run_dir).shape


def test_load_of_no_run_directory_is_the_one_line_error(tmp_path):
    with pytest.raises(GensweepError, match=r"no such run directory"):
        gensweep.load(tmp_path / "missing")


def test_a_bad_spec_raises_what_the_command_line_prints(tmp_path):
    spec = {**TINY_SWEEP, "model": {"name": "vae", "latnt_dim": 2}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as raised:
        gensweep.run(tmp_path / "bad.yaml", storage_path=tmp_path / "out")
    assert "model.latnt_dim: unknown key" in str(raised.value)
    assert not (tmp_path / "out").exists()  # refused before anything was made

    printed = CliRunner().invoke(main, ["run", str(tmp_path / "bad.yaml"), "--storage-path", str(tmp_path / "out")])
    assert printed.exit_code == 2
    assert printed.stderr == f"error: {raised.value}\n"


def test_a_bad_override_and_storage_uri_are_refused_alike(tmp_path):
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(TINY_SWEEP))
    with pytest.raises(SpecError, match=r"--set train\.epochs=0: train\.epochs"):
        gensweep.run(tmp_path / "tiny.yaml", ["train.epochs=0"], storage_path=tmp_path / "out")
    with pytest.raises(GensweepError, match=r"storage URIs are not supported"):
        gensweep.run(tmp_path / "tiny.yaml", storage_path="s3://bucket/runs")
