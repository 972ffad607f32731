"""Config dataclasses validated at construction: typed fields, Literal choices, no unknown keys.

Every model config, and every section of a sweep spec, is one of these. Pydantic does the
checking; this module turns its report into one line that names the key and what is wrong.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from typing import Any

import pydantic
from pydantic.dataclasses import dataclass as _pydantic_dataclass

# strict: "8" is not an int and 1 is not a bool; a YAML typo must not be coerced into a value.
_STRICT = pydantic.ConfigDict(extra="forbid", strict=True)


class ConfigError(ValueError):
    """A value that does not fit its config; `key` is the dotted path of the offending field."""

    def __init__(self, key: str, message: str):
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


def config(cls):
    """Decorator: a frozen dataclass whose fields are type-checked and whose keys are closed."""
    return _pydantic_dataclass(frozen=True, config=_STRICT)(cls)


def parse_config(cls, values: Mapping[str, Any] | None, where: str = ""):
    """`cls(**values)`, with any problem raised as one ConfigError naming `where.key`."""
    if values is None:
        values = {}
    if not isinstance(values, Mapping):
        raise ConfigError(where, f"expected a mapping of keys to values, got {_show(values)}")
    try:
        return cls(**values)
    except pydantic.ValidationError as error:
        raise _first_problem(error, cls, where) from None


def _first_problem(error: pydantic.ValidationError, cls, where: str) -> ConfigError:
    problem = error.errors()[0]
    # A union's error location names the member type tried ("literal['min','max']", "str"):
    # the user wrote a key, not a type, so keep only the parts that are keys.
    parts = [str(part) for part in problem["loc"] if str(part).isidentifier() and str(part) not in _TYPE_TAGS]
    name = ".".join(parts)
    key = f"{where}.{name}" if where and name else (where or name)
    if problem["type"] == "unexpected_keyword_argument":
        known = ", ".join(field_names(cls))
        return ConfigError(key, f"unknown key (known keys: {known})")
    if problem["type"] in ("missing_argument", "missing"):  # a dataclass field without a default: "missing"
        return ConfigError(key, "required key is missing")
    return ConfigError(key, f"{problem['msg']}, got {_show(problem.get('input'))}")


_TYPE_TAGS = {"str", "int", "float", "bool", "none", "dict", "list"}


def field_names(cls) -> list[str]:
    return [field.name for field in dataclasses.fields(cls)]


def describe_fields(cls) -> list[tuple[str, str, str, str]]:
    """(name, type, default as written, description) of each field, for `gensweep models` and the docs."""
    rows = []
    for name, info in cls.__pydantic_fields__.items():
        default = "required" if info.is_required() else repr(info.get_default(call_default_factory=True))
        rows.append((name, type_name(info.annotation), default, info.description or ""))
    return rows


def type_name(annotation: Any) -> str:
    """int, float | None, mlp|conv: a field's type as the docs show it."""
    if typing.get_origin(annotation) is typing.Literal:
        return "|".join(str(choice) for choice in typing.get_args(annotation))
    if typing.get_origin(annotation) is dict:
        key = typing.get_args(annotation)[0]
        return "{" + type_name(key) + ": weight}"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("NoneType", "None")


def as_dict(instance) -> dict[str, Any]:
    return dataclasses.asdict(instance)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
