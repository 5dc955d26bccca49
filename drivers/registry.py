"""Protocol name -> ``DriverSpec``: the one place the gateway learns which drivers exist.

Each driver module exposes ``SPEC`` (or ``SPECS``); add its module path to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from functools import cache

from drivers.devices.base import DriverSpec

_MODULES: tuple[str, ...] = (
    # driver modules, one per line:
    "drivers.devices.xk3190_weigher",
    "drivers.devices.mqd6a_headlamp",
    "drivers.devices.flb100_opacimeter",
    "drivers.devices.nha503_analyser",
    "drivers.devices.modbus_generic",
    "drivers.devices.jxgt2_brake",
    "drivers.devices.tlch10_speed",
    "drivers.devices.xincheng_dyno",
    "drivers.devices.nhc03_dyno",
    "drivers.devices.flv1000_flowmeter",
    "drivers.devices.elm327_obd",
)


@cache
def driver_specs() -> dict[str, DriverSpec]:
    """Every known driver, by protocol name."""
    specs: dict[str, DriverSpec] = {}
    for name in _MODULES:
        module = importlib.import_module(name)
        found = list(getattr(module, "SPECS", ())) + (
            [module.SPEC] if hasattr(module, "SPEC") else []
        )
        for spec in found:
            specs[spec.protocol] = spec
    return specs


def get_spec(protocol: str) -> DriverSpec:
    """The spec of ``protocol``; ``KeyError`` names the known ones."""
    specs = driver_specs()
    try:
        return specs[protocol]
    except KeyError:
        known = ", ".join(sorted(specs))
        raise KeyError(f"unknown protocol {protocol!r}; known: {known}") from None
