"""Generative models by name.

Importing this package is cheap: no torch. The cards (models.cards: configs, defaults, checks)
are all a spec check needs. The networks load on first use of `build`, `Batch` or
`GenerativeModel` (lazy attributes, as Scientific Python's SPEC 1 describes), so `gensweep
validate` and the reports never import torch while `models.build(...)` works everywhere else.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from models.data_info import DataInfo
from models.registry import distribution, entry, make_config, names

if TYPE_CHECKING:
    from models.base import Batch, GenerativeModel
    from models.zoo import build

__all__ = ["Batch", "DataInfo", "GenerativeModel", "build", "distribution", "entry", "make_config", "names"]

_LAZY = {"build": "models.zoo", "Batch": "models.base", "GenerativeModel": "models.base"}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'models' has no attribute {name!r}")
