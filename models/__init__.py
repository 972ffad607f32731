"""Generative models by name.

The package itself imports no torch: its torch-free modules (config, data_info, stamps) serve the
spec check and the data sources (runner/data/), which must import without torch. The first use
of a name that needs the models (build, entry, make_config, names, Batch, GenerativeModel)
imports every model module, which registers its models.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from models.data_info import DataInfo

if TYPE_CHECKING:
    import torch

    from models.base import Batch, GenerativeModel
    from models.registry import entry, make_config, names

__all__ = ["Batch", "DataInfo", "GenerativeModel", "build", "entry", "make_config", "names"]

_MODEL_MODULES = ("autoencoders", "diffusion", "gan", "translation", "vae")  # each registers its models
_NEEDS_MODELS = {
    "Batch": "models.base", "GenerativeModel": "models.base",
    "entry": "models.registry", "make_config": "models.registry", "names": "models.registry",
}


def _register_models() -> None:
    for module in _MODEL_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def __getattr__(name: str):
    """The names that need the models, imported at first use (PEP 562); any submodule by name,
    as `models.losses` after a bare `import models`."""
    if name in _NEEDS_MODELS:
        _register_models()
        value = getattr(importlib.import_module(_NEEDS_MODELS[name]), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    _register_models()
    from models.registry import entry, make_config

    model_entry = entry(name)
    if not isinstance(params, model_entry.config_class):
        params = make_config(name, params)
    # .to() moves parameters in place, and optimizer state is made lazily at the first step,
    # so optimizers made in the constructor on the CPU follow their parameters to the device.
    return model_entry.model_class(params, data, lr).to(device)
