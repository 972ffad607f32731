"""Every model class, imported (which registers it), and `build`: where torch comes in."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models import autoencoders, diffusion, gan, translation, vae  # noqa: F401  (each registers its models)
from models.base import GenerativeModel
from models.data_info import DataInfo
from models.registry import entry, make_config, model_class


def build(
    name: str,
    params: Mapping[str, Any] | Any | None,
    data: DataInfo,
    lr: float,
    device: torch.device | str = "cpu",
) -> GenerativeModel:
    """The model `name`, its optimizers made, on `device`.

    params: the model's config dataclass, or a mapping of its fields (validated here).
    """
    if not isinstance(params, entry(name).config_class):
        params = make_config(name, params)
    # .to() moves parameters in place, and optimizer state is made lazily at the first step,
    # so optimizers made in the constructor on the CPU follow their parameters to the device.
    return model_class(name)(params, data, lr).to(device)
