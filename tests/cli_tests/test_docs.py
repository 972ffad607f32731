"""The README stays true: every spec key is documented, and the CLI's help works."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from models.cards import CARDS
from models.config import field_names
from runner import data as data_sources
from runner.cli import main
from runner.spec import TOP_LEVEL_KEYS, ResourcesSpec, TrainSpec, TuneSpec

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _documented_keys(section_title: str) -> set[str]:
    """Backquoted names in the first column of the tables under `### section_title`."""
    start = README.index(f"### `{section_title}`")
    end = README.find("\n### ", start + 1)
    body = README[start : end if end > 0 else None]
    return set(re.findall(r"^\| `([a-z_0-9]+)` \|", body, flags=re.MULTILINE))


@pytest.mark.parametrize(
    "section, config_classes",
    [
        ("train", [TrainSpec]),
        ("tune", [TuneSpec]),
        ("resources", [ResourcesSpec]),
        ("data", [source.config_class for source in data_sources.SOURCES.values()]),
        # The built-ins: a model package installed here documents its keys in its own README.
        ("model", [card.config_class for card in CARDS.values()]),
    ],
)
def test_every_spec_key_is_in_the_readme(section, config_classes):
    documented = _documented_keys(section)
    for config_class in config_classes:
        missing = set(field_names(config_class)) - documented
        assert not missing, f"README's {section} section lacks {missing} of {config_class.__name__}"


def test_every_top_level_key_and_model_is_mentioned():
    for key in TOP_LEVEL_KEYS:
        assert f"\n{key}:" in README or f"### `{key}`" in README, key
    for name in CARDS:
        assert f"**`{name}`**" in README


@pytest.mark.parametrize("command", [[], ["run"], ["show"], ["report"], ["sample"], ["validate"], ["prepare"], ["up"], ["down"], ["models"], ["resume"], ["tensorboard"], ["align"], ["align", "run"], ["align", "synth"], ["align", "eval"]])
def test_help_of_every_command(command):
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0 and "Usage: " in result.output


def test_version_and_models_listing():
    assert CliRunner().invoke(main, ["--version"]).output.startswith("gensweep, version ")
    listing = CliRunner().invoke(main, ["models"]).output
    assert "vae: " in listing and "latent_dim" in listing and "mlp|conv" in listing


def test_show_on_a_missing_directory_is_one_line():
    result = CliRunner().invoke(main, ["show", "no/such/run"])
    assert result.exit_code == 2 and result.stderr == "error: no/such/run: no such run directory\n"
