"""Every shipped search space runs through `gensweep run` on the embedded digits, shrunk by --set.

One Ray runtime for the module (started here with this machine's cores, no dashboard, shut
down at the end); each spec is a real Tune sweep with real Optuna, ASHA or PBT.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.spec import load_spec

ROOT = Path(__file__).resolve().parents[2]
SPECS = sorted((ROOT / "search_spaces").glob("*.yaml"))
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("ray_runtime")]

SHRINK = [
    "data.train_size=256",
    "data.val_size=64",
    "train.epochs=3",
    "train.steps_per_epoch=3",
    "train.batch_size=32",
    "quality.samples=64",
]


@pytest.mark.parametrize("spec_path", SPECS, ids=lambda p: p.stem)
def test_search_space_runs_tiny(spec_path, tmp_path):
    spec = load_spec(spec_path)
    overrides = list(SHRINK)
    if spec.sampler != "grid":
        overrides.append("tune.num_samples=2")
    if spec.tune.scheduler == "asha":
        overrides.append("tune.grace_period=1")
    args = ["run", str(spec_path), "--storage-path", str(tmp_path)]
    for override in overrides:
        args += ["--set", override]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output[-4000:]

    shown = CliRunner().invoke(main, ["show", str(tmp_path / spec.name), "--json"])
    trials = json.loads(shown.output)
    assert len(trials) == load_spec(spec_path, overrides).num_samples
    for trial in trials:
        assert trial["status"] in ("finished", "stopped"), trial
        assert set(spec.metrics) <= set(trial["metrics"]), trial["metrics"].keys()
        for path, value in trial["swept"].items():  # the sampled value is the one trained with
            section, field, *entry = path.split(".")
            section_field = f"{section}.{field}"
            used = trial["config"][section_field]
            assert (used[entry[0]] if entry else used) == value
    if len(spec.metrics) > 1:
        assert any(t["pareto"] for t in trials)
    else:
        # ASHA never stops the first trial to reach a rung: one trial at least goes the whole way.
        assert any(t["status"] == "finished" for t in trials), [t["status"] for t in trials]
        assert sum(t["best"] for t in trials) == 1
