"""A real SIGKILL of `gensweep align` half-way through a video, then a rerun: transforms.csv ends
with exactly one row a frame, and every aligned frame is on disk and readable."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
from video_helpers import write_video  # beside this file

from alignment.records import COLUMNS, read_records

ROOT = Path(__file__).resolve().parents[2]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
       "RAY_ADDRESS": "local"}  # a Ray of its own: the kill must take it down with the driver
FRAMES = 250  # the kill comes at a fifth: half-way enough, and a quarter minute less than 500


def _rows(transforms: Path) -> int:
    try:
        return max(0, transforms.read_bytes().count(b"\n") - 1)
    except FileNotFoundError:
        return 0


def _kill_group(process: subprocess.Popen) -> None:
    """What the killed driver's Ray leaves behind (its agents outlive it), by its process group."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
def test_a_run_killed_half_way_resumes_to_one_row_a_frame(tmp_path):
    video = tmp_path / "shaken.avi"
    write_video(video, frames=FRAMES, size=192, seed=7)
    out = tmp_path / "aligned"
    transforms = out / "transforms.csv"
    command = [GENSWEEP, "align", str(video), str(out), "--method", "ecc"]
    first = subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while _rows(transforms) < FRAMES // 5 and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        before_kill = _rows(transforms)
        assert first.poll() is None, "the run finished before it could be killed half-way"
        first.send_signal(signal.SIGKILL)  # the driver only: no handler, no finally, no flush
        first.wait(timeout=30)
    finally:
        _kill_group(first)
    rows_left = _rows(transforms)
    assert 0 < before_kill <= rows_left < FRAMES, (before_kill, rows_left)

    second = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{rows_left} already done" in second.stdout or f"{rows_left - 1} already done" in second.stdout, second.stdout

    with transforms.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    names = [row["frame"] for row in rows]
    assert list(rows[0]) == COLUMNS
    assert names == [f"{i:03d}.png" for i in range(FRAMES)]  # every frame once, none twice, in order
    assert len(read_records(transforms)) == FRAMES
    for row in rows:
        assert row["ok"] == "1", row
        image = cv2.imread(str(out / row["frame"]), cv2.IMREAD_UNCHANGED)
        assert image is not None and image.shape[:2] == (192, 192), row["frame"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]  # no half-written frame left
    assert (out / "summary.png").is_file()


def test_a_torn_last_line_is_dropped_not_parsed(tmp_path):
    """What a SIGKILL in the middle of an append leaves: the rows before it stand, its frame is redone."""
    import numpy as np

    from alignment.pipeline import _done_before, _keep_rows
    from alignment.records import FrameRecord, RecordAppender, write_records

    transforms = tmp_path / "transforms.csv"
    write_records(transforms, [])
    appender = RecordAppender(transforms)
    appender.append([FrameRecord(f"{i:02d}.png", True, "ecc", 0.99, "", np.eye(3), i, 10.0, 2.0) for i in range(3)])
    appender.close()
    text = transforms.read_bytes()
    transforms.write_bytes(text[: len(text) - 20])  # the third row cut short
    assert sorted(read_records(transforms)) == ["00.png", "01.png"]
    assert _done_before(transforms, "ecc") == {"00.png", "01.png"}
    _keep_rows(transforms, "ecc", overwrite=False)
    assert transforms.read_bytes().count(b"\n") == 3 and transforms.read_bytes().endswith(b"\n")
    assert sorted(read_records(transforms)) == ["00.png", "01.png"]
