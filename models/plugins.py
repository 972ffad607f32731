"""Models from installed packages: the entry-point group `gensweep.models`.

A package registers a model under the same contract as the built-in ones (README, "Your own
models"):

    [project.entry-points."gensweep.models"]
    tiny_ae = "gensweep_tiny_ae.card:CARD"

The entry point's name is the model's name (what `model.name` says in a spec); its object is a
models.cards.ModelCard with that name, whose `model_module` names the module that defines the
model class and registers it with `@models.registry.register(CARD)`. Loading the card imports
only the card's module, so `gensweep models` and `validate` stay torch-free when the package keeps
its card apart from its networks (the example does); the model module is imported where a model
is built (models.registry.model_class), in the trial processes too, which is why the package must
be installed in the environment every Ray worker runs in.

Models come only from installed distributions: a spec names a model, never a module path.
Discovery runs once per process, on first use. A plugin that fails to import, gives something
other than a card, or takes a built-in's name is left out with one line naming its distribution
and entry point: `gensweep models` prints the line and lists the rest, and a spec that names it
fails with that line.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points

from models.cards import CARDS, ModelCard

GROUP = "gensweep.models"


@dataclass(frozen=True)
class Plugin:
    card: ModelCard
    distribution: str  # "gensweep-tiny-ae 0.1.0": what `gensweep models` shows beside the name


@dataclass(frozen=True)
class Discovered:
    plugins: dict[str, Plugin]  # model name -> its card and package
    broken: dict[str, str]  # entry point name -> the one line that says why it was left out


@functools.cache
def discovered() -> Discovered:
    plugins: dict[str, Plugin] = {}
    broken: dict[str, str] = {}
    for point in sorted(entry_points(group=GROUP), key=lambda point: point.name):
        distribution = _distribution(point)
        where = f"model plugin {point.name!r} ({point.value}) from {distribution}"
        problem = _problem(point, plugins)
        if problem is None:
            try:
                card = point.load()
            except Exception as error:  # noqa: BLE001  (someone else's import: any error is theirs, one line)
                problem = f"does not load: {type(error).__name__}: {error}"
            else:
                problem = _card_problem(point.name, card)
        if problem is None:
            plugins[point.name] = Plugin(card, distribution)
        else:
            broken.setdefault(point.name, f"{where}: {problem}")
    return Discovered(plugins, broken)


def forget() -> None:
    """Discover again on next use (tests that put a package on sys.path, or take it off)."""
    discovered.cache_clear()


def _distribution(point: EntryPoint) -> str:
    dist = point.dist
    return f"{dist.name} {dist.version}" if dist is not None else "an unnamed distribution"


def _problem(point: EntryPoint, plugins: dict[str, Plugin]) -> str | None:
    if point.name in CARDS:
        return f"the name {point.name!r} is a built-in model's; rename the entry point"
    if point.name in plugins:
        return f"the name {point.name!r} is taken by {plugins[point.name].distribution}"
    return None


def _card_problem(name: str, card: object) -> str | None:
    if not isinstance(card, ModelCard):
        return f"gives a {type(card).__name__}, not a models.cards.ModelCard"
    if card.name != name:
        return f"its card is named {card.name!r}; the entry point's name must be the card's"
    if not card.model_module:
        return "its card has no model_module (the module that registers the model class)"
    return None
