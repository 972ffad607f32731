"""The embedded `digits` data set: handwriting-style digits drawn procedurally, no download.

Each digit is drawn with one of OpenCV's Hershey fonts at 4x resolution, bent by a random
affine map and an elastic field (Simard et al. 2003, the classic MNIST augmentation), then
cropped and centred the way MNIST was built: the glyph scaled into a 20x20 box and placed by
its centre of mass in a 28x28 frame. Every random draw comes from one generator per split in a
fixed order, so the same seed gives the same bytes, and the first n images of a larger set are
the n images of a smaller one.
"""

from __future__ import annotations

import cv2
import numpy as np

IMAGE_SIDE = 28  # MNIST's frame
GLYPH_BOX = 20  # MNIST scales each glyph into a 20x20 box inside the frame
_CANVAS = 112  # drawn at 4x so strokes and distortions are smooth after downscaling

# The single-stroke Hershey fonts: a pen line, like handwriting (the duplex and triplex ones
# trace each stroke twice and look bold). Plain, simplex and script differ in their 1, 2, 4, 7.
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_SCRIPT_SIMPLEX, cv2.FONT_HERSHEY_PLAIN)
_SPLIT_STREAMS = {"train": 0, "val": 1}  # independent streams: val does not move with train_size


def make_digits(count: int, seed: int, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits as (images (N, 28, 28) uint8, labels (N,) int64), deterministic in seed."""
    rng = np.random.default_rng([seed, _SPLIT_STREAMS[split]])
    images = np.empty((count, IMAGE_SIDE, IMAGE_SIDE), np.uint8)
    labels = np.empty(count, np.int64)
    for index in range(count):
        labels[index] = rng.integers(10)
        images[index] = _draw_digit(int(labels[index]), rng)
    return images, labels


def _draw_digit(digit: int, rng: np.random.Generator) -> np.ndarray:
    canvas = np.zeros((_CANVAS, _CANVAS), np.uint8)
    font = _FONTS[rng.integers(len(_FONTS))]
    if rng.random() < 0.3:
        font |= cv2.FONT_ITALIC
    # Pen width as it will look at 28x28 (MNIST strokes are 1.5 to 3 pixels), scaled up by how
    # much this glyph will shrink on its way into the 20x20 box.
    pen_width = rng.uniform(1.3, 2.8)
    if rng.random() < _PEN_STROKE_SHARE.get(digit, 0.0):
        _PEN_STROKES[digit](canvas, rng, max(1, round(pen_width * 84 / GLYPH_BOX)))
    else:
        text, scale = str(digit), 3.0
        (width, height), _ = cv2.getTextSize(text, font, scale, 1)
        thickness = max(1, round(pen_width * height / GLYPH_BOX))
        origin = ((_CANVAS - width) // 2, (_CANVAS + height) // 2)
        cv2.putText(canvas, text, origin, font, scale, 255, thickness, cv2.LINE_AA)
    canvas = _random_affine(canvas, rng)
    canvas = _elastic(canvas, rng)
    glyph = _centre_like_mnist(canvas)
    noise = rng.normal(0.0, 6.0, glyph.shape)  # faint scanner noise
    return np.clip(glyph + noise * (glyph > 0), 0, 255).astype(np.uint8)


def _pen_zero(canvas: np.ndarray, rng: np.random.Generator, thickness: int) -> None:
    # Hershey zeros are slashed or boxy; a written zero is a tilted oval, often not quite closed.
    axes = (int(rng.integers(18, 30)), int(rng.integers(32, 42)))
    start = rng.uniform(-40, 20)
    cv2.ellipse(canvas, (56, 56), axes, rng.uniform(-20, 20), start, start + rng.uniform(330, 370),
                255, thickness, cv2.LINE_AA)


def _pen_one(canvas: np.ndarray, rng: np.random.Generator, thickness: int) -> None:
    # Most written ones are a single stroke, sometimes with a short lead-in flag.
    top = (56 + int(rng.integers(-6, 6)), 18)
    cv2.line(canvas, top, (56 + int(rng.integers(-8, 8)), 94), 255, thickness, cv2.LINE_AA)
    if rng.random() < 0.4:
        cv2.line(canvas, top, (top[0] - int(rng.integers(8, 16)), 30), 255, thickness, cv2.LINE_AA)


_PEN_STROKES = {0: _pen_zero, 1: _pen_one}
_PEN_STROKE_SHARE = {0: 1.0, 1: 0.6}  # every Hershey zero is slashed or boxy


def _random_affine(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    angle = rng.uniform(-18, 18)
    shear = rng.uniform(-0.35, 0.35)  # people slant their writing
    stretch_x, stretch_y = rng.uniform(0.75, 1.15), rng.uniform(0.85, 1.1)
    centre = _CANVAS / 2
    rotation = cv2.getRotationMatrix2D((centre, centre), angle, 1.0)
    rotation = np.vstack([rotation, [0, 0, 1]])
    shape = np.array([[stretch_x, shear, 0], [0, stretch_y, 0], [0, 0, 1]])
    to_centre = np.array([[1, 0, -centre], [0, 1, -centre], [0, 0, 1]])
    back = np.array([[1, 0, centre], [0, 1, centre], [0, 0, 1]])
    matrix = rotation @ back @ shape @ to_centre
    return cv2.warpAffine(canvas, matrix[:2], (_CANVAS, _CANVAS), flags=cv2.INTER_LINEAR)


def _elastic(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Smoothed random displacement fields: alpha sets how far strokes wander, sigma how locally.
    alpha, sigma = rng.uniform(40, 130), 16.0
    shape = canvas.shape
    dx = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma) * alpha
    dy = cv2.GaussianBlur(rng.uniform(-1, 1, shape).astype(np.float32), (0, 0), sigma) * alpha
    grid_y, grid_x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    return cv2.remap(canvas, grid_x + dx, grid_y + dy, cv2.INTER_LINEAR, borderValue=0)


def _centre_like_mnist(canvas: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(canvas > 20)
    frame = np.zeros((IMAGE_SIDE, IMAGE_SIDE), np.float32)
    if len(xs) == 0:  # an elastic field can, very rarely, push the glyph off the canvas
        return frame
    crop = canvas[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    factor = GLYPH_BOX / max(crop.shape)
    size = (max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor)))
    glyph = cv2.resize(crop, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    mass = glyph.sum()
    cy = (glyph.sum(axis=1) @ np.arange(glyph.shape[0])) / mass
    cx = (glyph.sum(axis=0) @ np.arange(glyph.shape[1])) / mass
    top = int(np.clip(round(IMAGE_SIDE / 2 - cy), 0, IMAGE_SIDE - glyph.shape[0]))
    left = int(np.clip(round(IMAGE_SIDE / 2 - cx), 0, IMAGE_SIDE - glyph.shape[1]))
    frame[top : top + glyph.shape[0], left : left + glyph.shape[1]] = glyph
    return frame
