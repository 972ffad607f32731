"""Models from installed packages (entry-point group gensweep.models, models/plugins.py): the
example package examples/gensweep-tiny-ae made visible as an installed distribution (its
metadata, written from its own pyproject.toml, in a directory on sys.path and PYTHONPATH, as
pip would leave it), then listed, validated, swept for real in Ray trial processes, and a broken
plugin reduced to one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from sweeps import GENSWEEP, end_if_running

import models
from models import plugins
from models.config import ConfigError
from runner.cli import main
from runner.spec import load_spec
from runner.spec.schema import spec_schema

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "gensweep-tiny-ae"
TINY_SPEC = {
    "name": "tiny_plugin",
    "model": {"name": "tiny_ae", "latent_dim": 2, "hidden_dim": 16},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 1, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 3]}},
}


def _install(site: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    """What `pip install` leaves that importlib.metadata reads: NAME-VERSION.dist-info."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "".join(f"{key} = {value}\n" for key, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[{plugins.GROUP}]\n{lines}")


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """A site directory on sys.path and PYTHONPATH (for the processes a test starts); returns a
    function that installs into it. Discovery is forgotten before and after."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(site), os.environ.get("PYTHONPATH", str(ROOT))]))
    plugins.forget()
    yield site
    plugins.forget()
    sys.modules.pop("gensweep_tiny_ae.card", None)


@pytest.fixture
def tiny_ae(on_path) -> Path:
    """The example package, installed: its module beside the metadata its pyproject.toml declares."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    (on_path / "gensweep_tiny_ae").symlink_to(EXAMPLE / "gensweep_tiny_ae")
    _install(on_path, project["name"], project["version"], project["entry-points"][plugins.GROUP])
    return on_path


def test_the_example_model_is_listed_with_its_package_and_validated_like_the_built_ins(tiny_ae, tmp_path):
    listed = CliRunner().invoke(main, ["models"])
    assert listed.exit_code == 0, listed.output
    assert "tiny_ae (from gensweep-tiny-ae 0.1.0): A tiny MLP autoencoder" in listed.stdout
    assert "    hidden_dim " in listed.stdout and "vae: " in listed.stdout  # its fields, and the built-ins
    assert "model.tiny_ae" in spec_schema()["$defs"]  # editors see it when it is installed
    assert "model.tiny_ae" not in spec_schema(plugins=False)["$defs"]

    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump(TINY_SPEC))
    checked = CliRunner().invoke(main, ["validate", str(spec_file)])
    assert checked.exit_code == 0, checked.output
    assert load_spec(spec_file).model.hidden_dim == 16
    # Its card is torch-free, as the built-ins' are: listing and checking import no torch.
    code = ("import sys, models; models.entry('tiny_ae'); from runner.spec import load_spec; "
            f"load_spec({str(spec_file)!r}); print('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
    misspelt = {**TINY_SPEC, "model": {"name": "tiny_ae", "hiden_dim": 16}}
    spec_file.write_text(yaml.safe_dump(misspelt))
    refused = CliRunner().invoke(main, ["validate", str(spec_file)])
    assert refused.exit_code == 2, refused.output
    assert "model.hiden_dim" in refused.output and "hidden_dim" in refused.output  # as a built-in's


@pytest.mark.slow
def test_a_sweep_of_the_example_model_trains_in_ray_trial_processes(tiny_ae, tmp_path):
    # The real console script in its own process: its Ray and every trial process inherit
    # PYTHONPATH, as they would an environment the package is installed in.
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(TINY_SPEC))
    driver = subprocess.Popen([GENSWEEP, "run", "s.yaml", "--storage-path", "out"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = driver.communicate(timeout=300)
    finally:
        end_if_running(driver)
    assert driver.returncode == 0, output
    results = [json.loads(result.read_text().splitlines()[-1])
               for result in sorted((tmp_path / "out" / "tiny_plugin").rglob("result.json"))]
    assert len(results) == 2, output
    assert {result["config"]["model.latent_dim"] for result in results} == {2, 3}
    for result in results:
        assert result["training_iteration"] == 1 and result["val/loss"] > 0
        assert result["pid"] != driver.pid  # trained in a Ray trial process, not the driver


def test_a_broken_plugin_is_one_line_naming_its_package_and_the_rest_still_list(tiny_ae, tmp_path):
    _install(tiny_ae, "gensweep-broken", "1.2", {"broken": "no_such_module_here:CARD", "vae": "gensweep_tiny_ae.card:CARD"})
    plugins.forget()
    listed = CliRunner().invoke(main, ["models"])
    assert listed.exit_code == 0, listed.output
    assert "tiny_ae (from gensweep-tiny-ae 0.1.0)" in listed.stdout
    errors = listed.stderr.splitlines()
    assert errors == [
        ("gensweep models: model plugin 'broken' (no_such_module_here:CARD) from gensweep-broken 1.2: "
         "does not load: ModuleNotFoundError: No module named 'no_such_module_here'"),
        ("gensweep models: model plugin 'vae' (gensweep_tiny_ae.card:CARD) from gensweep-broken 1.2: "
         "the name 'vae' is a built-in model's; rename the entry point"),
    ]
    assert models.entry("vae").summary.startswith("Variational")  # the built-in stays
    spec_file = tmp_path / "s.yaml"
    spec_file.write_text(yaml.safe_dump({**TINY_SPEC, "model": {"name": "broken"}, "search": {}}))
    refused = CliRunner().invoke(main, ["validate", str(spec_file)])
    assert refused.exit_code == 2
    assert refused.output.count("\n") == 1 and "from gensweep-broken 1.2: does not load" in refused.output


def test_a_spec_cannot_name_a_module_path():
    with pytest.raises(ConfigError, match=r"model\.name: unknown model 'gensweep_tiny_ae\.model:TinyAutoencoder'"):
        models.entry("gensweep_tiny_ae.model:TinyAutoencoder")
    assert "gensweep_tiny_ae.model" not in sys.modules  # not imported to find out
