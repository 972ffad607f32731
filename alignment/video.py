"""Frames of a video file, read by index: what `gensweep align VIDEO OUTPUT_DIR` aligns.

No Ray here. The driver only opens the video to learn its length and size and to decode the
reference; the workers decode their own frames, a batch of indices at a time, so pixels never
travel through the driver. A batch is read sequentially from one seek to its first index
(a seek per batch, not per frame: bench/align_throughput.py measures both).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from alignment.errors import AlignError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    frames: int  # as the container states it; a truncated file decodes fewer (those rows fail)
    width: int
    height: int

    @property
    def name_width(self) -> int:
        """Digits of a frame's file name: 000123.png in a video of 100,000 frames."""
        return len(str(max(self.frames - 1, 0)))

    def frame_name(self, index: int) -> str:
        return f"{index:0{self.name_width}d}.png"


def open_video(path: Path) -> VideoInfo:
    """The video's length and size, or one line saying why OpenCV cannot decode it."""
    if not path.is_file():
        raise AlignError(f"{path}: no such file or directory")
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise AlignError(f"{path}: OpenCV cannot open it as a video (corrupt, truncated, or an unknown codec)")
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
        readable, frame = capture.read()
        if frames <= 0 or not readable:
            raise AlignError(f"{path}: a video with no decodable frame (corrupt, truncated, or an unknown codec)")
        return VideoInfo(path, frames, frame.shape[1], frame.shape[0])
    finally:
        capture.release()


def parse_frames(text: str | None, count: int) -> range:
    """--frames START:STOP[:STEP] (Python slice rules, either end may be left out) -> indices."""
    if not text:
        return range(count)
    parts = text.split(":")
    try:
        if len(parts) not in (2, 3):
            raise ValueError
        values = [int(part) if part.strip() else None for part in parts]
    except ValueError:
        raise AlignError(f"--frames {text}: expected START:STOP or START:STOP:STEP (integers, e.g. 0:1000:2)") from None
    if len(values) == 3 and values[2] is not None and values[2] <= 0:
        raise AlignError(f"--frames {text}: STEP must be at least 1")
    selected = range(count)[slice(*values)]
    if not selected:
        raise AlignError(f"--frames {text}: selects no frame of the {count}")
    return selected


class VideoReader:
    """Decodes frames by index in one process (a worker): keeps the capture open between
    batches, and seeks only when the next wanted frame is not the next one in the stream."""

    def __init__(self, path: Path):
        self.path = path
        self.capture: cv2.VideoCapture | None = None
        self.position = -1  # index of the frame the next read() returns; -1: unknown

    def _open(self) -> cv2.VideoCapture:
        if self.capture is None:
            self.capture = cv2.VideoCapture(str(self.path))
            self.position = 0
        return self.capture

    def read(self, indices: list[int], seek_every_frame: bool = False) -> Iterator[tuple[int, np.ndarray | None]]:
        """(index, frame or None) for each wanted index, in increasing order. A frame the codec
        cannot decode (a truncated file, a damaged packet) is None, and the next one is sought."""
        capture = self._open()
        for index in sorted(indices):
            gap = index - self.position
            if seek_every_frame or not 0 <= gap <= 8:  # a few frames ahead: grabbing is cheaper than seeking
                capture.set(cv2.CAP_PROP_POS_FRAMES, index)
                self.position, gap = index, 0
            ok = all(capture.grab() for _ in range(gap)) and capture.grab()
            frame = capture.retrieve()[1] if ok else None
            self.position = index + 1 if ok else -1  # after a failure, seek afresh
            yield index, frame

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def read_one(path: Path, index: int) -> np.ndarray | None:
    reader = VideoReader(path)
    try:
        return next(reader.read([index]))[1]
    finally:
        reader.close()
