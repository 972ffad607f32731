"""Date/time stamps like a camera's overlay, drawn with OpenCV: what the dae's "stamp" corruption
adds to its inputs and what the `paired` data source's stamped inputs carry. numpy alone, no torch:
the data sources (runner/data/) draw them and must import without torch."""

from __future__ import annotations

import cv2
import numpy as np


def draw_stamps(image_shape: tuple[int, int, int], count: int, seed: int = 0) -> np.ndarray:
    """`count` date/time stamps as (count, C, H, W) float masks in [0, 1], like a camera's overlay."""
    channels, height, width = image_shape
    rng = np.random.default_rng(seed)
    stamps = np.zeros((count, channels, height, width), np.float32)
    scale = height / 60  # about a third of the image's height per line of text at 28 px
    for index in range(count):
        if rng.random() < 0.5:
            text = f"{rng.integers(1, 13):02d}/{rng.integers(1, 29):02d}"
        else:
            text = f"{rng.integers(0, 24):02d}:{rng.integers(0, 60):02d}"
        canvas = np.zeros((height, width), np.uint8)
        (text_width, text_height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_PLAIN, scale, 1)
        x = int(rng.integers(0, max(1, width - text_width)))
        y = int(rng.integers(text_height, height))
        cv2.putText(canvas, text, (x, y), cv2.FONT_HERSHEY_PLAIN, scale, 255, 1, cv2.LINE_AA)
        stamps[index] = canvas[None] / 255.0
    return stamps
