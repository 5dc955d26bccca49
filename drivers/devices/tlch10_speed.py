"""Driver for the Jiangxing TLCH-10 speedometer tester, A-frame protocol.

The test as the vendor's lane software runs it (S4): clear/start (0x66), lift down so the
driven wheels turn the rollers, the driver accelerates until the dashboard shows 40 km/h
and presses the hand button; the tester latches the roller speed at that instant. The
host polls "read speed" (0x68, every 0.5 s in S4) until the latched flag ('a') is set,
and S4 also waits for the rollers to stop before lifting up. Codec and choices:
``drivers.protocols.jx_aframe`` and docs/protocols/jx-aframe.md.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import ResponseTimeout
from drivers.protocols.jx_aframe import (
    Ack,
    Answer,
    Command,
    ReplyDecoder,
    SpeedFrame,
    answer_of,
    answers,
    encode_request,
)
from drivers.transport import LineSettings


class Tlch10Options(BaseModel):
    """Per-installation settings of a TLCH-10."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    poll_interval_s: float = Field(
        default=0.5, gt=0, description="speed polling period while waiting for the latch"
    )


@dataclass(frozen=True, slots=True)
class SpeedReading(Reading):
    """Roller speed now, and the speed latched when the driver pressed the button."""

    speed_kmh: float
    latched_speed_kmh: float
    latched: bool


class Tlch10SpeedTester:
    """A TLCH-10 speedometer tester on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.SPEEDOMETER_TESTER

    def __init__(
        self, device_id: str, bus: StreamBus, options: Tlch10Options | None = None
    ) -> None:
        self.device_id = device_id
        self.options = options or Tlch10Options()
        self._bus = bus

    async def lift_up(self) -> None:
        """Raise the lift (rollers locked, vehicle can drive off)."""
        await self._ask(Command.LIFT_UP, Ack)

    async def lift_down(self) -> None:
        """Lower the lift: the driven wheels rest on the rollers."""
        await self._ask(Command.LIFT_DOWN, Ack)

    async def start(self) -> None:
        """Clear the latched speed and arm a new measurement (0x66)."""
        await self._ask(Command.START, Ack)

    async def read_speed(self) -> SpeedReading:
        """Current and latched roller speed."""
        frame = await self._ask(Command.READ, SpeedFrame)
        return SpeedReading(frame.speed_kmh, frame.latched_speed_kmh, frame.latched)

    async def wait_for_latch(self, timeout: float, *, until_stopped: bool = False) -> SpeedReading:
        """Poll until the speed is latched (and, with ``until_stopped``, the rollers stopped).

        Raises ``ResponseTimeout`` when that does not happen within ``timeout`` seconds;
        errors of a single poll propagate.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            reading = await self.read_speed()
            if reading.latched and (not until_stopped or reading.speed_kmh == 0.0):
                return reading
            if loop.time() + self.options.poll_interval_s > deadline:
                raise ResponseTimeout(f"{self.device_id}: no latched speed within {timeout} s")
            await asyncio.sleep(self.options.poll_interval_s)

    async def poll(self) -> SpeedReading:
        """Snapshot for the supervisor: a speed read, which changes nothing on the tester."""
        return await self.read_speed()

    async def _ask(self, command: Command, expect: type[Answer]) -> Answer:
        tx = Transaction(encode_request(command), ReplyDecoder(), is_final=answers(command, expect))
        return answer_of(await self._bus.transact(self.device_id, tx), command, expect)


def _factory(ctx: DriverContext) -> Tlch10SpeedTester:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the tlch10 protocol needs a stream bus")
    options = Tlch10Options.model_validate(ctx.options.model_dump())
    return Tlch10SpeedTester(ctx.device_id, ctx.bus, options)


SPEC = DriverSpec(
    protocol="tlch10",
    device_class=DeviceClass.SPEEDOMETER_TESTER,
    bus_kind="stream",
    summary="Jiangxing TLCH-10 speedometer tester (A-frame, polled current/latched speed)",
    factory=_factory,
    options=Tlch10Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
