"""Models by name: a spec names one and sets its config's fields.

The cards (models.cards) are the registry: without torch, they answer what a spec check asks.
Each model class registers itself under its card's name and takes the card's attributes, so a
model's defaults are written once, on its card.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.cards import CARDS, ModelCard
from models.config import ConfigError, parse_config

_CLASSES: dict[str, type] = {}

# What a model class reads from its card as class attributes (`model.generates`, ...).
CARD_ATTRIBUTES = ("default_metric", "default_mode", "pairing", "generates", "training_signal", "pack_fields")


def register(name: str):
    """Class decorator: `model_class` is what models.zoo.build makes for `name`."""

    def add(model_class: type) -> type:
        if name in _CLASSES:
            raise ValueError(f"model name {name!r} is registered twice")
        card = CARDS[name]  # a KeyError here: the model has no card in models/cards.py
        model_class.card = card
        for attribute in CARD_ATTRIBUTES:
            setattr(model_class, attribute, getattr(card, attribute))
        _CLASSES[name] = model_class
        return model_class

    return add


def names() -> list[str]:
    return sorted(CARDS)


def entry(name: str) -> ModelCard:
    if name not in CARDS:
        raise ConfigError("model.name", f"unknown model {name!r} (known models: {', '.join(names())})")
    return CARDS[name]


def model_class(name: str) -> type:
    """The registered class of `name` (models.zoo imports them all, which registers them)."""
    entry(name)
    return _CLASSES[name]


def make_config(name: str, params: Mapping[str, Any] | None, where: str = "model"):
    return parse_config(entry(name).config_class, params, where)
