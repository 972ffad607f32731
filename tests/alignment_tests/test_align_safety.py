"""`gensweep align` never writes over what it reads, and refuses what cannot work before it
starts: real subprocesses of the command on real files, symlinks included."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")
# The command runs this checkout's code (a worktree's, not whatever the venv was installed from).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _gensweep(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([GENSWEEP, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=timeout, check=False)


def _checksums(directory: Path) -> dict[str, str]:
    """Every file under `directory` (symlinks followed) -> sha256 of its bytes."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and not result.stdout, result.stdout
    for word in words:
        assert word in lines[0], lines[0]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    """`gensweep align synth f --frames 6`: the originals every test below must leave as they are."""
    home = tmp_path_factory.mktemp("align-safety")
    made = _gensweep("align", "synth", "f", "--frames", 6, "--size", 64, "--motion", "translation", cwd=home)
    assert made.returncode == 0, made.stderr
    return home / "f"


# -- item 1: OUTPUT_DIR that is INPUT_DIR, however it is spelled -------------------------------
def _same_spellings(home: Path) -> dict[str, str]:
    (home / "link-to-f").symlink_to(home / "f", target_is_directory=True)
    return {
        "same-name": "f",
        "dotdot": "f/../f",
        "dot-and-slash": "./f/",
        "absolute": str(home / "f"),
        "symlink": "link-to-f",
        "symlink-dotdot": "link-to-f/../f",
    }


@pytest.mark.parametrize("spelling", ["same-name", "dotdot", "dot-and-slash", "absolute",
                                      "symlink", "symlink-dotdot"])
def test_output_dir_that_is_the_input_dir_is_refused(frames, tmp_path, spelling):
    home = tmp_path
    shutil.copytree(frames, home / "f")
    output = _same_spellings(home)[spelling]
    before = _checksums(home / "f")
    result = _gensweep("align", "f", output, cwd=home)
    _assert_refused(result, "OUTPUT_DIR", "INPUT_DIR")
    assert _checksums(home / "f") == before
    assert not (home / "f" / "transforms.csv").exists()


def test_a_symlinked_input_dir_given_as_output_is_refused(frames, tmp_path):
    """INPUT_DIR itself a symlink to OUTPUT_DIR: the same files under two names."""
    shutil.copytree(frames, tmp_path / "f")
    (tmp_path / "in").symlink_to(tmp_path / "f", target_is_directory=True)
    before = _checksums(tmp_path / "f")
    _assert_refused(_gensweep("align", "in", "f", cwd=tmp_path), "OUTPUT_DIR", "INPUT_DIR")
    assert _checksums(tmp_path / "f") == before


def test_input_frames_that_are_symlinks_into_the_output_dir_are_refused(frames, tmp_path):
    """A directory of links to the originals, aligned into the originals' directory: writing
    out/frame_0003.png would replace the file that in/frame_0003.png names."""
    shutil.copytree(frames, tmp_path / "originals")
    (tmp_path / "in").mkdir()
    for frame in (tmp_path / "originals").glob("frame_*.png"):
        (tmp_path / "in" / frame.name).symlink_to(frame)
    before = _checksums(tmp_path / "originals")
    result = _gensweep("align", "in", "originals", cwd=tmp_path)
    _assert_refused(result, "frame_0000.png")
    assert _checksums(tmp_path / "originals") == before
    assert not (tmp_path / "originals" / "transforms.csv").exists()


@pytest.mark.parametrize("option", ["--reference", "--mask"])
def test_a_reference_or_mask_that_an_output_would_replace_is_refused(frames, tmp_path, option):
    """--reference out/frame_0002.png (an earlier run's output, say): this run writes that name."""
    shutil.copytree(frames, tmp_path / "f")
    shutil.copytree(frames, tmp_path / "out")
    kept = tmp_path / "out" / "frame_0002.png"
    before = kept.read_bytes()
    result = _gensweep("align", "f", "out", option, kept, cwd=tmp_path)
    _assert_refused(result, option, "frame_0002.png")
    assert kept.read_bytes() == before
    assert not (tmp_path / "out" / "transforms.csv").exists()


def test_an_output_dir_that_cannot_be_made_is_one_line(frames, tmp_path):
    (tmp_path / "taken").write_text("not a directory")
    result = _gensweep("align", frames, "taken/out", cwd=tmp_path, timeout=120)
    _assert_refused(result, "taken/out", "cannot create")
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_a_reference_of_another_size_is_refused_before_anything_is_written(frames, tmp_path):
    """Every frame would fail against it (and be copied unaligned, then skipped as done)."""
    cv2.imwrite(str(tmp_path / "small.png"), cv2.resize(cv2.imread(str(frames / "frame_0000.png")), (32, 32)))
    result = _gensweep("align", frames, "out", "--reference", "small.png", cwd=tmp_path, timeout=120)
    _assert_refused(result, "--reference small.png", "32x32", "64x64")
    assert not (tmp_path / "out").exists()


# -- item 13: a motion the method cannot estimate ------------------------------------------------
@pytest.mark.parametrize("method, motion, valid", [
    ("fft", "homography", "translation, similarity"),
    ("features", "translation", "homography, affine, partial"),
    ("ecc", "bogus", "translation, euclidean, affine, homography"),
    ("fft", "bogus", "translation, similarity"),
    ("ecc", "partial", "translation, euclidean, affine, homography"),
])
def test_an_impossible_method_and_motion_is_refused_before_anything_is_written(frames, tmp_path, method, motion, valid):
    before = _checksums(frames)
    result = _gensweep("align", frames, "out", "--method", method, "--motion", motion, cwd=tmp_path, timeout=120)
    _assert_refused(result, f"--motion {motion}", method, valid)
    assert not (tmp_path / "out").exists()  # nothing written, not even the directory
    assert _checksums(frames) == before


@pytest.mark.slow
def test_align_exits_1_with_its_summary_when_no_frame_was_aligned(tmp_path):
    """Blank frames have nothing to register on: every frame fails, so the command fails."""
    (tmp_path / "blank").mkdir()
    for index in range(3):
        cv2.imwrite(str(tmp_path / "blank" / f"frame_{index}.png"), np.full((32, 32), 90 + index, np.uint8))
    result = _gensweep("align", "blank", "out", "--method", "fft", "--on-fail", "skip", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "aligned 0, failed 3" in result.stdout  # the summary is still printed
    assert result.stdout.count("failed: frame_") == 3
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "no frame" in errors[0] and "blank" in errors[0], result.stderr
    assert "Traceback" not in result.stderr
    # Run again: the failed frames are recorded as done, and still none of them is aligned.
    again = _gensweep("align", "blank", "out", "--method", "fft", cwd=tmp_path)
    assert again.returncode == 1 and "skipped (done before) 3 of 3" in again.stdout, again.stdout + again.stderr


@pytest.mark.parametrize("on_fail, blank", [("copy", False), ("copy", True), ("identity", True)])
def test_no_output_is_written_through_a_link_left_in_the_output_dir(frames, tmp_path, on_fail, blank):
    """Each output goes into a file created for it, then renamed: a link waiting under the
    temporary's name (planted, or left over) is replaced, and what it points to is not opened."""
    from alignment.pipeline import AlignSettings, FrameAligner
    from alignment.records import FrameRecord, write_records

    shutil.copytree(frames, tmp_path / "f")
    out = tmp_path / "out"
    out.mkdir()
    frame = tmp_path / "f" / "frame_0001.png"
    if blank:  # a frame that fails: copied as it is, or written unwarped
        cv2.imwrite(str(frame), np.full((64, 64), 90, np.uint8))
    victim = tmp_path / "f" / "frame_0005.png"
    (out / ".frame_0001.png.tmp").symlink_to(victim)
    (out / ".transforms.csv.tmp").symlink_to(tmp_path / "f" / "truth.csv")
    before = _checksums(tmp_path / "f")
    reference = cv2.imread(str(tmp_path / "f" / "frame_0000.png"), cv2.IMREAD_UNCHANGED)
    row = FrameAligner(reference, str(out), AlignSettings(method="fft", on_fail=on_fail), None).align_one(frame)
    assert row["ok"] != blank
    write_records(out / "transforms.csv", [FrameRecord("frame_0001.png", row["ok"], "fft", 1.0, "", np.eye(3))])
    assert _checksums(tmp_path / "f") == before
    assert (out / "frame_0001.png").is_file() and not (out / "frame_0001.png").is_symlink()
    assert sorted(p.name for p in out.iterdir()) == ["frame_0001.png", "transforms.csv"]
