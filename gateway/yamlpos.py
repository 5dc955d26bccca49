"""YAML loading that remembers the line of every node, for error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.errors import ConfigError, ConfigProblem

Positions = dict[tuple[str | int, ...], int]


def load_yaml_with_positions(text: str, path: Path) -> tuple[Any, Positions]:
    """Parse ``text``; return the data and a map from key path to 1-based line."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(path, [ConfigProblem("", f"not valid YAML: {problem}", line)]) from None
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
