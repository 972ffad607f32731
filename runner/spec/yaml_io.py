"""User YAML (spec files and `--set` values) read into plain data, the one way the project does it.

Two differences from yaml.safe_load, each for a reason:

- Numbers are read as users write them. PyYAML follows YAML 1.1, whose float needs a dot and a
  signed exponent, so `3e-4`, `1E-5`, `-2e3` and `1.0e5` came back as strings and a spec's
  `lr: 3e-4` was refused. Here they are floats, as in YAML 1.2, JSON and Python.
  (`yes/no/on/off` stay YAML 1.1 booleans: what specs have always meant by them.)
- A document is bounded. Aliases share one node, so a "billion laughs" of under 1 KB composes
  cheaply and only explodes when something walks it (a repr, a deepcopy, a JSON dump). Aliases,
  nesting depth and the size of the document with every alias expanded are counted while it
  is composed, before anything walks it, and a document past a limit is refused.

The limits, all in one place (spec.py's search checks import the last two):
"""

from __future__ import annotations

import re

import yaml

MAX_ALIASES = 1_000  # `*name` references in one document (specs use a handful, if any)
MAX_DEPTH = 32  # nesting of mappings and lists, aliases expanded (a spec nests 4 deep)
MAX_NODES = 200_000  # scalars, lists and mappings, aliases expanded (a 10,000-value grid: ~10,000)
MAX_SEARCH_VALUES = 10_000  # values of one grid or choice dimension
MAX_GRID_POINTS = 100_000  # trials of a whole grid (the product of its dimensions' lengths)


class YamlError(ValueError):
    """Not YAML, or YAML past a limit above: one line saying where or which limit."""


def load_yaml(text: str) -> object:
    """The single document in `text` as plain data (dicts, lists, str, int, float, bool, None)."""
    loader = _UserLoader(text)  # what yaml.load does, with a SafeLoader subclass: no Python tags
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise YamlError(f"YAML syntax error at {where}: {error.problem}") from None
    except yaml.YAMLError as error:
        raise YamlError(f"cannot read as YAML: {' '.join(str(error).split())}") from None
    finally:
        loader.dispose()


# YAML 1.2's float (digits with a dot, an exponent or both; signed; `_` separators as in 1.1),
# plus 1.1's `.inf`/`.nan` and sexagesimal `1:30.5`, which specs may already hold.
_FLOAT = re.compile(
    r"""^(?:
        [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
      | [-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
      | [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
      | [-+]?\.(?:inf|Inf|INF)
      | \.(?:nan|NaN|NAN)
    )$""",
    re.VERBOSE,
)
_FLOAT_TAG = "tag:yaml.org,2002:float"


class _UserLoader(yaml.SafeLoader):
    """SafeLoader (no Python tags: a spec is data) with 1.2 floats and the limits above."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    def compose_node(self, parent, index):
        # Counted while composing: a deep document would otherwise end in a RecursionError here.
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise YamlError(f"more than {MAX_ALIASES:,} aliases (*name): refused as a likely alias bomb")
            return super().compose_node(parent, index)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise YamlError(f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_data(self):
        node = self.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node)
        return self.construct_document(node)


# Replace 1.1's float resolver rather than add beside it: the first match wins.
_UserLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _FLOAT_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_UserLoader.add_implicit_resolver(_FLOAT_TAG, _FLOAT, list("-+0123456789."))


def _check_expanded_size(root: yaml.Node) -> None:
    """Refuse a document whose nodes, every alias expanded, exceed MAX_NODES or MAX_DEPTH.

    Counted over distinct nodes (an alias is the node it names, met again), so the count of a
    billion laughs costs as much as its few dozen nodes; iterative, so no recursion limit.
    """
    sizes: dict[int, int] = {}  # id(node) -> nodes under it, itself included, aliases expanded
    depths: dict[int, int] = {}  # id(node) -> levels under it, itself included
    open_nodes: set[int] = set()
    stack = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        children = _children(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in children)
            depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
            if sizes[key] > MAX_NODES:
                raise YamlError(f"expands to more than {MAX_NODES:,} values (aliases expanded): refused as a likely alias bomb")
            if depths[key] > MAX_DEPTH:
                raise YamlError(f"nested more than {MAX_DEPTH} levels deep (aliases expanded)")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise YamlError("an alias refers to a list or mapping that contains it (a recursive document)")
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []
