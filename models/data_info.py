"""DataInfo: what a model needs to know of its data before it sees any. No torch: the spec
check and the data sources describe data with it before any tensor exists."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DataInfo:
    """What a model needs to know of its data before it sees any."""

    image_shape: tuple[int, int, int]  # (C, H, W)
    num_classes: int | None  # None for unlabelled data
    # None: images alone. "paired": each image (the input) has a target of the same shape.
    # "unpaired": images are domain A, targets domain B, drawn independently.
    pairing: str | None = None
    scale: int = 1  # paired data made by downscaling: the factor (for pictures of the input)
