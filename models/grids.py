"""Image grids for TensorBoard and PNG files: torchvision.utils.make_grid's layout, to the pixel.

Written out because importing torchvision (for this one function) imports TorchDynamo through
torchvision.ops: 1.3 of the 5.6 seconds a new trial process spends on imports before it trains
(`python -X importtime -c "import runner.sweep.trial"`), paid by every trial of every sweep.
"""

from __future__ import annotations

import math

from torch import Tensor


def make_grid(images: Tensor, nrow: int = 8, padding: int = 2, pad_value: float = 0.0) -> Tensor:
    """(B, C, H, W) or (C, H, W) images -> one (C, H', W') grid, `nrow` images a row, `padding`
    pixels of `pad_value` around each. One channel becomes three (grey RGB), and a single image
    comes back as it is, as torchvision does both."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[0] == 1:
        return images[0].clone()
    count, channels, height, width = images.shape
    columns = min(nrow, count)
    rows = math.ceil(count / columns)
    cell_height, cell_width = height + padding, width + padding
    grid = images.new_full((channels, rows * cell_height + padding, columns * cell_width + padding), pad_value)
    for index in range(count):
        row, column = divmod(index, columns)
        top, left = row * cell_height + padding, column * cell_width + padding
        grid[:, top : top + height, left : left + width] = images[index]
    return grid
