"""A shaken video with known motion, written by OpenCV's VideoWriter, for the video tests."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from alignment.synthetic import MARGIN, jitter, scene

CODECS = {"avi": "MJPG", "mp4": "mp4v", "mkv": "MJPG"}


def write_video(path: Path, frames: int, size: int = 128, seed: int = 0, max_shift: float = 4.0) -> list[np.ndarray]:
    """Frame 0 is the reference view; the others shake (shift and rotation). Returns each frame's
    true matrix, frame pixel -> reference pixel. Skips the test when this OpenCV build cannot
    write, or read back, the container and codec."""
    codec = CODECS[path.suffix[1:]]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25, (size, size), True)
    if not writer.isOpened():
        pytest.skip(f"this OpenCV cannot write {codec} in {path.suffix}")
    rng = np.random.default_rng(seed)
    view = scene(size).astype(np.float32)
    crop = np.array([[1, 0, -MARGIN], [0, 1, -MARGIN], [0, 0, 1]], float)
    truth = []
    for index in range(frames):
        shake = np.eye(3) if index == 0 else jitter(rng, size, "euclidean", max_shift, 0.5, 0.0)
        image = cv2.warpPerspective(view, shake @ crop, (size, size), flags=cv2.INTER_CUBIC)
        writer.write(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
        truth.append(np.linalg.inv(shake))
    writer.release()
    capture = cv2.VideoCapture(str(path))
    readable = capture.isOpened() and capture.read()[0]
    capture.release()
    if not readable:
        pytest.skip(f"this OpenCV cannot read back {codec} in {path.suffix}")
    return truth
