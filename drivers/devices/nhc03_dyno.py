"""Driver for a chassis dynamometer with the Nanhua NHC-03 controller.

Codec and choices: ``drivers.protocols.nhc03``, docs/protocols/nhc03.md. A reading is
``C`` (power, force, speed) plus ``D`` (status word: lift, motor, the control word in
force); set-points are variables written with ``F`` (200 speed ×100, 201/202 force
integer/tenths, 228 power ×100) before the control word ('1', '2', '7'; '0' ends
control). The controller answers 0x15 when busy or refusing: ``DeviceRefused``. It does
not push frames: ``stream`` polls. It has no ambient sensors: ``read_ambient`` raises
``NotSupported``. Road load: by the driver's constant-force updates (as for XinCheng), or
with option ``device_road_load`` by the controller's variable-load mode 'Q' (variables
240-243 are our numbering: check them against the controller's manual). One-byte
replies have no checksum, so (like the NHA-503 driver) the last byte of a burst is the
answer.
"""

from __future__ import annotations

import time
from typing import Final, TypeVar

from pydantic import Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DriverContext, DriverSpec
from drivers.devices.dyno_api import Ambient, ControlMode, DynoReading, RoadLoad
from drivers.devices.dyno_common import DynoBase, DynoOptions
from drivers.errors import DeviceRefused, LocalProtocolError, NotSupported, UnexpectedResponse
from drivers.protocols.nhc03 import (
    Ack,
    Cmd,
    Nak,
    Realtime,
    Reply,
    ReplyDecoder,
    StatusWord,
    Variable,
    Word,
    encode_read_variable,
    encode_request,
    encode_write_variable,
)
from drivers.transport import LineSettings

R = TypeVar("R")

#: control word in the status word's high byte -> control mode
MODES: Final[dict[str, ControlMode]] = {
    "0": "off",
    "1": "speed",
    "2": "force",
    "4": "power",
    "7": "power",
}


class Nhc03Options(DynoOptions):
    """Installation settings of an NHC-03-controlled dyno."""

    device_road_load: bool = Field(
        default=False,
        description="road load by the controller ('Q', variables 240-243: our numbering) "
        "instead of the driver's constant-force updates",
    )


class Nhc03Dyno(DynoBase):
    """A dyno with a Nanhua NHC-03 controller on a stream bus."""

    model = "nhc03"

    def __init__(self, device_id: str, bus: StreamBus, options: Nhc03Options | None = None) -> None:
        self.options = options or Nhc03Options()
        super().__init__(device_id, self.options)
        self._bus = bus

    async def lift(self, up: bool) -> None:
        """Control word '5' (up) / '6' (down)."""
        await self._control_word(Cmd.LIFT_UP if up else Cmd.LIFT_DOWN)
        self.lifted = up

    async def motor(self, on: bool) -> None:
        """Control word 'J' (on) / 'K' (off)."""
        await self._control_word(Cmd.MOTOR_ON if on else Cmd.MOTOR_OFF)
        self.motor_on = on

    async def set_road_load(self, road_load: RoadLoad) -> None:
        """Road load: by the controller ('Q') with ``device_road_load``, else by the driver."""
        if not self.options.device_road_load:
            await super().set_road_load(road_load)
            return
        inertia = road_load.inertia_kg if road_load.inertia_kg is not None else self.base_inertia_kg
        words = {
            Variable.ROAD_A: round(road_load.a_n * 10),
            Variable.ROAD_B: round(road_load.b_n_per_kmh * 100),
            Variable.ROAD_C: round(road_load.c_n_per_kmh2 * 1000),
            Variable.ROAD_INERTIA: round(inertia),
        }
        if not all(0 <= value <= 0xFFFF for value in words.values()):
            raise LocalProtocolError(f"{self.device_id}: road load {road_load} out of range")
        for variable, value in words.items():
            await self.write_variable(variable, value)
        await self._control_word(Cmd.VARIABLE_LOAD)
        self._set_mode("road_load", road_load.a_n)

    async def read_ambient(self) -> Ambient:
        """The NHC-03 has no ambient sensors (S1 reads none)."""
        raise NotSupported(f"{self.device_id}: the NHC-03 controller has no ambient sensors")

    async def read_status_word(self) -> int:
        """The raw ``D`` status word."""
        return (await self._ask(encode_request(Cmd.STATUS), Cmd.STATUS, Word)).value

    async def read_variable(self, variable: int) -> int:
        """``E`` n: a controller variable."""
        return (await self._ask(encode_read_variable(variable), Cmd.READ_VARIABLE, Word)).value

    async def write_variable(self, variable: int, value: int) -> None:
        """``F`` n hi lo: write a controller variable."""
        await self._ask(encode_write_variable(variable, value), Cmd.WRITE_VARIABLE, Ack)

    # --- DynoBase ---------------------------------------------------------------------

    async def _read(self) -> DynoReading:
        realtime = await self._ask(encode_request(Cmd.REALTIME), Cmd.REALTIME, Realtime)
        received = time.monotonic()
        status = await self.read_status_word()
        flags = StatusWord(status & 0xFF)
        self.lifted = StatusWord.LIFT_UP in flags
        self.motor_on = StatusWord.MOTOR_ON in flags
        self._adopt(MODES.get(chr(status >> 8)))
        reading = DynoReading(
            speed_kmh=realtime.speed_kmh,
            force_n=realtime.force_n,
            power_kw=realtime.power_kw,
            lifted=self.lifted,
            motor_on=self.motor_on,
            control_mode=self.control_mode,
            received_s=received,
        )
        return self._stamp(reading)

    def _adopt(self, device_mode: ControlMode | None) -> None:
        """The controller's control word is the truth (reset, keypad), road load aside."""
        if device_mode is None or device_mode == self.control_mode:
            return
        if self.control_mode == "road_load" and device_mode == "force" and self._follower:
            return  # the driver's own road load runs as constant force
        self._set_mode(device_mode, None if device_mode == "off" else self.target)

    async def _chunk(self) -> list[DynoReading] | None:
        return None

    async def _begin(self, mode: ControlMode, value: float) -> None:
        if mode == "speed":
            await self.write_variable(Variable.SPEED_TARGET, round(value * 100))
            await self._control_word(Cmd.CONSTANT_SPEED)
        elif mode == "force":
            tenths = round(value * 10)
            await self.write_variable(Variable.FORCE_INTEGER, tenths // 10)
            await self.write_variable(Variable.FORCE_TENTHS, tenths % 10)
            await self._control_word(Cmd.CONSTANT_FORCE)
        elif mode == "power":
            await self.write_variable(Variable.POWER_TARGET, round(value * 100))
            await self._control_word(Cmd.CONSTANT_POWER)
        else:
            await self._control_word(Cmd.CONTROL_OFF)

    # --- exchange ---------------------------------------------------------------------

    async def _control_word(self, cmd: Cmd) -> None:
        await self._ask(encode_request(cmd), cmd, Ack)

    async def _ask(self, request: bytes, cmd: Cmd, expect: type[R]) -> R:
        decoder = ReplyDecoder(cmd)

        def drained(_message: Reply) -> bool:
            return decoder.buffered == 0

        messages = await self._bus.transact(
            self.device_id, Transaction(request, decoder, is_final=drained)
        )
        reply = messages[-1]
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: {cmd.name} refused or busy (0x15)")
        if not isinstance(reply, expect):
            raise UnexpectedResponse(f"{self.device_id}: {cmd.name} answered {reply!r}")
        return reply


def _factory(ctx: DriverContext) -> Nhc03Dyno:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the nhc03 protocol needs a stream bus")
    return Nhc03Dyno(ctx.device_id, ctx.bus, Nhc03Options.model_validate(ctx.options.model_dump()))


SPEC = DriverSpec(
    protocol="nhc03",
    device_class=DynoBase.device_class,
    bus_kind="stream",
    summary="Nanhua NHC-03 dyno controller: variables and control words, polled",
    factory=_factory,
    options=Nhc03Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
