"""Where the brake items get an axle's static load: the lane's axle plate or the tester.

GB 7258 / PSB 18C81 take static loads from the horizontal weighing plate (水平称重台); a
roller tester with weighing (JXGT2) can weigh the axle on its rollers too. So: when the
lane has axle weighers (XK3190), they weigh (one plate per axle gives the axle load, a
left and a right wheel plate give the wheel loads); otherwise the brake tester does (the
readings until a few in a row agree, their median per wheel: a weight is used only once
it is stable, from either source). docs/items-brake.md.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable
from typing import Final, Protocol, runtime_checkable

from drivers.devices.base import DeviceClass
from drivers.devices.jxgt2_brake import WheelLoads
from drivers.devices.xk3190_weigher import WeightReading
from gateway.inspection.brake_judge import StaticLoads
from gateway.inspection.items import ItemAborted, ItemContext

#: roller weighings in a row that must agree; their median is the static wheel load
WEIGH_READINGS: Final = 3
#: at most this many roller weighings before the weight is called unstable
ROLLER_MAX_READINGS: Final = 12
#: readings "agree" when each wheel's spread is within this fraction of its load, or
#: within ROLLER_TOLERANCE_KG for light wheels (scale divisions, noise of a settled axle)
ROLLER_TOLERANCE_FRACTION: Final = 0.03
ROLLER_TOLERANCE_KG: Final = 10.0
#: longest wait for an axle plate to settle, seconds (a bound, not a procedure time)
WEIGH_TIMEOUT_S: Final = 30.0
#: below this an axle (or wheel plate) reading means "nothing on it", kg
MIN_LOAD_KG: Final = 50.0


class RollerScale(Protocol):
    """A brake tester that weighs the axle on its rollers."""

    async def read_wheel_loads(self) -> WheelLoads: ...


@runtime_checkable
class AxleWeigher(Protocol):
    """What these items need from an axle-plate weigher driver (``xk3190``)."""

    async def weigh(
        self,
        timeout: float,
        *,
        min_kg: float = 0.0,
        on_weight: Callable[[float], None] | None = None,
    ) -> WeightReading: ...


async def plate_loads(ctx: ItemContext) -> StaticLoads | None:
    """Static load from the lane's axle weigher(s), or None when the lane has none.

    One plate per axle (side "axle") gives the axle load; a left and a right wheel plate
    give the wheel loads. Each weigher is held through a one-device view of the context,
    so lockouts and availability are checked as for any device.
    """
    weighers = {
        device_id: supervisor
        for device_id, supervisor in ctx.supervisors.items()
        if supervisor.device.device_class is DeviceClass.AXLE_WEIGHER
    }
    if not weighers:
        return None
    by_side: dict[str, float] = {}
    for device_id, supervisor in weighers.items():
        view = dataclasses.replace(ctx, supervisors={device_id: supervisor})
        async with view.hold(DeviceClass.AXLE_WEIGHER) as device:
            if not isinstance(device, AxleWeigher):
                raise ItemAborted(f"axle weigher {device_id} cannot weigh a settled axle")
            reading = await device.weigh(WEIGH_TIMEOUT_S, min_kg=MIN_LOAD_KG)
        # the weight as the lane's calibration of this plate corrects it: the record names
        # that calibration (calibration_ref), so its value must be the corrected one
        by_side[reading.side] = ctx.corrector(device_id, "weight_kg")(reading.weight_kg)
    if "left" in by_side and "right" in by_side:
        left, right = by_side["left"], by_side["right"]
        return StaticLoads(left + right, "weigher", left, right)
    if "axle" in by_side:
        return StaticLoads(by_side["axle"], "weigher")
    raise ItemAborted(f"the lane's weighers give {sorted(by_side)}: need an axle or both wheels")


async def roller_loads(ctx: ItemContext, device_id: str, tester: RollerScale) -> StaticLoads:
    """Static wheel loads from the tester's own weighing, once stable: the median of the
    first ``WEIGH_READINGS`` readings in a row that agree (``ItemAborted`` when none do
    within ``ROLLER_MAX_READINGS``: the axle is still moving, or the scale is faulty),
    corrected by the tester's calibration of ``load_left_kg`` / ``load_right_kg``."""
    readings: list[WheelLoads] = []
    for _ in range(ROLLER_MAX_READINGS):
        readings.append(await tester.read_wheel_loads())
        window = readings[-WEIGH_READINGS:]
        if len(window) == WEIGH_READINGS and _agree(window):
            left = ctx.corrector(device_id, "load_left_kg")(
                float(statistics.median(r.load_left_kg for r in window))
            )
            right = ctx.corrector(device_id, "load_right_kg")(
                float(statistics.median(r.load_right_kg for r in window))
            )
            return StaticLoads(left + right, "brake_tester", left, right)
    shown = ", ".join(f"{r.load_left_kg:.0f}/{r.load_right_kg:.0f}" for r in readings[-4:])
    raise ItemAborted(
        f"the wheel loads did not settle in {ROLLER_MAX_READINGS} weighings"
        f" (last, left/right kg: {shown}): not used"
    )


def _agree(readings: list[WheelLoads]) -> bool:
    for side in ([r.load_left_kg for r in readings], [r.load_right_kg for r in readings]):
        bound = max(ROLLER_TOLERANCE_KG, ROLLER_TOLERANCE_FRACTION * max(side))
        if max(side) - min(side) > bound:
            return False
    return True
