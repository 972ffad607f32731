"""The spec's JSON Schema (gensweep schema, the committed gensweep.schema.json): checked by the
real `jsonschema` package against every shipped spec, and shown to refuse what gensweep refuses
(a misspelt key, a wrong type) so an editor marks it while it is typed."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from runner.cli import main
from runner.spec import load_spec
from runner.spec.schema import SCHEMA_FILE, spec_schema
from runner.spec.yaml_io import load_yaml

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "search_spaces").rglob("*.yaml"))
VALID = {
    "name": "ok",
    "model": {"name": "vae", "latent_dim": 4, "arch": "conv"},
    "data": {"name": "digits", "train_size": 256},
    "train": {"epochs": 2, "lr": 3e-4, "channels_last": True},  # YAML 1.1's `on`
    "search": {"model.beta": {"loguniform": [0.1, 4]}, "model.loss.ssim": {"choice": [0, 0.5]}},
    "tune": {"sampler": "tpe"},
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / SCHEMA_FILE).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)  # a well-formed draft 2020-12 schema
    return jsonschema.Draft202012Validator(schema)


def test_the_committed_schema_is_what_gensweep_schema_prints():
    # --built-in-only: the committed file is the same whatever model packages are installed here
    # (tests/models_tests/test_plugins.py checks that an installed one is in the plain output).
    printed = CliRunner().invoke(main, ["schema", "--built-in-only"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == (ROOT / SCHEMA_FILE).read_text(), \
        "regenerate: gensweep schema --built-in-only > gensweep.schema.json"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_shipped_spec_names_the_schema_and_is_valid(validator, path):
    text = path.read_text()
    first = text.splitlines()[0]
    match = re.fullmatch(r"# yaml-language-server: \$schema=(\S+)", first)
    assert match, f"{path.name}: first line must name the schema, got {first!r}"
    assert (path.parent / match.group(1)).resolve() == ROOT / SCHEMA_FILE
    assert list(validator.iter_errors(load_yaml(text))) == []


def test_every_model_and_data_source_is_described():
    from models.cards import CARDS
    from runner.data import SOURCES

    definitions = spec_schema()["$defs"]
    for kind, names in (("model", CARDS), ("data", SOURCES)):  # the built-ins (test_plugins.py: a plugin's)
        for name in names:
            fields = definitions[f"{kind}.{name}"]["properties"]
            assert fields["name"]["const"] == name
            undescribed = [key for key, field in fields.items() if not field.get("description")]
            assert undescribed == [], f"{kind}.{name}: fields without a description: {undescribed}"
    assert definitions["model.vae"]["properties"]["latent_dim"]["description"] == "size of the latent code z"


def _errors(validator, document) -> list[str]:
    return ["/".join(map(str, error.absolute_path)) for error in validator.iter_errors(document)]


def test_a_valid_document_passes_and_gensweep_agrees(validator, tmp_path):
    assert _errors(validator, VALID) == []
    (tmp_path / "ok.yaml").write_text(json.dumps(VALID))
    load_spec(tmp_path / "ok.yaml")  # the schema accepts nothing here that gensweep refuses


@pytest.mark.parametrize("where, change", [
    ("model", lambda d: d["model"].update(latnt_dim=4)),  # a misspelt model field
    ("data", lambda d: d["data"].update(train_sise=256)),  # a misspelt data field
    ("", lambda d: d.update(trian={"epochs": 2})),  # a misspelt section
    ("train/epochs", lambda d: d["train"].update(epochs="ten")),  # a wrong type
    ("train/epochs", lambda d: d["train"].update(epochs=0)),  # out of range
    ("model", lambda d: d["model"].update(name="vea")),  # no such model
    ("model", lambda d: d["model"].update(recon="l2")),  # not one of the choices
    ("search/model.beta", lambda d: d["search"].update({"model.beta": {"gird": [1, 2]}})),  # no such kind
    ("search/model.beta", lambda d: d["search"].update({"model.beta": {"loguniform": [0, 4]}})),  # low must be > 0
    ("search", lambda d: d["search"].update({"tune.seed": {"grid": [1, 2]}})),  # not a sweepable section
])
def test_what_gensweep_refuses_the_schema_refuses(validator, tmp_path, where, change):
    document = copy.deepcopy(VALID)
    change(document)
    errors = _errors(validator, document)
    assert errors, "the schema accepted it"
    assert where in errors
    (tmp_path / "bad.yaml").write_text(json.dumps(document))
    with pytest.raises(ValueError):  # SpecError: gensweep refuses it too
        load_spec(tmp_path / "bad.yaml")


def test_a_data_section_without_a_name_is_the_digits(validator):
    assert _errors(validator, {**VALID, "data": {"train_size": 256}}) == []
    assert _errors(validator, {**VALID, "data": {"path": "/images"}}) == ["data"]  # folder's field needs its name
