"""Protocol name -> ``SimSpec``: every simulator the launcher can start.

Each simulator module exposes ``SIM`` (or ``SIMS``); add its module path to ``_MODULES``.
"""

from __future__ import annotations

import importlib
from functools import cache

from simulators.base import SimSpec

_MODULES: tuple[str, ...] = (
    # simulator modules, one per line:
    "simulators.devices.xk3190",
    "simulators.devices.mqd6a",
    "simulators.devices.flb100",
    "simulators.devices.nha503",
    "simulators.devices.modbus_sim",
    "simulators.devices.jxgt2",
    "simulators.devices.tlch10",
    "simulators.devices.xincheng",
    "simulators.devices.nhc03",
    "simulators.devices.flv1000",
    "simulators.devices.elm327",
)


@cache
def sim_specs() -> dict[str, SimSpec]:
    """Every known simulator, by protocol name."""
    specs: dict[str, SimSpec] = {}
    for name in _MODULES:
        module = importlib.import_module(name)
        found = list(getattr(module, "SIMS", ())) + ([module.SIM] if hasattr(module, "SIM") else [])
        for spec in found:
            specs[spec.protocol] = spec
    return specs
