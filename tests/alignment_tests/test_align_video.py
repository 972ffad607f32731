"""`gensweep align VIDEO OUTPUT_DIR`: real video files written by OpenCV's VideoWriter, frames
named by their index, --frames, --reference as a frame index, resume, damaged videos, and the
summary picture checked against transforms.csv."""

from __future__ import annotations

import csv
import math
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from video_helpers import write_video  # beside this file

from alignment.pipeline import AlignSettings, align_directory
from alignment.records import MATRIX_COLUMNS, corner_errors
from alignment.summary import SERIES_COLUMNS, draw, read_series
from runner.cli import main

ECC = AlignSettings(method="ecc", motion="euclidean", levels=2)


def _rows(out):
    return list(csv.DictReader((out / "transforms.csv").open(newline="")))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["avi", "mp4", "mkv"])
def test_a_video_is_aligned_frame_by_index_with_a_range_and_an_index_reference(ray_runtime, tmp_path, suffix):
    video = tmp_path / f"shaken.{suffix}"
    truth = write_video(video, frames=30)
    out = tmp_path / "aligned"
    summary = align_directory(video, out, ECC, reference="3", frames="1:25:2", say=lambda _: None)
    assert (summary.total, summary.aligned, summary.failed) == (12, 12, 0)
    rows = _rows(out)
    assert [row["frame"] for row in rows] == [f"{i:02d}.png" for i in range(1, 25, 2)]  # 30 frames: two digits
    assert [int(row["index"]) for row in rows] == list(range(1, 25, 2))
    for row in rows:
        image = cv2.imread(str(out / row["frame"]), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape[:2] == (128, 128)
    # The reference is frame 3: frame 3 maps onto itself, and every frame onto frame 3's view.
    matrices = {int(r["index"]): np.array([float(r[c]) for c in MATRIX_COLUMNS]).reshape(3, 3) for r in rows}
    assert corner_errors(matrices[3], np.eye(3), 128, 128) < 0.05
    to_reference = np.linalg.inv(truth[3])  # reference view -> frame 3
    errors = [corner_errors(matrices[i], to_reference @ truth[i], 128, 128) for i in matrices]
    assert np.median(errors) < 0.5, errors  # through a lossy codec
    assert all(float(r["mad_after"]) < float(r["mad_before"]) for r in rows if r["index"] != "3")

    # Resume: frames with a row are skipped, the others aligned, one row a frame.
    again = align_directory(video, out, ECC, reference="3", frames="1:30:2", say=lambda _: None)
    assert (again.skipped, again.aligned) == (12, 3)
    assert [row["frame"] for row in _rows(out)] == [f"{i:02d}.png" for i in range(1, 30, 2)]


@pytest.mark.slow
def test_a_truncated_video_gives_failed_rows_for_what_cannot_be_decoded(ray_runtime, tmp_path):
    whole = tmp_path / "whole.avi"
    write_video(whole, frames=40)
    video = tmp_path / "cut.avi"
    video.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # the container still says 40
    out = tmp_path / "aligned"
    summary = align_directory(video, out, ECC, say=lambda _: None)
    rows = _rows(out)
    assert [row["frame"] for row in rows] == [f"{i:02d}.png" for i in range(40)]
    failed = [int(row["index"]) for row in rows if row["ok"] == "0"]
    assert summary.aligned > 5 and summary.failed == len(failed) > 5
    assert failed == list(range(min(failed), 40))  # everything after the cut, nothing before
    assert all(row["reason"] == "the video cannot be decoded at this frame" for row in rows if row["ok"] == "0")
    assert not any((out / f"{i:02d}.png").exists() for i in failed)  # nothing decoded, nothing written
    assert "failed frames" in "\n".join(summary.picture)


@pytest.mark.parametrize("content", ["junk", "half an mp4"])
def test_a_corrupt_video_is_one_line_naming_it(tmp_path, content):
    video = tmp_path / "broken.mp4"
    if content == "junk":
        video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 4000)
    else:
        whole = tmp_path / "whole.mp4"
        write_video(whole, frames=10)
        video.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # no moov atom at the end
    result = CliRunner().invoke(main, ["align", str(video), str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(video) in lines[0] and "cannot" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, words", [
    (["--frames", "5"], "START:STOP"),
    (["--frames", "50:60"], "selects no frame"),
    (["--frames", "0:10:0"], "STEP"),
    (["--reference", "99"], "no such frame"),
])
def test_a_bad_range_or_reference_index_is_refused_before_anything_is_written(tmp_path, args, words):
    video = tmp_path / "v.avi"
    write_video(video, frames=12)
    result = CliRunner().invoke(main, ["align", str(video), str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and words in result.stderr, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_summary_plots_exactly_the_shake_transforms_csv_records(ray_runtime, tmp_path):
    video = tmp_path / "v.avi"
    truth = write_video(video, frames=24, seed=4)
    out = tmp_path / "aligned"
    result = CliRunner().invoke(main, ["align", str(video), str(out), "--method", "ecc", "--motion", "euclidean"])
    assert result.exit_code == 0, result.output
    assert "shake: x" in result.output and "residual: mean |frame - reference|" in result.output
    picture = cv2.imread(str(out / "summary.png"))
    assert picture is not None and picture.shape[:2] == (750, 1000)

    # summary.csv, row for row, is transforms.csv's matrices read as the shake at the centre.
    plotted = list(csv.DictReader((out / "summary.csv").open(newline="")))
    assert list(plotted[0]) == SERIES_COLUMNS
    for row, recorded in zip(plotted, _rows(out), strict=True):
        assert row["frame"] == recorded["frame"] and row["index"] == recorded["index"]
        shake = np.linalg.inv(np.array([float(recorded[c]) for c in MATRIX_COLUMNS]).reshape(3, 3))
        centre = np.array([63.5, 63.5, 1.0])
        x, y = (shake @ centre)[:2] / (shake @ centre)[2] - 63.5
        assert float(row["shift_x"]) == pytest.approx(x, abs=1e-5)
        assert float(row["shift_y"]) == pytest.approx(y, abs=1e-5)
        assert float(row["rotation_deg"]) == pytest.approx(math.degrees(math.atan2(shake[1, 0], shake[0, 0])), abs=1e-5)
        assert float(row["mad_after"]) == pytest.approx(float(recorded["mad_after"]))
        # ... and that is the camera's true shake, to within the codec's error.
        true_shake = np.linalg.inv(truth[int(row["index"])])
        true_x, true_y = (true_shake @ centre)[:2] - 63.5
        assert abs(float(row["shift_x"]) - true_x) < 0.5 and abs(float(row["shift_y"]) - true_y) < 0.5

    # The figure saved as summary.png draws those same series.
    figure = draw(read_series(out / "transforms.csv", 128, 128))
    lines = {line.get_label(): line for axes in figure.axes for line in axes.get_lines()}
    assert np.allclose(lines["x shift"].get_xdata(), [int(r["index"]) for r in plotted])
    assert np.allclose(lines["x shift"].get_ydata(), [float(r["shift_x"]) for r in plotted], atol=1e-5)
    assert np.allclose(lines["y shift"].get_ydata(), [float(r["shift_y"]) for r in plotted], atol=1e-5)
    assert np.allclose(lines["after alignment"].get_ydata(), [float(r["mad_after"]) for r in plotted], rtol=1e-5)


def test_a_sweep_report_links_the_alignment_summary_of_its_data(tmp_path):
    from runner.results.html_report import _alignment_link

    data = tmp_path / "aligned"
    data.mkdir()
    spec = SimpleNamespace(document={"data": {"name": "folder", "path": str(data)}})
    assert _alignment_link(spec) == ""  # not written by gensweep align
    (data / "transforms.csv").write_text("frame\n")
    (data / "summary.png").write_bytes(b"\x89PNG")
    link = _alignment_link(spec)
    assert (data / "summary.png").resolve().as_uri() in link and "summary.png" in link
    assert _alignment_link(None) == ""


@pytest.mark.slow
def test_a_folder_takes_a_range_and_an_index_reference_too(ray_runtime, tmp_path):
    from alignment.synthetic import make_sequence

    make_sequence(tmp_path / "f", frames=8, size=64, motion="translation", seed=6, max_shift=2)
    out = tmp_path / "aligned"
    summary = align_directory(tmp_path / "f", out, AlignSettings(method="fft"), reference="5", frames="0:8:3", say=lambda _: None)
    assert (summary.total, summary.aligned) == (3, 3)
    rows = _rows(out)
    assert [(row["frame"], row["index"]) for row in rows] == [("frame_0000.png", "0"), ("frame_0003.png", "3"), ("frame_0006.png", "6")]
    assert sorted(p.name for p in out.glob("frame_*.png")) == [row["frame"] for row in rows]


@pytest.mark.slow
def test_blocks_of_several_batches_give_one_row_a_frame(ray_runtime, tmp_path, monkeypatch):
    """Beyond MAX_BLOCKS batches (16,000 frames) a block holds several: the same rows, once each."""
    from alignment import pipeline

    monkeypatch.setattr(pipeline, "MAX_BLOCKS", 2)
    video = tmp_path / "v.avi"
    write_video(video, frames=40, size=64)
    out = tmp_path / "aligned"
    summary = align_directory(video, out, AlignSettings(method="fft", batch_size=4), say=lambda _: None)
    assert (summary.total, summary.aligned + summary.failed) == (40, 40)
    assert [row["frame"] for row in _rows(out)] == [f"{i:02d}.png" for i in range(40)]
