"""Simulated Mingquan MQD-6A headlamp tester (framed protocol).

Builds and parses its bytes itself (``simulators.wire.mqd6a``, from protocols.md §4.1;
nothing of the driver's codec). The lamps come from
``scenario.vehicle.lamps``: on each side the outer lamp is the "main" lamp (high and low
beam), the inner lamp the "auxiliary" one (high beam, four-lamp systems only).

- Settings (S class) change what the next measurement covers: lamp system (2 at power-on),
  beams (both), order (high first); aim-adjust settings are accepted and ignored. Like
  every command without an answer in S4, they get no reply.
- Measure left / right (T 0x07 / 0x40; 0x5A / 0x59 and 0x51 in place alike; 0x52 full
  travel = left then right): the head travels (``TRAVEL_S``), then per beam searches and
  measures (``BEAM_S``) and sends its finish event (T 0x4F main high, 0x4E aux high,
  0x4D low). No lamp on the scenario (or an unlit one) ends the side with E 0x13, the
  ``fail_next_measure`` use case (option ``measure_error``) with E 0x14.
- Records: scenario intensity with Gaussian noise (``timing.noise`` relative), offsets in
  tester units (the scenario's numbers) plus ``OFFSET_NOISE`` x noise, height +- a few mm;
  the low-beam record reports 0 cd (the scenario has no low-beam intensity; GB 38900
  judges the high beam only). A new measurement of a side clears that side's records.
- Home (M 0x47): ``HOME_S`` of travel, then T 0x40. Stop (M 0x3E) and leave measuring /
  adjust (T 0x54 / 0x53) abort the running action.
- G 0x4F: the 112-byte dump; G 0x4C / 0x4D: the 39-byte main-lamp packet; T 0x6F: our
  status reply. A second action while one runs, other G requests, unknown commands and
  corrupted requests get a bare NAK (0x15). Requests to another address are ignored.

Every duration is scaled by ``timing.time_scale``; noise is seeded by ``timing.seed``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any, Final

from simulators.base import SimContext, SimSpec
from simulators.endpoint import SimLink
from simulators.scenario import Lamp
from simulators.wire import mqd6a as wire
from simulators.wire.mqd6a import Beam

TRAVEL_S: Final = 1.5  # the head moves in front of one side
BEAM_S: Final = 2.0  # searching and measuring one beam
HOME_S: Final = 2.0  # back to the home position
OFFSET_NOISE: Final = 10.0  # offset noise in tester units per unit of timing.noise
HEIGHT_NOISE_MM: Final = 2.0
MAX_OFFSET: Final = 9999.0

MEASURE_SIDES: Final[dict[tuple[int, int], tuple[str, ...]]] = {
    wire.MEASURE_LEFT: ("left",),
    wire.LEFT_ONLY: ("left",),
    wire.MEASURE_RIGHT: ("right",),
    wire.RIGHT_ONLY: ("right",),
    wire.MEASURE_FULL_TRAVEL: ("left", "right"),
}
ABORTS: Final = frozenset({wire.STOP, wire.LEAVE_MEASURING, wire.LEAVE_ADJUST})
SETTINGS: Final[dict[tuple[int, int], tuple[str, Any]]] = {
    wire.TWO_LAMPS: ("lamp_system", 2),
    wire.FOUR_LAMPS: ("lamp_system", 4),
    wire.HIGH_ONLY: ("beams", "high"),
    wire.LOW_ONLY: ("beams", "low"),
    wire.HIGH_AND_LOW: ("beams", "both"),
    wire.HIGH_FIRST: ("high_first", True),
    wire.LOW_FIRST: ("high_first", False),
}
FINISH: Final = {
    "main_high": wire.MAIN_HIGH_DONE,
    "aux_high": wire.AUX_HIGH_DONE,
    "low": wire.LOW_DONE,
}
#: (side, beam) -> index in the dump: left main high, left aux high, left low, right ...
SLOTS: Final = {
    (side, key): 3 * s + k
    for s, side in enumerate(("left", "right"))
    for k, key in enumerate(("main_high", "aux_high", "low"))
}


class Mqd6aSim:
    """The simulated tester; settings and records are kept across connections."""

    nak: bytes = bytes((wire.NAK,))

    def __init__(self, ctx: SimContext) -> None:
        timing = ctx.scenario.timing
        self.lamps = ctx.scenario.vehicle.lamps
        self._scale = timing.time_scale
        self._noise = timing.noise
        self._random = random.Random(timing.seed)
        self.lamp_system = 2
        self.beams = "both"
        self.high_first = True
        self.records: list[Beam | None] = [None] * len(SLOTS)
        self.state = "ready_home"
        self.side = "left"  # where the head stands (measure in place)
        self.fail_next_measure = bool(ctx.options.get("measure_error", False))
        self._action: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()

    async def handle(self, link: SimLink) -> None:
        """Serve one connection until cancelled; actions run beside the request loop."""
        buf = bytearray()  # line noise is skipped
        try:
            async with asyncio.TaskGroup() as group:
                while True:
                    buf += await link.read()
                    for request in wire.split_requests(buf):
                        if not request.checksum_ok:
                            await self._send(link, self.nak)
                        else:
                            await self._serve(request, link, group)
        finally:
            self._action = None
            if self.state == "busy":
                self.state = "ready_away"

    async def _serve(self, request: wire.Request, link: SimLink, group: asyncio.TaskGroup) -> None:
        if request.address != wire.ADDRESS:
            return
        command = request.kind
        if command in SETTINGS:
            name, value = SETTINGS[command]
            setattr(self, name, value)
        elif command in ABORTS:
            if self._action is not None:
                self._action.cancel()
        elif command in MEASURE_SIDES or command in (wire.MEASURE_IN_PLACE, wire.HOME):
            await self._start(command, link, group)
        elif command not in wire.KNOWN:
            await self._send(link, self.nak)
        elif command[0] != wire.SETTING:  # known settings without an effect get no reply
            await self._send(link, self._answer(command))

    def _answer(self, command: tuple[int, int]) -> bytes:
        if command == wire.GET_STATUS:
            return wire.event((wire.MEASURE, wire.STATUS_CODES[self.state]))
        if command == wire.GET_ALL:
            return wire.dump(self.records)
        if command == wire.GET_LEFT_MAIN:
            return wire.main_lamp("left", self.records[0], self.records[2])
        if command == wire.GET_RIGHT_MAIN:
            return wire.main_lamp("right", self.records[3], self.records[5])
        return self.nak  # aux / current data (format unknown), one lamp only

    async def _start(
        self, command: tuple[int, int], link: SimLink, group: asyncio.TaskGroup
    ) -> None:
        if self._action is not None and not self._action.done():
            await self._send(link, self.nak)  # busy with another action
            return
        action: Callable[[], Coroutine[Any, Any, None]]
        if command == wire.HOME:
            action = lambda: self._home(link)  # noqa: E731
        else:
            sides = MEASURE_SIDES.get(command, (self.side,))
            action = lambda: self._measure(link, sides)  # noqa: E731
        self.state = "busy"
        self._action = group.create_task(self._run(action))

    async def _run(self, action: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await action()
        except asyncio.CancelledError:
            self.state = "ready_away"  # stopped where it was
            raise

    async def _home(self, link: SimLink) -> None:
        await self._sleep(HOME_S)
        self.state, self.side = "ready_home", "left"
        await self._send(link, wire.event(wire.HOMED))

    async def _measure(self, link: SimLink, sides: tuple[str, ...]) -> None:
        for side in sides:
            self.side = side
            for key in ("main_high", "aux_high", "low"):
                self.records[SLOTS[side, key]] = None
            await self._sleep(TRAVEL_S)
            for key in self.beam_order():
                await self._sleep(BEAM_S)
                failure = self._measure_beam(side, key)
                if failure is not None:
                    self.state = "ready_away"
                    await self._send(link, wire.event(failure))
                    return
                await self._send(link, wire.event(FINISH[key]))
        self.state = "ready_away"

    def beam_order(self) -> list[str]:
        """The beams a side's measurement covers, in the configured order."""
        high = ["main_high", "aux_high"] if self.lamp_system == 4 else ["main_high"]
        if self.beams == "high":
            return high
        if self.beams == "low":
            return ["low"]
        return [*high, "low"] if self.high_first else ["low", *high]

    def _measure_beam(self, side: str, key: str) -> tuple[int, int] | None:
        """Fill the beam's record; the error event when it cannot be measured."""
        if self.fail_next_measure:
            self.fail_next_measure = False
            return wire.MEASURE_ERROR
        lamp = self._lamp(side, key)
        if lamp is None or lamp.high_intensity_cd <= 0:
            return wire.NO_LAMP
        self.records[SLOTS[side, key]] = self._record(lamp, high=key != "low")
        return None

    def _lamp(self, side: str, key: str) -> Lamp | None:
        if self.lamps is None:
            return None
        if key == "aux_high":
            return self.lamps.left_inner if side == "left" else self.lamps.right_inner
        return self.lamps.left_outer if side == "left" else self.lamps.right_outer

    def _record(self, lamp: Lamp, *, high: bool) -> Beam:
        horizontal = lamp.high_horizontal_offset if high else lamp.low_horizontal_offset
        vertical = lamp.high_vertical_offset if high else lamp.low_vertical_offset
        spread = OFFSET_NOISE * self._noise
        intensity = 0.0
        if high:
            intensity = self._random.gauss(
                lamp.high_intensity_cd, self._noise * lamp.high_intensity_cd
            )
        return Beam(
            horizontal_offset=_clip(round(self._random.gauss(horizontal, spread), 1)),
            vertical_offset=_clip(round(self._random.gauss(vertical, spread), 1)),
            intensity_cd=max(0, round(intensity / 100) * 100),
            height_mm=max(0, round(self._random.gauss(lamp.height_mm, HEIGHT_NOISE_MM))),
        )

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds * self._scale)

    async def _send(self, link: SimLink, frame: bytes) -> None:
        async with self._send_lock:  # an event never splits a reply (or vice versa)
            await link.send(frame)


def _clip(value: float) -> float:
    return max(-MAX_OFFSET, min(MAX_OFFSET, value))


def _factory(ctx: SimContext) -> Any:
    return Mqd6aSim(ctx)


SIM = SimSpec(
    protocol="mqd6a",
    kind="stream",
    summary="Mingquan MQD-6A headlamp tester: settings, timed per-beam events, lamp records",
    factory=_factory,
)
