"""Spec validation: the shipped specs pass; each kind of mistake is one line, exit 2, nothing run."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from runner.cli import main
from runner.spec import SpecError, load_spec, parse_document, parse_override

ROOT = Path(__file__).resolve().parents[2]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")  # the installed console script
SHIPPED_SPECS = sorted((ROOT / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED_SPECS, ids=lambda p: p.name)
def test_shipped_specs_are_valid(path):
    spec = load_spec(path)
    assert spec.num_samples >= 1
    assert set(spec.metrics) <= set(spec.metric_names())


def test_default_sweep_is_the_latent_grid():
    spec = load_spec(ROOT / "search_spaces" / "vae_latent.yaml")
    assert spec.model_name == "vae" and spec.data_name == "digits"
    assert spec.search["model.latent_dim"].values == (2, 4, 8)
    assert spec.sampler == "grid" and spec.num_samples == 3


def test_defaults_come_from_the_dataclasses(tiny_document):
    spec = parse_document(tiny_document, "x.yaml")
    assert spec.model.beta == 1.0 and spec.model.arch == "mlp"
    assert spec.metrics == ["val/loss"] and spec.modes == ["min"] and spec.resources.cpu == 1.0
    assert spec.num_samples == 1  # no search: one trial


def test_overrides_are_typed_like_yaml(tmp_path, tiny_document):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(tiny_document))
    spec = load_spec(path, ["train.epochs=3", "model.beta=0.5", "search.model.latent_dim={grid: [2, 3]}"])
    assert spec.train.epochs == 3 and isinstance(spec.train.epochs, int)
    assert spec.model.beta == 0.5
    assert spec.search["model.latent_dim"].values == (2, 3)
    assert parse_override("train.device=cpu") == ("train.device", "cpu")


def test_with_values_sets_a_swept_field(tiny_document):
    spec = parse_document(tiny_document, "x.yaml").with_values({"model.latent_dim": 8, "train.lr": 0.01})
    assert spec.model.latent_dim == 8 and spec.train.lr == 0.01


def test_relative_data_paths_become_absolute(tmp_path, monkeypatch, tiny_document):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgs").mkdir()
    tiny_document["data"] = {"name": "folder", "path": "imgs", "image_size": 28}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(tiny_document))
    spec = load_spec("s.yaml")
    assert spec.data.path == str(tmp_path / "imgs")


BAD_SPECS = {
    "unknown top-level key": ({"trian": {}}, "trian: unknown key"),
    "unknown model": ({"model": {"name": "vea"}}, "model.name: unknown model 'vea' (known models: "),
    "unknown model field": ({"model": {"name": "vae", "latent": 3}}, "model.latent: unknown key (known keys: latent_dim"),
    "wrong type": ({"train": {"epochs": "ten"}}, "train.epochs: Input should be a valid integer, got 'ten'"),
    "out of range": ({"model": {"name": "vae", "latent_dim": 0}}, "model.latent_dim: Input should be greater than or equal to 1"),
    "bad choice": ({"model": {"name": "vae", "arch": "resnet"}}, "model.arch: Input should be 'mlp' or 'conv'"),
    "unknown data source": ({"data": {"name": "cifar"}}, "data.name: unknown data source 'cifar'"),
    "unknown search kind": ({"search": {"model.latent_dim": {"grdi": [2]}}}, "search.model.latent_dim: unknown dimension 'grdi'"),
    "search path typo": ({"search": {"model.latnt_dim": {"grid": [2]}}}, "search.model.latnt_dim: model has no field 'latnt_dim'"),
    "search value misfits": ({"search": {"model.latent_dim": {"grid": [2, 2.5]}}}, "search.model.latent_dim: value 2.5 does not fit"),
    "range reversed": ({"search": {"train.lr": {"loguniform": [0.1, 0.001]}}}, "search.train.lr: loguniform expects low < high"),
    "grid mixed": ({"search": {"model.latent_dim": {"grid": [2, 4]}, "train.lr": {"uniform": [0.001, 0.01]}}}, "search: grid dimensions cannot mix"),
    "metric not reported": ({"tune": {"metric": "val/fid"}}, "tune.metric: vae does not report 'val/fid'"),
    "bad mode": ({"tune": {"mode": "minimize"}}, "tune.mode: Input should be 'min' or 'max'"),
    "required key missing": ({"data": {"name": "folder"}}, "data.path: required key is missing"),
    "conv on odd size": ({"model": {"name": "vae", "arch": "conv"}, "data": {"name": "folder", "path": "/tmp", "image_size": 30}}, "model.arch: conv needs image sides divisible by 4"),
}


@pytest.mark.parametrize("change, expected", BAD_SPECS.values(), ids=BAD_SPECS.keys())
def test_bad_specs_name_the_key(tiny_document, change, expected):
    document = {**tiny_document, **change}
    with pytest.raises(SpecError) as caught:
        parse_document(document, "bad.yaml")
    assert str(caught.value).startswith("bad.yaml: ")
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def _validate(*args):
    """In-process, as click runs it: the exit code and the two streams."""
    result = CliRunner().invoke(main, ["validate", *args])
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize(
    "content, overrides, expected",
    [
        ("model: {name: vae}\ntrain: {epochs: 2\n", [], "YAML syntax error at line"),
        ("- a list\n", [], "expected a mapping of keys at the top level"),
        ("model: {name: vae}\n", ["train.epocs=3"], "--set train.epocs=3: train.epocs: unknown key"),
        ("model: {name: vae}\n", ["train.epochs"], "--set train.epochs: expected dotted.key=value"),
        ("model: {name: vae}\n", ["train.epochs=-1"], "--set train.epochs=-1: train.epochs: Input should be greater"),
        ("model: {name: vae}\ndata: {name: mnist, path: /no/such/dir}\n", [], "data.path: directory /no/such/dir does not exist"),
    ],
)
def test_cli_reports_one_line_and_exits_2(tmp_path, content, overrides, expected):
    path = tmp_path / "spec.yaml"
    path.write_text(content)
    result = _validate(str(path), *[arg for o in overrides for arg in ("--set", o)])
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_missing_spec_file_through_the_installed_command():
    result = subprocess.run([GENSWEEP, "validate", "no/such.yaml"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert result.returncode == 2
    assert result.stderr == "error: no/such.yaml: no such spec file\n"


def test_one_weight_of_a_loss_mix_can_be_swept(tiny_document):
    spec = parse_document({**tiny_document, "search": {"model.loss.ssim": {"uniform": [0.0, 5.0]}}}, "s.yaml")
    assert spec.with_values({"model.loss.ssim": 2.5}).model.loss == {"ssim": 2.5}
    bad = {**tiny_document, "search": {"model.loss.perceptual": {"uniform": [0.0, 5.0]}}}
    with pytest.raises(SpecError, match="search.model.loss.perceptual: value 0.0 does not fit"):
        parse_document(bad, "s.yaml")
    with pytest.raises(SpecError, match="model.beta is not a mapping"):
        parse_document({**tiny_document, "search": {"model.beta.x": {"uniform": [0.0, 5.0]}}}, "s.yaml")


def test_a_spec_is_data_and_never_code(tmp_path):
    """A spec cannot run or import anything: YAML's Python tags are refused, and no key names a
    Python object (there is no `plugins:` key; models are added to models/ and registered)."""
    marker = tmp_path / "ran"
    (tmp_path / "evil.yaml").write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(SpecError, match="could not determine a constructor for the tag"):
        load_spec(tmp_path / "evil.yaml")
    assert not marker.exists()
    (tmp_path / "plugin.yaml").write_text("plugins: [mypackage.models]\nmodel: {name: vae}\n")
    with pytest.raises(SpecError, match="plugins"):
        load_spec(tmp_path / "plugin.yaml")
    (tmp_path / "dotted.yaml").write_text("model: {name: os.system}\n")
    with pytest.raises(SpecError, match="os.system"):
        load_spec(tmp_path / "dotted.yaml")


def test_the_code_never_evaluates_or_unpickles_user_input():
    """No eval/exec/pickle/import-by-name anywhere in the package; every torch.load is weights-only
    (tensors and plain containers), so a checkpoint cannot carry code."""
    root = Path(__file__).resolve().parents[2]
    sources = [p for package in ("runner", "models", "alignment") for p in (root / package).rglob("*.py")]
    assert sources
    for source in sources:
        text = source.read_text()
        for forbidden in (r"eval\(", r"exec\(", r"pickle\.loads?\(", r"import_module\(", r"__import__\(", r"yaml\.load\(", "allow_pickle=True"):
            # a bare call: not a method (model.eval()) nor part of a longer name (align_eval)
            assert not re.search(r"(?<![\w.])" + forbidden, text), f"{source.name}: {forbidden}"
        for call in text.split("torch.load(")[1:]:
            assert "weights_only=True" in call.split("\n")[0], f"{source.name}: torch.load without weights_only=True"
