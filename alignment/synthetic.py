"""Jittered frame sequences with known motion, from a real photograph that scikit-image ships.

Frame 0 is the reference view; every other frame is the same scene seen through a camera that
shook (shift, rotation about the centre, a little zoom), with drifting brightness, contrast
and gamma and sensor noise. truth.csv holds, per frame, the matrix mapping its pixels to the
reference's, in the same format the aligner writes.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from alignment.records import FrameRecord, write_records

MOTIONS = ("translation", "euclidean", "similarity")
MARGIN = 32  # scene pixels kept around the frame, so a shaken frame has no empty border


def scene(size: int) -> np.ndarray:
    """scikit-image's 'camera' photograph (512x512, gray), scaled so a frame fits with a margin."""
    from skimage import data

    photo = data.camera()
    side = size + 2 * MARGIN
    return cv2.resize(photo, (side, side), interpolation=cv2.INTER_AREA if side < 512 else cv2.INTER_CUBIC)


def jitter(rng: np.random.Generator, size: int, motion: str, max_shift: float, max_rotation: float, max_zoom: float) -> np.ndarray:
    """A random camera shake T in frame pixels (3x3): reference pixel -> frame pixel."""
    dx, dy = rng.uniform(-max_shift, max_shift, 2)
    angle = rng.uniform(-max_rotation, max_rotation) if motion != "translation" else 0.0
    zoom = 1 + rng.uniform(-max_zoom, max_zoom) if motion == "similarity" else 1.0
    centre = (size - 1) / 2
    rotation = cv2.getRotationMatrix2D((centre, centre), angle, zoom)
    shake = np.vstack([rotation, [0, 0, 1]])
    shake[:2, 2] += (dx, dy)
    return shake


def make_sequence(
    out_dir: Path,
    frames: int = 50,
    size: int = 256,
    motion: str = "euclidean",
    seed: int = 0,
    max_shift: float = 6.0,
    max_rotation: float = 1.0,
    max_zoom: float = 0.01,
    noise: float = 2.0,
) -> Path:
    """Write frame_0000.png ... and truth.csv to out_dir; returns the truth file."""
    if motion not in MOTIONS:
        raise ValueError(f"unknown motion {motion!r} (known: {', '.join(MOTIONS)})")
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    view = scene(size).astype(np.float32)
    crop = np.array([[1, 0, -MARGIN], [0, 1, -MARGIN], [0, 0, 1]], float)  # scene -> reference pixel
    records = []
    for index in range(frames):
        shake = np.eye(3) if index == 0 else jitter(rng, size, motion, max_shift, max_rotation, max_zoom)
        image = cv2.warpPerspective(view, shake @ crop, (size, size), flags=cv2.INTER_CUBIC)
        # Light changes over the day, and the sensor adds noise.
        gain, offset, gamma = rng.uniform(0.85, 1.15), rng.uniform(-12, 12), rng.uniform(0.9, 1.1)
        image = 255 * (np.clip(image * gain + offset, 0, 255) / 255) ** gamma
        image = image + rng.normal(0, noise, image.shape)
        name = f"frame_{index:04d}.png"
        cv2.imwrite(str(out_dir / name), np.clip(image, 0, 255).round().astype(np.uint8))
        records.append(FrameRecord(name, True, "truth", 1.0, "", np.linalg.inv(shake)))
    truth = out_dir / "truth.csv"
    write_records(truth, records)
    return truth
