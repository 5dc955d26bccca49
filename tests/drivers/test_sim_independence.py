"""Simulators build and parse their bytes themselves: no simulator imports a driver codec.

A simulator that used its driver's codec would reproduce the codec's mistakes and every
test would pass; so ``simulators/`` may import from ``drivers`` only the checksum
primitives (``drivers.checksums``: the rules "8-bit sum", "two's complement of the sum",
"XOR as two hex digits" are stated once, and a mistake there is caught by the golden
frames of tests/drivers/test_golden_frames.py, which take their checksums from the
document). Nothing else of ``drivers``: not the protocol codecs, not ``drivers.modbus``,
not the framing or error types, not the drivers' command enums (they carry wire values).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SIMULATORS = ROOT / "simulators"
ALLOWED: frozenset[str] = frozenset({"drivers.checksums"})


def forbidden_imports(source: str) -> list[str]:
    """The ``drivers`` modules ``source`` imports that a simulator may not (any depth,
    ``import x``, ``from x import y``, ``from drivers import protocols``, and
    ``importlib.import_module("drivers...")`` / ``__import__`` with a literal name)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            module = node.module
            names = [module] if module != "drivers" else [f"drivers.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                names = [node.args[0].value]
        found += [
            name
            for name in names
            if (name == "drivers" or name.startswith("drivers.")) and name not in ALLOWED
        ]
    return found


def simulator_modules() -> list[Path]:
    """Every Python module of the simulators package."""
    return sorted(SIMULATORS.rglob("*.py"))


def test_no_simulator_imports_a_driver_codec() -> None:
    modules = simulator_modules()
    assert len(modules) > 20  # the scan sees the package (devices, wire, the lane...)
    offenders = {
        str(path.relative_to(ROOT)): bad
        for path in modules
        if (bad := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from drivers.protocols.jx_aframe import RequestDecoder", ["drivers.protocols.jx_aframe"]),
        ("from drivers.protocols import nha503 as nha", ["drivers.protocols"]),
        ("import drivers.modbus.decode", ["drivers.modbus.decode"]),
        ("from drivers import protocols, checksums", ["drivers.protocols"]),
        ("from drivers.framing import NEED_DATA", ["drivers.framing"]),
        ("from drivers.devices.jxgt2_brake import FORCE_TO_DAN", ["drivers.devices.jxgt2_brake"]),
        ("def f():\n    from drivers.modbus.maps import load_map", ["drivers.modbus.maps"]),
        (
            "import importlib\nimportlib.import_module('drivers.protocols.flb100')",
            ["drivers.protocols.flb100"],
        ),
        ("from drivers.checksums import neg_sum8", []),
        ("from drivers import checksums", []),
        ("import driverslib", []),
    ],
)
def test_the_scan_catches_every_form_of_import(source: str, expected: list[str]) -> None:
    assert forbidden_imports(source) == expected
