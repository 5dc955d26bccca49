"""A held device seen through the lane's calibrations, and the speed trace it shows.

The dyno methods' machines read ``DynoReading`` and ``FlowReading`` themselves (through
``sansio.drive``), so the item hands them ``CalibratedDevice`` views: every reading a
coroutine of the device returns comes back with the calibrated channels corrected
(``ItemContext.corrected``: a dyno's ``speed_kmh`` and ``force_n``, a flowmeter's
``o2_diluted_pct_vol``), as the brake items correct their forces. The dyno's reported
power follows its corrected force and speed (P = F·v), so the ASM load and the lug-down
power are judged on the calibrated values. Commands and attributes pass through.

``trace_values`` picks the dyno's share of a ``*_live`` progress step (actual speed, the
target and its band, in band or not) for ``lanegw monitor <dyno>``.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Final

from drivers.devices.base import Reading
from gateway.records import Scalar

Correct = Callable[[dict[str, Any]], dict[str, Any]]

#: the channels whose correction scales the dyno's reported power (P = F·v)
POWER_FACTORS: Final = ("force_n", "speed_kmh")
#: progress values of a dyno method's ``*_live`` step that belong to the dyno
TRACE_KEYS: Final = (
    "speed_kmh", "target_kmh", "band_low_kmh", "band_high_kmh", "in_band", "power_kw",
    "force_n",
)  # fmt: skip


class CalibratedDevice:
    """``device`` whose readings come corrected by ``correct`` (see the module docstring)."""

    def __init__(self, device: Any, correct: Correct) -> None:
        self._device = device
        self._correct = correct

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._device, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def corrected(*args: Any, **kwargs: Any) -> Any:
            return self.reading(await attr(*args, **kwargs))

        return corrected

    def reading(self, value: Any) -> Any:
        """``value`` with its calibrated channels corrected (other values unchanged)."""
        if not isinstance(value, Reading) or not dataclasses.is_dataclass(value):
            return value
        raw = value.as_dict()
        fixed = self._correct(raw)
        changed = {k: v for k, v in fixed.items() if k in raw and v != raw[k]}
        if not changed:
            return value
        power = raw.get("power_kw")
        if isinstance(power, float) and any(k in changed for k in POWER_FACTORS):
            changed["power_kw"] = round(power * _factor(raw, changed), 3)
        return dataclasses.replace(value, **changed)


def _factor(raw: Mapping[str, Any], changed: Mapping[str, Any]) -> float:
    factor = 1.0
    for key in POWER_FACTORS:
        before = raw.get(key)
        if key in changed and isinstance(before, int | float) and before:
            factor *= float(changed[key]) / float(before)
    return factor


def trace_values(values: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """The dyno's values of a ``*_live`` step: speed, target, band, whether the speed is
    in the band (ASM's ``in_tolerance`` also judges the power, so it is worked out here),
    power and force; empty when the step has no speed."""
    if "speed_kmh" not in values:
        return {}
    picked = {k: values[k] for k in TRACE_KEYS if k in values}
    speed, low, high = (values.get(k) for k in ("speed_kmh", "band_low_kmh", "band_high_kmh"))
    numbers = [v for v in (speed, low, high) if isinstance(v, int | float)]
    if "in_band" not in picked and len(numbers) == 3:
        picked["in_band"] = numbers[1] <= numbers[0] <= numbers[2]
    return picked
