"""Every kind of value a search dimension accepts, through what a trial does with it: whatever
passes validation must run.

A grid of ints and floats (`model.beta: {grid: [0.5, 1, 4]}`) once passed `validate` and then
failed every trial in TensorBoard's HParams domain (`TypeError: dtype mismatch`). Each kind here
goes through the trial's own steps (runner.sweep.trial.TrialSession and run_trial): the values the
sampler draws (runner.sweep.driver's Tune domains; a grid's listed values), trial_spec, the HParams
session with the grid as its domain, and training; one real sweep runs a mixed grid end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tbreader import hparams_of, read_events

from runner.spec import SpecError, parse_document, trial_spec
from runner.sweep.driver import _domain
from runner.train import loop
from runner.train.tblog import TrialLogger

GENSWEEP = str(Path(sys.executable).parent / "gensweep")

VAE = {"name": "vae", "latent_dim": 2, "hidden_dim": 32}
GAN = {"name": "gan", "variant": "gan", "width": 32}

KINDS = {  # id: (model section, swept path, dimension, the type every drawn value has)
    "grid of ints": (VAE, "model.latent_dim", {"grid": [2, 3]}, int),
    "grid of floats": (VAE, "train.lr", {"grid": [0.001, 0.002]}, float),
    "grid of ints and floats": (VAE, "model.beta", {"grid": [0.5, 1, 4]}, float),
    "grid of a small and a large float": (VAE, "train.lr", {"grid": [0.001, 1000.0]}, float),
    "grid of ints for a float field": (VAE, "train.lr", {"grid": [1, 2]}, float),
    "grid of bools": (GAN, "model.conditional", {"grid": [True, False]}, bool),
    "grid of strings": (VAE, "model.arch", {"grid": ["mlp", "conv"]}, str),
    "grid with null": (VAE, "train.steps_per_epoch", {"grid": [None, 2]}, (type(None), int)),
    "choice of ints and floats": (VAE, "model.beta", {"choice": [0.5, 1, 4]}, float),
    "choice of strings": (VAE, "train.precision", {"choice": ["fp32", "bf16"]}, str),
    "loss-mix entry": (VAE, "model.loss.ssim", {"grid": [0, 0.5, 1]}, float),
    "uniform with int ends": (VAE, "model.beta", {"uniform": [0, 2]}, float),
    "loguniform with int ends": (VAE, "model.beta", {"loguniform": [1, 4]}, float),
    "int": (VAE, "model.latent_dim", {"int": [2, 4]}, int),
    "int for a float field": (VAE, "model.beta", {"int": [1, 3]}, (int, float)),
}


def _document(model: dict, search: dict) -> dict:
    return {
        "name": "kinds",
        "model": dict(model),
        "data": {"name": "digits", "train_size": 128, "val_size": 64},
        "train": {"epochs": 1, "batch_size": 64, "steps_per_epoch": 1, "log_every": 1},
        "search": search,
        "tune": {"metric": "val/d_loss" if model["name"] == "gan" else "val/loss", "mode": "min"},
        "quality": {"every": 0},
    }


def _drawn(dim) -> list:
    """What the sweep hands trials: a grid's or choice's values, or draws from its Tune domain."""
    if dim.values:
        return list(dim.values)
    domain = _domain(dim)
    return [domain.sample() for _ in range(3)]


@pytest.mark.parametrize("model, path, dimension, kind", KINDS.values(), ids=KINDS.keys())
def test_every_value_of_every_kind_runs_as_a_trial(tmp_path, model, path, dimension, kind):
    document = _document(model, {path: dimension})
    spec = parse_document(document, "kinds.yaml")  # what validate and run check
    dim = spec.search[path]
    # As runner.sweep.driver._trainable hands it to every trial, and runner.sweep.trial.TrialSession uses it.
    grid = {path: list(dim.values)} if dim.kind == "grid" else {}
    drawn = _drawn(dim)
    assert all(isinstance(value, kind) for value in drawn), drawn
    for index, value in enumerate(drawn):
        trial = trial_spec(spec.document, spec.source, {path: value})
        logger = TrialLogger(tmp_path / f"trial_{index}")
        logger.hparams({path: value}, trial.metric_names(), discrete=grid)
        if index == 0:  # training is the same code for every value; one of each kind trains
            metrics = loop.train(trial, logger)
            assert metrics
        logger.finish(succeeded=True)
        records = hparams_of(read_events(tmp_path / f"trial_{index}"))
        start = next(r.session_start_info for r in records.values() if r.HasField("session_start_info"))
        assert path in start.hparams


def test_grid_values_are_kept_as_their_field_holds_them():
    spec = parse_document(_document(VAE, {"model.beta": {"grid": [0.5, 1, 4]}, "model.latent_dim": {"grid": [2, 3]}}), "k.yaml")
    assert spec.search["model.beta"].values == (0.5, 1.0, 4.0)
    assert [type(v) for v in spec.search["model.beta"].values] == [float] * 3
    assert [type(v) for v in spec.search["model.latent_dim"].values] == [int] * 2


@pytest.mark.parametrize(
    "path, dimension, expected",
    [
        ("model.latent_dim", {"uniform": [2, 8]}, "search.model.latent_dim: uniform draws floats, and model.latent_dim takes whole numbers: write int: [low, high]"),
        ("model.latent_dim", {"loguniform": [2, 8]}, "loguniform draws floats"),
        ("model.beta", {"grid": [1, 1.0]}, "search.model.beta: grid lists a value twice: [1, 1.0]"),
        ("model.arch", {"uniform": [0, 1]}, "search.model.arch: value 0 does not fit"),
        # Optuna's sampler overflows on an infinite end, in the driver, after validate said ok.
        ("train.lr", {"loguniform": [1e-5, float("inf")]}, "search.train.lr: loguniform expects finite ends"),
        ("model.beta", {"uniform": [float("-inf"), 1.0]}, "search.model.beta: uniform expects finite ends"),
    ],
)
def test_a_dimension_its_trials_could_not_run_is_refused(path, dimension, expected):
    with pytest.raises(SpecError) as caught:
        parse_document(_document(VAE, {path: dimension}), "k.yaml")
    assert expected in str(caught.value)


@pytest.mark.slow
def test_a_sweep_over_a_grid_of_ints_and_floats_runs_every_trial(tmp_path):
    document = _document(VAE, {"model.beta": {"grid": [0.5, 1]}})
    document["train"]["epochs"] = 1
    (tmp_path / "mixed.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run([GENSWEEP, "run", "mixed.yaml", "--storage-path", "out"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shown = subprocess.run([GENSWEEP, "show", "out/kinds", "--json"], capture_output=True, text=True, cwd=tmp_path, check=False)
    trials = json.loads(shown.stdout)
    assert sorted(t["swept"]["model.beta"] for t in trials) == [0.5, 1.0]
    assert all(t["status"] == "finished" for t in trials), [t["error"] for t in trials]
    for trial in trials:
        records = hparams_of(read_events(Path(trial["logdir"])))
        start = next(r.session_start_info for r in records.values() if r.HasField("session_start_info"))
        assert start.hparams["model.beta"].number_value == trial["swept"]["model.beta"]


def test_a_long_grid_is_not_written_into_every_trials_hparams_domain(tmp_path):
    """A grid's values are the HParams tab's filter; past DISCRETE_LIMIT they are left to
    TensorBoard to gather from the sessions instead of being copied into every trial's file."""
    from runner.train.tblog import DISCRETE_LIMIT

    for values in (3, DISCRETE_LIMIT + 1):
        logger = TrialLogger(tmp_path / str(values))
        logger.hparams({"train.seed": 1}, ["val/loss"], discrete={"train.seed": list(range(values))})
        logger.close()
        records = hparams_of(read_events(tmp_path / str(values)))
        experiment = next(r.experiment for r in records.values() if r.HasField("experiment"))
        declared = {info.name: info for info in experiment.hparam_infos}
        assert len(declared["train.seed"].domain_discrete.values) == (3 if values == 3 else 0)
