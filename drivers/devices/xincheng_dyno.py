"""Driver for a chassis dynamometer with the Chengdu XinCheng controller, protocol v8.0.

Codec and choices: ``drivers.protocols.xincheng``, docs/protocols/xincheng.md. Every
command is answered by a response echoing its two letters (or by the debug texts
"error command" / "can`t up", which raise ``DeviceRefused``; other debug texts are kept
in ``debug_texts`` and skipped). Load control is two commands: the target (``SP``,
``SF``, ``SS``) and, unless that mode already runs, its begin (``BP``, ``BF``, ``BS``);
``BQ`` ends it. While a mode runs the controller pushes ``AII`` frames every 10-30 ms:
``stream`` listens to them in chunks of ``stream_chunk_frames`` (a silence longer than
``stream_silence_s`` raises ``ResponseTimeout``: the dyno dropped out); with control off
it polls ``XII``. The protocol cannot read back the lift or the motor: ``DynoReading``
reports what this driver last commanded. Power is ``F · v / 3600`` from the ``AII``
speed and force (firmware with Nanhua's P, F, V order: option ``idle_layout``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Final, Literal

from pydantic import Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DriverContext, DriverSpec
from drivers.devices.dyno_api import Ambient, ControlMode, DynoReading
from drivers.devices.dyno_common import DynoBase, DynoOptions
from drivers.errors import DeviceRefused
from drivers.protocols.xincheng import (
    Coverage,
    DebugText,
    Message,
    Placement,
    Response,
    ResponseDecoder,
    RollerSetup,
    encode_command,
    idle_fields,
    parse_roller_setup,
)
from drivers.transport import LineSettings

#: debug texts that answer a command with "no"
REFUSALS: Final = ("error command", "can`t up", "can't up")
#: control mode -> (set command, begin command)
CONTROL: Final[dict[str, tuple[str, str]]] = {
    "speed": ("SS", "BS"),
    "force": ("SF", "BF"),
    "power": ("SP", "BP"),
}
DEBUG_KEPT: Final = 32


class XinChengOptions(DynoOptions):
    """Installation settings of a XinCheng-controlled dyno."""

    placement: Literal["doc", "nanhua"] = Field(
        default="doc", description="checksum at byte 7 + 'C' (doc) or at byte 8 (Nanhua)"
    )
    coverage: Literal["frame", "body"] = Field(
        default="frame", description="checksum over bytes 0-6 (frame) or 1-6 (body)"
    )
    idle_layout: Literal["doc", "nanhua"] = Field(
        default="doc", description="AII floats: speed, force, duty (doc) or P, F, V (Nanhua)"
    )


class XinChengDyno(DynoBase):
    """A dyno with a XinCheng v8.0 controller on a stream bus."""

    model = "xincheng-v8"

    def __init__(
        self, device_id: str, bus: StreamBus, options: XinChengOptions | None = None
    ) -> None:
        self.options = options or XinChengOptions()
        super().__init__(device_id, self.options)
        self._bus = bus
        self._running: ControlMode = "off"  # what the controller runs (force for road load)
        self.debug_texts: deque[str] = deque(maxlen=DEBUG_KEPT)

    # --- Dynamometer ------------------------------------------------------------------

    async def lift(self, up: bool) -> None:
        """``JU`` / ``JD``; "can`t up" (e.g. rollers turning) raises ``DeviceRefused``."""
        await self._ask("JU" if up else "JD")
        self.lifted = up

    async def motor(self, on: bool) -> None:
        """``EB`` / ``ES``: the roller drive motor."""
        await self._ask("EB" if on else "ES")
        self.motor_on = on

    async def read_ambient(self) -> Ambient:
        """``RT``: temperature °C, humidity %, pressure kPa."""
        temperature, humidity, pressure = (await self._ask("RT")).values
        return Ambient(temperature, humidity, pressure)

    # --- XinCheng extras --------------------------------------------------------------

    async def read_roller_setup(self) -> RollerSetup:
        """``RS``: roller diameter (cm) and encoder pulses per revolution."""
        return parse_roller_setup(await self._ask("RS"))

    async def zero_force(self) -> None:
        """``SZ``: zero the force channel (rollers at rest, no load)."""
        await self._ask("SZ")

    async def clear_key(self) -> None:
        """``SK``: clear the latched remote-control key."""
        await self._ask("SK")

    # --- DynoBase ---------------------------------------------------------------------

    async def _read(self) -> DynoReading:
        return self._reading(await self._ask("II"), time.monotonic())

    async def _chunk(self) -> list[DynoReading] | None:
        if self._running == "off":
            return None
        readings: list[DynoReading] = []

        def on_message(message: Message) -> None:
            if isinstance(message, Response) and message.code == "II":
                readings.append(self._reading(message, time.monotonic()))
            elif isinstance(message, DebugText):
                self.debug_texts.append(message.text)

        def is_final(_message: Message) -> bool:
            return len(readings) >= self.options.stream_chunk_frames

        tx = Transaction(
            b"",
            ResponseDecoder(),
            is_final=is_final,
            on_message=on_message,
            silence_timeout=self.options.stream_silence_s,
            purge=False,
        )
        await self._bus.transact(self.device_id, tx)
        return readings

    async def _begin(self, mode: ControlMode, value: float) -> None:
        if mode == "off":
            await self._ask("BQ")
            self._running = "off"
            return
        set_code, begin_code = CONTROL[mode]
        await self._ask(set_code, value)
        if self._running != mode:
            await self._ask(begin_code)
            self._running = mode

    # --- exchange ---------------------------------------------------------------------

    def _reading(self, response: Response, received: float) -> DynoReading:
        fields = idle_fields(response, self.options.idle_layout)
        speed, force = fields["speed_kmh"], fields["force_n"]
        power = fields.get("power_kw", force * speed / 3600.0)
        reading = DynoReading(
            speed_kmh=round(speed, 3),
            force_n=round(force, 2),
            power_kw=round(power, 3),
            lifted=self.lifted,
            motor_on=self.motor_on,
            control_mode=self.control_mode,
            duty_pct=fields.get("duty_pct"),
            remote_key=response.remote_key,
            photocell_1=response.photocells[0],
            photocell_2=response.photocells[1],
            photocell_3=response.photocells[2],
            received_s=received,
        )
        return self._stamp(reading)

    async def _ask(self, code: str, value: float = 0.0) -> Response:
        """One command; the answer is the response echoing ``code`` (or a refusal)."""
        request = encode_command(
            code,
            value,
            placement=Placement(self.options.placement),
            coverage=Coverage(self.options.coverage),
        )

        def is_final(message: Message) -> bool:
            if isinstance(message, DebugText):
                self.debug_texts.append(message.text)
                return message.text in REFUSALS
            return message.code == code

        messages = await self._bus.transact(
            self.device_id, Transaction(request, ResponseDecoder(), is_final=is_final)
        )
        answer = messages[-1]
        if isinstance(answer, DebugText):
            raise DeviceRefused(f"{self.device_id}: {code} refused: {answer.text!r}")
        return answer


def _factory(ctx: DriverContext) -> XinChengDyno:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the xincheng protocol needs a stream bus")
    return XinChengDyno(
        ctx.device_id, ctx.bus, XinChengOptions.model_validate(ctx.options.model_dump())
    )


SPEC = DriverSpec(
    protocol="xincheng",
    device_class=DynoBase.device_class,
    bus_kind="stream",
    summary="Chengdu XinCheng v8.0 dyno controller: PAU speed/force/power, lift, motor, streams",
    factory=_factory,
    options=XinChengOptions,
    default_line=LineSettings(baudrate=38400, bytesize=8, parity="N", stopbits=1),
)
