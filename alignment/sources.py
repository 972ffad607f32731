"""Where `gensweep align` reads frames: a folder of images or a video file, behind one interface.

A source knows its selected frames by position (the frame's index in the video, or its place in
the folder's sorted listing) and the file name each is written under; the driver hands out
positions only, and a worker reads the pixels of its own batch (`read`). No Ray here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from alignment.errors import AlignError
from alignment.video import VideoInfo, VideoReader, open_video, parse_frames

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
MEDIAN_SAMPLE = 31  # frames whose pixel-wise median is the `median` reference


def read_image(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def list_frames(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise AlignError(f"{input_dir}: no such directory")
    frames = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not frames:
        raise AlignError(f"{input_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames


@dataclass
class FolderSource:
    """Image files of one directory, sorted by name; each is written under its own name."""

    directory: Path
    names: list[str]  # every image of the directory, sorted: a position indexes this list
    selection: range
    kind: str = field(default="folder", init=False)

    @classmethod
    def open(cls, directory: Path, frames: str | None = None) -> FolderSource:
        names = [p.name for p in list_frames(directory)]
        return cls(directory.resolve(), names, parse_frames(frames, len(names)))

    @property
    def count(self) -> int:
        return len(self.names)

    def name(self, position: int) -> str:
        return self.names[position]

    def input_paths(self) -> list[Path]:
        return [self.directory / self.names[position] for position in self.selection]

    def read(self, positions: list[int]) -> Iterator[tuple[int, np.ndarray | None]]:
        for position in positions:
            yield position, read_image(self.directory / self.names[position])

    def source_bytes(self, position: int) -> bytes | None:
        """The file as it is (--on-fail copy keeps a frame's own encoding)."""
        return (self.directory / self.names[position]).read_bytes()

    def close(self) -> None:
        pass


@dataclass
class VideoSource:
    """Frames of a video file, written as <index>.png, zero-padded to the frame count's width."""

    info: VideoInfo
    selection: range
    kind: str = field(default="video", init=False)
    reader: VideoReader | None = field(default=None, init=False, repr=False)

    @classmethod
    def open(cls, path: Path, frames: str | None = None) -> VideoSource:
        info = open_video(path.resolve())
        return cls(info, parse_frames(frames, info.frames))

    @property
    def count(self) -> int:
        return self.info.frames

    def name(self, position: int) -> str:
        return self.info.frame_name(position)

    def input_paths(self) -> list[Path]:
        return [self.info.path]

    def read(self, positions: list[int]) -> Iterator[tuple[int, np.ndarray | None]]:
        if self.reader is None:
            self.reader = VideoReader(self.info.path)
        yield from self.reader.read(positions)

    def source_bytes(self, position: int) -> bytes | None:
        return None  # no file of its own: --on-fail copy writes the decoded frame

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def __getstate__(self) -> dict:  # a worker opens its own capture
        return {"info": self.info, "selection": self.selection}

    def __setstate__(self, state: dict) -> None:
        self.info, self.selection, self.kind, self.reader = state["info"], state["selection"], "video", None


def open_source(path: Path, frames: str | None = None) -> FolderSource | VideoSource:
    """A directory is a folder of frames; any file is tried as a video."""
    if path.is_dir():
        return FolderSource.open(path, frames)
    if path.exists():
        return VideoSource.open(path, frames)
    raise AlignError(f"{path}: no such directory or video file")


def choose_reference(source: FolderSource | VideoSource, how: str) -> np.ndarray:
    """first (of the selected frames) | median (pixel-wise, of a spread sample of them: robust to
    a shaken first frame) | a frame index (in the video, or in the folder's sorted listing) | a file."""
    selection = source.selection
    if how == "first":
        positions, label = [selection[0]], f"frame {source.name(selection[0])}"
    elif how == "median":
        picks = np.linspace(0, len(selection) - 1, min(MEDIAN_SAMPLE, len(selection))).round().astype(int)
        positions, label = sorted({selection[i] for i in picks}), "the median sample"
    elif how.isdigit():
        if int(how) >= source.count:
            raise AlignError(f"--reference {how}: no such frame ({source.count} frames, 0 to {source.count - 1})")
        positions, label = [int(how)], f"frame {how}"
    else:
        image = read_image(Path(how))
        if image is None:
            raise AlignError(f"--reference {how}: not a readable image file (give first, median, a frame index or an image)")
        return image
    images = [image for _, image in source.read(positions) if image is not None]
    source.close()
    if not images:
        raise AlignError(f"--reference {how}: {label} cannot be read or decoded")
    if len(images) == 1:
        return images[0]
    shape = images[0].shape
    images = [image for image in images if image.shape == shape]
    return np.median(np.stack(images), axis=0).astype(images[0].dtype)
