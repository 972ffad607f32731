"""Models by name: each registered with its config dataclass, so a spec names one and sets its fields."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from models.config import ConfigError, parse_config


@dataclass(frozen=True)
class ModelEntry:
    name: str
    config_class: type
    model_class: type

    @property
    def summary(self) -> str:
        return (self.model_class.__doc__ or "").strip().splitlines()[0]


_MODELS: dict[str, ModelEntry] = {}


def register(name: str, config_class: type):
    """Class decorator: make `model_class` buildable as `name` with `config_class` parameters."""

    def add(model_class: type) -> type:
        if name in _MODELS:
            raise ValueError(f"model name {name!r} is registered twice")
        _MODELS[name] = ModelEntry(name, config_class, model_class)
        return model_class

    return add


def names() -> list[str]:
    return sorted(_MODELS)


def entry(name: str) -> ModelEntry:
    if name not in _MODELS:
        raise ConfigError("model.name", f"unknown model {name!r} (known models: {', '.join(names())})")
    return _MODELS[name]


def make_config(name: str, params: Mapping[str, Any] | None, where: str = "model"):
    return parse_config(entry(name).config_class, params, where)
