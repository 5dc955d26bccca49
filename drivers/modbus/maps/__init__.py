"""Built-in Modbus register maps (YAML data files) and ``load_map``.

The maps ship as package data next to this module: ``brake_tester.yaml``,
``headlamp_tester.yaml``, ``speedometer_tester.yaml``. See docs/protocols/modbus.md.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml

from drivers.modbus.registers import RegisterMap


def builtin_maps() -> tuple[str, ...]:
    """Names of the maps shipped in ``drivers/modbus/maps``."""
    folder = resources.files(__name__)
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml")))


def load_map(name_or_path: str | Path) -> RegisterMap:
    """Load and validate a map: a built-in name (``brake_tester``) or a YAML file path.

    Raises ``pydantic.ValidationError`` on an invalid map and ``FileNotFoundError`` when
    neither a built-in map nor a file of that name exists.
    """
    return _parse(_map_text(str(name_or_path)))


@lru_cache(maxsize=32)
def _parse(text: str) -> RegisterMap:
    # maps are frozen models: the same text (a built-in map, an unchanged file) is parsed
    # once, not at every validation of a config that names it
    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return RegisterMap.model_validate(yaml.load(text, Loader=loader))  # noqa: S506 (safe loader)


def _map_text(name: str) -> str:
    if re.fullmatch(r"[a-z][a-z0-9_]*", name):
        builtin = resources.files(__name__).joinpath(f"{name}.yaml")
        if builtin.is_file():
            return builtin.read_text(encoding="utf-8")
    path = Path(name)
    if not path.is_file():
        known = ", ".join(builtin_maps())
        raise FileNotFoundError(f"no Modbus map {name!r} (built-in: {known}; or a file path)")
    return path.read_text(encoding="utf-8")
