"""S1 speedometer item: read the roller speed latched when the dashboard shows 40 km/h.

States (explicit; see ``TRANSITIONS``)::

    IDLE -> LIFT_DOWN -> SPINNING -> LATCHED -> LIFT_UP -> DONE

The driver accelerates; when the speedometer shows 40 km/h they press the button and
the tester latches the actual roller speed V2. GB 7258 asks 0 <= V1 - V2 <= V2/10 + 4,
i.e. V2 within 32.8-40 km/h at V1 = 40 (limits table ``speedometer_actual_at_40_kmh``).
"""

from __future__ import annotations

import enum
from typing import Final, Protocol

from drivers.devices.base import DeviceClass
from gateway.inspection.items import ItemContext, ItemOutcome, overall
from gateway.inspection.machine import Machine
from gateway.limits import load_table

#: how long the driver has to reach 40 km/h and press the button, seconds
LATCH_TIMEOUT_S: Final = 60.0


class SpeedTester(Protocol):
    """What this item needs from a speedometer tester driver."""

    async def lift_down(self) -> None: ...
    async def lift_up(self) -> None: ...
    async def start(self) -> None: ...
    async def wait_for_latch(self, timeout: float) -> LatchedSpeed: ...


class LatchedSpeed(Protocol):
    """The reading a speedometer tester returns once latched."""

    @property
    def latched_speed_kmh(self) -> float: ...


class State(enum.Enum):
    """Steps of the S1 item."""

    IDLE = enum.auto()
    LIFT_DOWN = enum.auto()
    SPINNING = enum.auto()
    LATCHED = enum.auto()
    LIFT_UP = enum.auto()
    DONE = enum.auto()


TRANSITIONS: Final = {
    State.IDLE: frozenset({State.LIFT_DOWN}),
    State.LIFT_DOWN: frozenset({State.SPINNING}),
    State.SPINNING: frozenset({State.LATCHED}),
    State.LATCHED: frozenset({State.LIFT_UP}),
    State.LIFT_UP: frozenset({State.DONE}),
}


class SpeedometerItem:
    """The S1 procedure."""

    needs: tuple[DeviceClass, ...] = (DeviceClass.SPEEDOMETER_TESTER,)

    async def run(self, ctx: ItemContext) -> ItemOutcome:
        """Run S1 and judge the latched speed."""
        table = load_table("gb7258-2017")
        machine = Machine("S1", State.IDLE, TRANSITIONS)
        async with ctx.hold(DeviceClass.SPEEDOMETER_TESTER) as tester:
            machine.go(State.LIFT_DOWN)
            ctx.progress("speedometer_lift_down", "drive onto the rollers")
            await tester.lift_down()
            machine.go(State.SPINNING)
            await tester.start()
            ctx.progress("speedometer_spinning", "accelerate; press the button at 40 km/h")
            actual = (await tester.wait_for_latch(LATCH_TIMEOUT_S)).latched_speed_kmh
            machine.go(State.LATCHED)
            ctx.progress("speedometer_latched", f"actual speed {actual:.1f} km/h", speed_kmh=actual)
            machine.go(State.LIFT_UP)
            await tester.lift_up()
        machine.go(State.DONE)
        value = table.judge("speedometer_actual_at_40_kmh", "actual_speed_at_indicated_40", actual)
        return ItemOutcome(
            overall([value.verdict]), [value], limit_set=table.name, name="speedometer"
        )
