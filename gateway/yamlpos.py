"""YAML loading that remembers the line of every node, for error messages.

The text is parsed once, with libyaml's parser when PyYAML was built with it (its wheels
are): the node tree gives the lines, and the same tree is constructed into the data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError, ConfigProblem

Positions = dict[tuple[str | int, ...], int]

#: libyaml's safe loader (about 10x faster), the pure-Python one where it is missing
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_with_positions(text: str, path: Path) -> tuple[Any, Positions]:
    """Parse ``text``; return the data and a map from key path to 1-based line."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML: {problem}", line)]) from None
    finally:
        loader.dispose()
    positions: Positions = {}
    if node is not None:
        _walk(node, (), positions)
    return data, positions


def _walk(node: yaml.Node, path: tuple[str | int, ...], out: Positions) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            out[(*path, name)] = key.start_mark.line + 1
            _walk(value, (*path, name), out)
            out[(*path, name)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _walk(item, (*path, index), out)
