"""The sweep's pieces without running Ray: samplers, domains, schedulers, run and trial names."""

from __future__ import annotations

import optuna
import pytest
from ray import tune

from runner.spec import parse_document
from runner.sweep.driver import _domain, _scheduler, _search_algorithm, trial_dirname


def _spec(tiny_document, search, **tune_settings):
    return parse_document({**tiny_document, "search": search, "tune": tune_settings}, "s.yaml")


@pytest.mark.parametrize(
    "search, sampler, expected",
    [
        ({"model.latent_dim": {"grid": [2, 4]}}, "auto", optuna.samplers.GridSampler),
        ({"model.beta": {"uniform": [0.5, 2.0]}}, "auto", optuna.samplers.TPESampler),
        ({"model.beta": {"uniform": [0.5, 2.0]}}, "random", optuna.samplers.RandomSampler),
        ({"model.beta": {"uniform": [0.5, 2.0]}}, "cmaes", optuna.samplers.CmaEsSampler),
    ],
)
def test_each_sampler_is_optunas_own(tiny_document, search, sampler, expected, tmp_path):
    algorithm = _search_algorithm(_spec(tiny_document, search, sampler=sampler), tmp_path)
    assert isinstance(algorithm._sampler, expected)


def test_no_search_space_means_no_search_algorithm(tiny_document, tmp_path):
    assert _search_algorithm(parse_document(tiny_document, "s.yaml"), tmp_path) is None


def test_domains_match_the_dimensions(tiny_document):
    spec = _spec(
        tiny_document,
        {"model.latent_dim": {"int": [2, 5]}, "train.lr": {"loguniform": [1e-4, 1e-2]}, "model.arch": {"choice": ["mlp", "conv"]}},
    )
    latent = _domain(spec.search["model.latent_dim"])
    assert isinstance(latent, tune.search.sample.Integer) and (latent.lower, latent.upper) == (2, 6)  # 5 included
    assert isinstance(_domain(spec.search["train.lr"]).get_sampler(), tune.search.sample.LogUniform)
    assert _domain(spec.search["model.arch"]).categories == ["mlp", "conv"]


def test_asha_runs_to_the_last_epoch(tiny_document):
    tiny_document["train"]["epochs"] = 9
    scheduler = _scheduler(_spec(tiny_document, {}, scheduler="asha", grace_period=2), {})
    assert scheduler._max_t == 9 and scheduler._reduction_factor == 3.0
    assert scheduler._brackets[0]._rungs[-1][0] == 2  # the first rung: the grace period


def test_trial_directories_are_named_by_their_values():
    class FakeTrial:  # Tune hands the creator a Trial; only these two attributes are read
        def __init__(self):
            self.config = {"model.latent_dim": 2, "train.lr": 0.000123456}
            self.trial_id = "ab12cd34"

    assert trial_dirname(FakeTrial()) == "latent_dim=2_lr=0.0001235_ab12cd34"


def test_pbt_mutates_the_search_space_without_optuna(tiny_document, tmp_path):
    spec = _spec(tiny_document, {"train.lr": {"loguniform": [1e-4, 1e-2]}}, scheduler="pbt", perturbation_interval=3)
    space = {"train.lr": _domain(spec.search["train.lr"])}
    scheduler = _scheduler(spec, space)
    assert _search_algorithm(spec, tmp_path) is None and spec.sampler == "pbt"
    assert scheduler._perturbation_interval == 3 and set(scheduler._hyperparam_mutations) == {"train.lr"}


def test_multi_objective_goes_to_optuna(tiny_document, tmp_path):
    spec = _spec(tiny_document, {"model.beta": {"uniform": [0.5, 2.0]}}, metric=["val/recon", "val/kl"], mode=["min", "max"], sampler="nsga2")
    algorithm = _search_algorithm(spec, tmp_path)
    assert isinstance(algorithm._sampler, optuna.samplers.NSGAIISampler)
    assert algorithm._metric == ["val/recon", "val/kl"] and algorithm._mode == ["min", "max"]
