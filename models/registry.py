"""Models by name: a spec names one and sets its config's fields.

The cards (models.cards) are the registry: without torch, they answer what a spec check asks.
Each model class registers itself under its card's name and takes the card's attributes, so a
model's defaults are written once, on its card. Installed packages add cards through the
entry-point group `gensweep.models` (models.plugins); a spec names a model, never a module.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from models import plugins
from models.cards import CARDS, ModelCard
from models.config import ConfigError, parse_config

_CLASSES: dict[str, type] = {}

# What a model class reads from its card as class attributes (`model.generates`, ...).
CARD_ATTRIBUTES = ("default_metric", "default_mode", "pairing", "generates", "training_signal", "pack_fields")


def register(name_or_card: str | ModelCard):
    """Class decorator: `model_class` is what models.zoo.build makes for the card's name.

    Built-ins name their card (in models/cards.py); a plugin passes its card itself.
    """
    card = name_or_card if isinstance(name_or_card, ModelCard) else CARDS[name_or_card]  # KeyError: no card

    def add(model_class: type) -> type:
        if card.name in _CLASSES:
            raise ValueError(f"model name {card.name!r} is registered twice")
        model_class.card = card
        for attribute in CARD_ATTRIBUTES:
            setattr(model_class, attribute, getattr(card, attribute))
        _CLASSES[card.name] = model_class
        return model_class

    return add


def names() -> list[str]:
    """The built-in models and the installed plugins' (those that loaded)."""
    return sorted([*CARDS, *plugins.discovered().plugins])


def distribution(name: str) -> str | None:
    """The package a plugin model comes from ("gensweep-tiny-ae 0.1.0"); None for a built-in."""
    plugin = plugins.discovered().plugins.get(name)
    return plugin.distribution if plugin else None


def entry(name: str) -> ModelCard:
    if name in CARDS:
        return CARDS[name]
    found = plugins.discovered()
    if name in found.plugins:
        return found.plugins[name].card
    if name in found.broken:
        raise ConfigError("model.name", found.broken[name])
    raise ConfigError("model.name", f"unknown model {name!r} (known models: {', '.join(names())})")


def model_class(name: str) -> type:
    """The registered class of `name`: models.zoo imports the built-ins' modules (which registers
    them); a plugin's is imported here, on first use, in whichever process builds the model."""
    card = entry(name)
    if name not in _CLASSES and card.model_module:
        try:
            importlib.import_module(card.model_module)
        except Exception as error:  # the plugin's own module: any error is the plugin's
            raise ConfigError("model.name", f"model plugin {name!r} ({distribution(name)}): its model_module "
                              f"{card.model_module!r} does not import: {type(error).__name__}: {error}") from error
        if name not in _CLASSES:
            raise ConfigError("model.name", f"model plugin {name!r} ({distribution(name)}): {card.model_module} "
                              f"registers no class for it (@models.registry.register(CARD))")
    return _CLASSES[name]


def make_config(name: str, params: Mapping[str, Any] | None, where: str = "model"):
    return parse_config(entry(name).config_class, params, where)
