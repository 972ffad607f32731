"""Frame registration: accuracy on sequences with known motion, soft failures, the Ray Data pipeline."""

from __future__ import annotations

import csv

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from alignment import methods
from alignment.pipeline import AlignSettings, align_directory
from alignment.records import accuracy, corner_errors, read_records
from alignment.synthetic import make_sequence
from runner.cli import main


def _errors(directory, truth, align, frames):
    reference = cv2.imread(str(directory / "frame_0000.png"), cv2.IMREAD_UNCHANGED)
    errors, failures = [], []
    for index in range(1, frames):
        name = f"frame_{index:04d}.png"
        result = align(cv2.imread(str(directory / name), cv2.IMREAD_UNCHANGED), reference)
        if not result.ok:
            failures.append(result.reason)
            continue
        errors.append(corner_errors(result.matrix, truth[name].matrix, 256, 256))
    return np.median(errors), failures


@pytest.fixture(scope="module")
def euclidean_sequence(tmp_path_factory):
    directory = tmp_path_factory.mktemp("euclidean")
    return directory, read_records(make_sequence(directory, frames=10, size=256, motion="euclidean", seed=1))


@pytest.fixture(scope="module")
def translation_sequence(tmp_path_factory):
    directory = tmp_path_factory.mktemp("translation")
    return directory, read_records(make_sequence(directory, frames=10, size=256, motion="translation", seed=2))


def test_ecc_euclidean_is_within_a_twentieth_of_a_pixel(euclidean_sequence):
    directory, truth = euclidean_sequence
    median, failures = _errors(directory, truth, lambda f, r: methods.align_ecc(f, r, "euclidean"), 10)
    assert not failures and median < 0.05


def test_fft_translation_is_within_a_tenth_of_a_pixel(translation_sequence):
    directory, truth = translation_sequence
    median, failures = _errors(directory, truth, lambda f, r: methods.align_fft(f, r, upsample=20), 10)
    assert not failures and median < 0.1


@pytest.mark.parametrize("detector", ["orb", "sift", "akaze"])
def test_features_are_within_half_a_pixel(euclidean_sequence, detector):
    directory, truth = euclidean_sequence
    median, failures = _errors(directory, truth, lambda f, r: methods.align_features(f, r, detector, "partial"), 10)
    assert not failures and median < 0.5


def test_the_matrix_maps_frame_pixels_to_reference_pixels(translation_sequence):
    directory, _ = translation_sequence
    reference = cv2.imread(str(directory / "frame_0000.png"), 0).astype(np.float32)
    frame = cv2.imread(str(directory / "frame_0005.png"), 0)
    result = methods.align_ecc(frame, reference, "translation")
    aligned = methods.warp(frame, result.matrix).astype(np.float32)
    inner = (slice(20, -20), slice(20, -20))
    before = np.corrcoef(frame[inner].ravel(), reference[inner].ravel())[0, 1]
    after = np.corrcoef(aligned[inner].ravel(), reference[inner].ravel())[0, 1]
    assert after > 0.98 and after > before


@pytest.mark.parametrize("align", [methods.align_ecc, methods.align_fft, methods.align_features])
def test_a_blank_frame_fails_softly(align, translation_sequence):
    directory, _ = translation_sequence
    reference = cv2.imread(str(directory / "frame_0000.png"), 0)
    result = align(np.full_like(reference, 128), reference)
    assert not result.ok and "blank frame" in result.reason and np.array_equal(result.matrix, np.eye(3))


def test_unrelated_frames_fail_softly(translation_sequence):
    directory, _ = translation_sequence
    reference = cv2.imread(str(directory / "frame_0000.png"), 0)
    noise = np.random.default_rng(0).integers(0, 255, reference.shape, dtype=np.uint8)
    assert not methods.align_features(noise, reference).ok
    assert not methods.align_ecc(noise, reference, "euclidean").ok


def test_colour_frames_and_a_mask(translation_sequence):
    directory, truth = translation_sequence
    reference = cv2.cvtColor(cv2.imread(str(directory / "frame_0000.png"), 0), cv2.COLOR_GRAY2BGR)
    frame = cv2.cvtColor(cv2.imread(str(directory / "frame_0003.png"), 0), cv2.COLOR_GRAY2BGR)
    frame[:40, :120] = 255  # a timestamp overlay the mask hides
    mask = np.full(reference.shape[:2], 255, np.uint8)
    mask[:48, :128] = 0
    result = methods.align_ecc(frame, reference, "translation", mask=mask)
    assert result.ok and corner_errors(result.matrix, truth["frame_0003.png"].matrix, 256, 256) < 0.1


@pytest.mark.slow
def test_pipeline_aligns_resumes_and_feeds_a_sweep(ray_runtime, tmp_path):
    frames = tmp_path / "frames"
    make_sequence(frames, frames=12, size=64, motion="translation", seed=3, max_shift=3)
    (frames / "frame_0005.png").write_bytes(b"\x89PNG\r\n broken")  # a corrupt frame
    cv2.imwrite(str(frames / "frame_0007.png"), np.full((64, 64), 90, np.uint8))  # a blank one
    out = tmp_path / "aligned"
    summary = align_directory(frames, out, AlignSettings(method="ecc", motion="translation", levels=2), say=lambda _: None)
    assert (summary.total, summary.aligned, summary.failed) == (12, 10, 2)
    assert summary.failures == ["frame_0005.png: unreadable or corrupt image", "frame_0007.png: blank frame (no texture to register on)"]
    rows = list(csv.DictReader((out / "transforms.csv").open()))
    assert [row["frame"] for row in rows] == sorted(f"frame_{i:04d}.png" for i in range(12))
    assert rows[5]["ok"] == "0" and rows[7]["ok"] == "0" and rows[0]["h22"] == "1"
    written = sorted(p.name for p in out.glob("frame_*.png"))
    assert written == [row["frame"] for row in rows if row["frame"] != "frame_0005.png"]  # the corrupt one is not
    assert (out / "frame_0007.png").read_bytes() == (frames / "frame_0007.png").read_bytes()  # --on-fail copy
    truth = read_records(frames / "truth.csv")
    (ecc,) = accuracy(read_records(out / "transforms.csv"), truth, 64, 64)
    assert ecc.failed == 2 and ecc.median < 0.1

    again = align_directory(frames, out, AlignSettings(method="ecc", motion="translation"), say=lambda _: None)
    assert (again.skipped, again.aligned, again.failed) == (12, 0, 0)  # nothing redone

    # The aligned directory is a ready `folder` data set.
    spec = {
        "name": "on_aligned",
        "model": {"name": "ae", "latent_dim": 4, "hidden_dim": 32},
        "data": {"name": "folder", "path": str(out), "image_size": 32, "val_fraction": 0.25},
        "train": {"epochs": 1, "batch_size": 4},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--storage-path", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output[-3000:]
    assert "1 of 1 trials finished" in result.output


@pytest.mark.slow
def test_align_command_and_eval(ray_runtime, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["align", "synth", str(tmp_path / "f"), "--frames", "6", "--size", "64", "--motion", "translation"]).exit_code == 0
    result = runner.invoke(main, ["align", str(tmp_path / "f"), str(tmp_path / "o"), "--method", "fft"])
    assert result.exit_code == 0, result.output
    assert "aligned 6, failed 0" in result.output
    report = runner.invoke(main, ["align", "eval", str(tmp_path / "o" / "transforms.csv"), str(tmp_path / "f" / "truth.csv")])
    line = next(row for row in report.output.splitlines() if row.startswith("fft"))
    assert float(line.split()[3]) < 0.2
    missing = runner.invoke(main, ["align", str(tmp_path / "nowhere"), str(tmp_path / "o2")])
    assert missing.exit_code == 2 and "no such directory" in missing.stderr


@pytest.mark.parametrize("on_fail, written", [("copy", "same bytes"), ("identity", "re-encoded"), ("skip", None)])
def test_what_happens_to_a_frame_that_fails(tmp_path, translation_sequence, on_fail, written):
    from alignment.pipeline import FrameAligner

    directory, _ = translation_sequence
    reference = cv2.imread(str(directory / "frame_0000.png"), cv2.IMREAD_UNCHANGED)
    blank = tmp_path / "blank.jpg"
    cv2.imwrite(str(blank), np.full((256, 256), 77, np.uint8))
    out = tmp_path / "out"
    out.mkdir()
    row = FrameAligner(reference, str(out), AlignSettings(method="ecc", on_fail=on_fail), None).align_one(blank)
    assert not row["ok"] and row["reason"].startswith("blank frame")
    target = out / "blank.jpg"
    if written is None:
        assert not target.exists()
    elif written == "same bytes":
        assert target.read_bytes() == blank.read_bytes()
    else:
        assert cv2.imread(str(target), 0).shape == (256, 256)


def test_median_reference_resists_a_shaken_first_frame(translation_sequence, tmp_path):
    from alignment.pipeline import choose_reference, list_frames

    directory, _ = translation_sequence
    frames = list_frames(directory)
    first = choose_reference(frames, "first")
    median = choose_reference(frames, "median")
    assert median.shape == first.shape and median.dtype == first.dtype
    assert not np.array_equal(median, first)
    chosen = choose_reference(frames, str(frames[3]))
    assert np.array_equal(chosen, cv2.imread(str(frames[3]), cv2.IMREAD_UNCHANGED))


@pytest.mark.slow
def test_overwrite_redoes_every_frame(ray_runtime, tmp_path):
    make_sequence(tmp_path / "f", frames=4, size=64, motion="translation", seed=5, max_shift=2)
    settings = AlignSettings(method="fft")
    align_directory(tmp_path / "f", tmp_path / "o", settings, say=lambda _: None)
    redone = align_directory(tmp_path / "f", tmp_path / "o", settings, overwrite=True, say=lambda _: None)
    assert (redone.skipped, redone.aligned) == (0, 4)


def test_fft_log_polar_recovers_rotation(euclidean_sequence):
    directory, truth = euclidean_sequence
    rotating, failures = _errors(directory, truth, lambda f, r: methods.align_fft(f, r, log_polar=True), 10)
    shifting, _ = _errors(directory, truth, lambda f, r: methods.align_fft(f, r), 10)
    assert not failures and rotating < 0.5 and rotating < shifting / 2
