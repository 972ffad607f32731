"""Which quality metrics a spec measures, and `gensweep validate`'s one line saying what is measured,
what is not and why: never silently off. The weights file here is a zip archive as torch.save
writes (the spec layer reads only its first bytes; tests/train_tests/test_inception.py loads real ones)."""

from __future__ import annotations

import re
import zipfile

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from runner.cli import main
from runner.spec import SpecError, load_spec
from runner.spec.quality import INCEPTION_WEIGHTS

LABELLED = {"model": {"name": "vae"}, "data": {"name": "digits", "train_size": 256, "val_size": 64}}


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def _place_weights(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("weights/data.pkl", b"")
    return path


def _hub_weights(torch_home):
    return torch_home / "hub" / "checkpoints" / INCEPTION_WEIGHTS


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(4):
        cv2.imwrite(str(folder / f"{index}.png"), np.full((16, 16, 3), 60 * index, np.uint8))
    return folder


def _validate(tmp_path, document, *overrides):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    arguments = ["validate", str(path)]
    for override in overrides:
        arguments += ["--set", override]
    return CliRunner().invoke(main, arguments)


def _quality_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("  quality:")]
    assert len(lines) == 1, output
    return lines[0]


def test_without_weights_validate_says_what_is_measured_and_what_is_not(tmp_path, torch_home):
    result = _validate(tmp_path, LABELLED)
    assert result.exit_code == 0, result.output
    line = _quality_line(result.output)
    assert line == ("  quality: fd, kid, kid_std, precision, recall, class_score (labels' classifier); not measured: "
                    f"fid, kid_inception, kid_inception_std (quality.fid: false, and no Inception weights at "
                    f"{_hub_weights(torch_home)} or quality.inception_path)")


def test_with_weights_present_fid_is_still_on_request(tmp_path, torch_home):
    _place_weights(_hub_weights(torch_home))
    line = _quality_line(_validate(tmp_path, LABELLED).output)
    assert line.endswith("; not measured: fid, kid_inception, kid_inception_std "
                         f"(quality.fid: false; Inception weights at {_hub_weights(torch_home)})")
    line = _quality_line(_validate(tmp_path, LABELLED, "quality.fid=true").output)
    assert line == ("  quality: fd, kid, kid_std, precision, recall, class_score (labels' classifier); "
                    "fid, kid_inception, kid_inception_std (Inception-v3)")


def test_an_unlabelled_folder_ranks_by_fid_when_the_weights_are_there(tmp_path, torch_home, photos):
    _place_weights(_hub_weights(torch_home))
    document = {"model": {"name": "vae"}, "data": {"name": "folder", "path": str(photos), "image_size": 16},
                "quality": {"fid": True}, "tune": {"metric": "val/fid", "mode": "min"}}
    result = _validate(tmp_path, document)
    assert result.exit_code == 0, result.output
    assert "optimizing val/fid (min)" in result.output
    assert _quality_line(result.output) == (
        "  quality: fid, kid_inception, kid_inception_std (Inception-v3); not measured: fd, kid, kid_std, "
        "precision, recall, class_score (unlabelled data)"
    )
    spec = load_spec(tmp_path / "spec.yaml")
    assert spec.quality_metrics() == ["fid", "kid_inception", "kid_inception_std"]
    assert {"val/fid", "val/kid_inception", "val/kid_inception_std"} <= set(spec.metric_names())


def test_an_unlabelled_folder_without_weights_says_it_measures_nothing(tmp_path, torch_home, photos):
    document = {"model": {"name": "vae"}, "data": {"name": "folder", "path": str(photos), "image_size": 16}}
    line = _quality_line(_validate(tmp_path, document).output)
    assert line == ("  quality: none; not measured: fd, kid, kid_std, precision, recall, class_score (unlabelled data); "
                    "not measured: fid, kid_inception, kid_inception_std (quality.fid: false, and no Inception weights "
                    f"at {_hub_weights(torch_home)} or quality.inception_path)")


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["quality.fid=true"], r"quality.fid: no Inception weights at \S+/hub/checkpoints/" + INCEPTION_WEIGHTS
         + r": place torch-fidelity's file there or set quality.inception_path \(gensweep downloads nothing\)$"),
        (["quality.fid=true", "quality.inception_path=/nowhere/inception.pth"],
         r"quality.inception_path: no file /nowhere/inception.pth \(torch-fidelity's " + INCEPTION_WEIGHTS + r"\)$"),
        (["tune.metric=val/fid"], r"tune.metric: vae does not report 'val/fid' \(not measured: quality.fid: false, and no Inception weights at "),
        (["quality.every=0", "tune.metric=val/kid_inception"], r"\(not measured: quality.every: 0\)"),
    ],
    ids=["fid without weights", "no file at inception_path", "fid not asked for", "every 0"],
)
def test_inception_metrics_that_cannot_be_measured_are_one_line(tmp_path, torch_home, overrides, expected):
    result = _validate(tmp_path, LABELLED, *overrides)
    assert result.exit_code == 2
    message = result.output.strip()
    assert "\n" not in message and re.search(expected, message), message


def test_a_file_that_is_not_a_torch_save_archive_is_refused(tmp_path, torch_home):
    _hub_weights(torch_home).parent.mkdir(parents=True)
    _hub_weights(torch_home).write_bytes(b"\x80\x04not a zip")  # a bare pickle stream: never unpickled
    with pytest.raises(SpecError, match=r"quality.inception_path: \S+ is not a torch.save weights file"):
        load_spec(_spec_file(tmp_path, LABELLED), ["quality.fid=true"])


def test_a_relative_inception_path_becomes_absolute(tmp_path, torch_home, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _place_weights(tmp_path / "weights" / "inception.pth")
    spec = load_spec(_spec_file(tmp_path, LABELLED), ["quality.fid=true", "quality.inception_path=weights/inception.pth"])
    assert spec.quality.inception_path == str(tmp_path / "weights" / "inception.pth")


def _spec_file(tmp_path, document):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_gan_on_unlabelled_data_optimizes_fid_when_inception_is_measured(tmp_path, torch_home, photos):
    _place_weights(_hub_weights(torch_home))
    document = {"model": {"name": "gan", "variant": "dcgan"},
                "data": {"name": "folder", "path": str(photos), "image_size": 16, "channels": 3}}
    path = tmp_path / "gan.yaml"
    path.write_text(yaml.safe_dump({**document, "quality": {"fid": True}}))
    spec = load_spec(path)
    assert (spec.metrics, spec.modes) == (["val/fid"], ["min"])  # val/fd needs labels; Inception's counterpart
    validated = _validate(tmp_path, {**document, "quality": {"fid": True}})
    assert validated.exit_code == 0 and "optimizing val/fid (min)" in validated.output, validated.output
    path.write_text(yaml.safe_dump({**document, "quality": {"fid": True}, "tune": {"metric": "val/kid_inception"}}))
    assert load_spec(path).metrics == ["val/kid_inception"]  # a metric the spec names stays
    refused = _validate(tmp_path, document)  # no fid: nothing measures val/fd here, and the line says why
    assert refused.exit_code == 2 and "val/fd" in refused.output and "not measured: unlabelled data" in refused.output
    labelled = tmp_path / "labelled.yaml"
    labelled.write_text(yaml.safe_dump({"model": {"name": "gan"}, "data": LABELLED["data"], "quality": {"fid": True}}))
    assert load_spec(labelled).metrics == ["val/fd"]  # labels: the classifier's distance, as before
