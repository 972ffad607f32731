"""Specs as users write them and as an attacker would: numbers in every common form, YAML built
to explode, a search space of 10,000 values. Each is read into numbers, or refused in one line
naming the file and the limit, and nothing grows with the size of the search space.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import runner.spec
from runner.cli import main
from runner.results.html_report import render_report
from runner.results.report import SHOWN_TRIALS, SWEEP_FILE, collect, load_run
from runner.spec import SpecError, load_spec, parse_document, parse_override, trial_spec
from runner.spec.yaml_io import MAX_ALIASES, MAX_DEPTH, MAX_GRID_POINTS, MAX_NODES, MAX_SEARCH_VALUES
from runner.sweep.driver import write_comparison

GENSWEEP = str(Path(sys.executable).parent / "gensweep")  # the installed console script
BASE = "model: {name: vae, latent_dim: 2}\ndata: {name: digits, train_size: 256, val_size: 64}\n"


def _validate(*args):
    """In-process, as click runs it: the exit code and the two streams."""
    result = CliRunner().invoke(main, ["validate", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


def _one_error_line(result) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[:500], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-2000:]
    assert len(lines[0]) < 300
    return lines[0]


# ---- item 11: numbers as users write them ---------------------------------------------------------

@pytest.mark.parametrize(
    "text, number",
    [("3e-4", 3e-4), ("1E-5", 1e-5), (".5", 0.5), ("1_000", 1000), ("-2e3", -2000.0), ("1.0e5", 1e5),
     ("+2.5E+2", 250.0), ("-.25", -0.25), ("7", 7), ("0.001", 0.001)],
)
def test_numbers_in_the_forms_users_write_are_numbers(text, number):
    _, value = parse_override(f"train.lr={text}")
    assert value == number and type(value) is type(number)
    assert yaml.safe_dump({"x": value})  # plain data


def test_the_readmes_own_numbers_pass_in_a_file_and_in_set(tmp_path):
    (tmp_path / "s.yaml").write_text(BASE + "train: {lr: 3e-4}\nsearch:\n  train.lr: {loguniform: [1e-5, 1e-2]}\n")
    spec = load_spec(tmp_path / "s.yaml", ["train.epochs=1_000", "model.beta=1E-1"])
    assert spec.train.lr == 3e-4 and spec.train.epochs == 1000 and spec.model.beta == 0.1
    assert (spec.search["train.lr"].low, spec.search["train.lr"].high) == (1e-5, 1e-2)
    result = _validate(str(tmp_path / "s.yaml"), "--set", "train.lr=3e-4")
    assert result.returncode == 0, result.stderr
    assert "loguniform [1e-05, 0.01]" in result.stdout


def test_words_mean_what_specs_meant(tmp_path):
    """on/off for the auto|on|off switch (the README's `train.channels_last: on`); yes/no/true/
    false still booleans for a bool field; quoted text stays text."""
    (tmp_path / "s.yaml").write_text(BASE + "train: {channels_last: on, compile: no}\ndescription: '3e-4'\n")
    spec = load_spec(tmp_path / "s.yaml")
    assert spec.train.channels_last == "on" and spec.train.compile is False
    assert spec.document["description"] == "3e-4"
    spec = load_spec(tmp_path / "s.yaml", ["train.channels_last=off", "train.compile=yes"])
    assert spec.train.channels_last == "off" and spec.train.compile is True
    with pytest.raises(SpecError, match="train.channels_last: Input should be 'auto', 'on' or 'off', got 'yes'"):
        load_spec(tmp_path / "s.yaml", ["train.channels_last='yes'"])


# ---- item 8: YAML built to explode ----------------------------------------------------------------

def _laughs(levels: int = 9) -> str:
    """A billion laughs inside a grid: 10**levels values once every alias is expanded."""
    lines = ["  - &l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"  - &l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, levels)]
    return "search:\n model.latent_dim:\n  grid:\n" + "\n".join(lines) + "\n"


def _limited_memory():
    # 4 GB of address space: torch and its libraries map ~3 GB at import; a bomb gets no further.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


def test_a_billion_laughs_under_1kb_is_refused_in_one_line(tmp_path):
    bomb = _laughs()
    assert len(bomb) < 1024
    (tmp_path / "bomb.yaml").write_text(BASE + bomb)
    environment = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    run = {"capture_output": True, "text": True, "cwd": tmp_path, "env": environment, "preexec_fn": _limited_memory, "timeout": 180}
    result = subprocess.run([GENSWEEP, "validate", "bomb.yaml"], **run, check=False)
    line = _one_error_line(result)
    assert line.startswith("error: bomb.yaml: ") and f"more than {MAX_NODES:,} values" in line
    # The same bomb in a --set value (its anchors inline, one line of YAML).
    value = "{grid: [&l0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], " + ", ".join(
        f"&l{n} [{', '.join([f'*l{n - 1}'] * 10)}]" for n in range(1, 9)
    ) + "]}"
    (tmp_path / "ok.yaml").write_text(BASE)
    result = subprocess.run([GENSWEEP, "validate", "ok.yaml", "--set", f"search.model.latent_dim={value}"], **run, check=False)
    line = _one_error_line(result)
    assert line.startswith("error: --set search.model.latent_dim=") and "alias bomb" in line


HOSTILE = {
    "nested too deep": ("train: " + "[" * 5000 + "]" * 5000 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
    "too many aliases": ("x: &x 1\nsearch:\n  train.seed: {grid: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]}\n",
                         f"more than {MAX_ALIASES:,} aliases"),
    "a recursive alias": ("search:\n  model.latent_dim: {grid: &g [*g]}\n", "an alias refers to a list or mapping that contains it"),
    "a grid too long": ("search:\n  train.seed: {grid: [" + ", ".join(map(str, range(MAX_SEARCH_VALUES + 1))) + "]}\n",
                        f"search.train.seed: grid lists {MAX_SEARCH_VALUES + 1:,} values; the limit is {MAX_SEARCH_VALUES:,}"),
    "a choice too long": ("search:\n  train.seed: {choice: [" + ", ".join(map(str, range(MAX_SEARCH_VALUES + 1))) + "]}\n",
                          f"choice lists {MAX_SEARCH_VALUES + 1:,} values"),
    "a grid of too many points": ("search:\n" + "".join(f"  {path}: {{grid: [{', '.join(map(str, range(1, 401)))}]}}\n"
                                                       for path in ("train.seed", "model.latent_dim")),
                                  f"search: the grid has 160,000 points (trials); the limit is {MAX_GRID_POINTS:,}"),
}


@pytest.mark.parametrize("content, expected", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_yaml_is_refused_in_one_line_naming_the_file_and_the_limit(tmp_path, content, expected):
    (tmp_path / "h.yaml").write_text(BASE + content)
    line = _one_error_line(_validate(str(tmp_path / "h.yaml")))
    assert line.startswith(f"error: {tmp_path / 'h.yaml'}: ") and expected in line


# ---- item 9: a 10,000-value grid ------------------------------------------------------------------

def _grid_document(values: int) -> dict:
    return {"name": "big", "model": {"name": "vae", "latent_dim": 2}, "data": {"name": "digits", "train_size": 256, "val_size": 64},
            "search": {"train.seed": {"grid": list(range(values))}}}


def test_validate_lists_a_10000_value_grid_in_a_short_line(tmp_path):
    (tmp_path / "big.yaml").write_text(yaml.safe_dump(_grid_document(MAX_SEARCH_VALUES)))
    result = _validate(str(tmp_path / "big.yaml"))
    assert result.returncode == 0, result.stderr
    assert "10000 trials" in result.stdout and "train.seed: grid [0, 1, 2, 3, 4, 5, ... (10,000 values)]" in result.stdout
    # The quality line's length is its weights path's (tests/spec_tests/test_quality_plan.py), not the grid's.
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines if not line.startswith("  quality:")) < 200
    (tmp_path / "small.yaml").write_text(yaml.safe_dump(_grid_document(2)))
    small = _validate(str(tmp_path / "small.yaml")).stdout.splitlines()
    assert [line for line in lines if line.startswith("  quality:")] == [line for line in small if line.startswith("  quality:")]


def test_a_trials_set_up_does_not_grow_with_the_search_space(monkeypatch):
    """What a trial does before it trains (runner.sweep.trial.run_trial, runner.sweep.pack_trial: trial_spec)
    parses the spec once and builds the model once, for a grid of 3 values as for 3,000."""
    calls = {"parse": 0, "model": 0}

    def counting(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return counted

    monkeypatch.setattr(runner.spec, "_parse", counting("parse", runner.spec._parse))
    monkeypatch.setattr(runner.spec, "_check_model_fits_data", counting("model", runner.spec._check_model_fits_data))
    for values in (3, 3000):
        document = _grid_document(values)
        spec = parse_document(document, "big.yaml")
        calls.update(parse=0, model=0)
        trial = trial_spec(document, "big.yaml", {"train.seed": 2})
        assert trial.train.seed == 2 and trial.search == spec.search | {"train.seed": trial.search["train.seed"]}
        assert calls == {"parse": 1, "model": 1}, values
        calls.update(parse=0, model=0)
        assert spec.with_values({"train.seed": 1}).train.seed == 1
        assert calls == {"parse": 1, "model": 1}, values


def test_every_trial_sets_up_through_trial_spec():
    """A Tune trial needs Tune's context, so the count above is taken on trial_spec; this checks
    that each trainable's set-up is trial_spec, not a whole-spec parse (the e2e test runs them)."""
    import inspect

    from runner.sweep import pack_trial, trial

    for source in (inspect.getsource(trial.run_trial), inspect.getsource(pack_trial)):
        assert "trial_spec(" in source and "parse_document(" not in source


def _fake_run(run_dir: Path, trials: int) -> None:
    """A finished sweep of `trials` trials as gensweep leaves it: sweep.json, each trial's record
    (val/loss = its index, so trial 0 is best) and samples.png (an 8x8 grid of 28 px digits' size)."""
    run_dir.mkdir()
    (run_dir / SWEEP_FILE).write_text(json.dumps({"name": "big", "metrics": ["val/loss"], "modes": ["min"],
                                                  "document": _grid_document(trials)}))
    for index in range(trials):
        directory = run_dir / f"seed={index}_{index:05d}"
        directory.mkdir()
        record = {"trial_id": f"{index:05d}", "status": "finished", "swept": {"train.seed": index},
                  "config": {}, "metrics": {"val/loss": float(index)}, "epoch": 1}
        (directory / "gensweep.json").write_text(json.dumps(record))
        cv2.imwrite(str(directory / "samples.png"), np.full((242, 242, 3), index, np.uint8))


def test_the_comparison_image_shows_the_best_few_of_50_trials(tmp_path):
    _fake_run(tmp_path / "run", 50)
    path = write_comparison(tmp_path / "run", collect(tmp_path / "run"))
    image = cv2.imread(str(path))
    # Before: 50 panels of 484 px in one row, 24,788 px wide. Now 2 rows of 6 panels.
    assert image.shape[1] <= 6 * (484 + 12) and image.shape[0] < 3 * (484 + 60)
    # The panels are the best 12 (values 0..11, the grey level of each picture), best first.
    assert SHOWN_TRIALS == 12
    bottom = image.shape[0] - 1
    assert [int(image[bottom, column * 496 + 200, 0]) for column in range(6)] == [6, 7, 8, 9, 10, 11]


def test_the_html_report_shows_the_best_few_of_50_trials_and_says_so(tmp_path):
    from runner.train.tblog import TrialLogger

    _fake_run(tmp_path / "run", 50)
    for trial in collect(tmp_path / "run"):
        logger = TrialLogger(Path(trial.logdir))
        logger.scalars("val", {"loss": trial.metrics["val/loss"]}, 10)
        logger.close()
    page = render_report(load_run(tmp_path / "run"))
    samples = page[page.index('<section id="samples">'):page.index('<section id="curves">')]
    curves = page[page.index('<section id="curves">'):page.index('<section id="search">')]
    assert samples.count("<figure>") == SHOWN_TRIALS
    assert "Showing the best 12 of 50 trials (by val/loss, min), best first." in samples
    assert "samples of seed=0" in samples and "samples of seed=12" not in samples
    assert curves.count("<span><i ") == SHOWN_TRIALS and "showing the best 12 of 50 trials" in curves
