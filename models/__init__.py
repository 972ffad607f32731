"""Generative models by name. Importing this package registers every model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from models import autoencoders, diffusion, gan, translation, vae  # noqa: F401  (each registers its models)
from models.base import Batch, DataInfo, GenerativeModel
from models.registry import entry, make_config, names

__all__ = ["Batch", "DataInfo", "GenerativeModel", "build", "entry", "make_config", "names"]


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
    model_entry = entry(name)
    if not isinstance(params, model_entry.config_class):
        params = make_config(name, params)
    # .to() moves parameters in place, and optimizer state is made lazily at the first step,
    # so optimizers made in the constructor on the CPU follow their parameters to the device.
    return model_entry.model_class(params, data, lr).to(device)
