"""Driver for the Nanhua NHA-503 family petrol (4/5-gas) exhaust analyser.

One command byte per request, a fixed reply per command (codec and choices:
``drivers.protocols.nha503``, docs/protocols/nha503.md). The protocol has no start byte,
no command echo and, for one- and two-byte replies, no checksum, so the driver guards
against taking one reply for another:

- it uses the *last* message of a burst (a transaction ends only when the decoder's
  buffer is empty), so a late reply glued in front of the fresh one is skipped;
- after a ``ResponseTimeout`` the reply may still come; before the next request the
  driver waits until the line has been quiet for ``settle_s``, discarding what arrives;
- records are checksummed and never handed up when the checksum fails.

Actions (zero, leak check, span calibration, gas check) are polled the way Nanhua's own
software does: the command is sent again every ``action_poll_s``; while it runs the
analyser answers 0x05 (span/check add the bench readings), then 0x00 or 0x01. Sending
the command again during the action only asks for its state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Final, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec, Reading
from drivers.errors import (
    DeviceBusy,
    DeviceFault,
    DeviceRefused,
    LocalProtocolError,
    ResponseTimeout,
    UnexpectedResponse,
)
from drivers.protocols.nha503 import (
    COMMANDS,
    Ack,
    Ambient,
    AnalyserStatus,
    CalibrationProgress,
    Command,
    GasBlock,
    MainData,
    Nak,
    Pef,
    Reply,
    ReplyDecoder,
    ReplyKind,
    Result,
    ResultCode,
    Status,
    TwoSpeedIdleResult,
    WarmupTime,
    encode_command,
    encode_gas_block,
    encode_value_block,
)
from drivers.transport import ByteLink, LineSettings

R = TypeVar("R")
T = TypeVar("T", bound=Reading)

#: reading field -> codec field, where the names differ
_RENAMED: Final = {"nox_ppm": "no_ppm"}

#: main-data command by (new_format, old_firmware)
_READ_COMMANDS: Final = {
    (False, False): Command.READ_DATA,
    (True, False): Command.READ_DATA_NEW,
    (False, True): Command.READ_DATA_OLD,
}
#: bursts a quiet-line wait may swallow before it gives up (a chattering line)
SETTLE_ROUNDS: Final = 4


class Nha503Options(BaseModel):
    """Per-installation settings of an NHA-503 family analyser."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    new_format: bool = Field(
        default=False, description="read main data with 0x2C (23 bytes, water-trap flag)"
    )
    old_firmware: bool = Field(default=False, description="read main data with 0x01, not 0x81")
    record_header: int | None = Field(
        default=None, ge=0, le=255, description="required record byte 0; None: any, as S1"
    )
    action_poll_s: float = Field(default=0.5, gt=0, description="period of action polling")
    action_timeout_s: float = Field(default=180.0, gt=0, description="longest action")
    settle_s: float | None = Field(
        default=None, ge=0, description="quiet line wanted after a timeout; None: bus timeout"
    )

    @model_validator(mode="after")
    def _one_format(self) -> Nha503Options:
        if self.new_format and self.old_firmware:
            raise ValueError("new_format (0x2C) and old_firmware (0x01) exclude each other")
        return self


class Sensor(enum.IntEnum):
    """Ambient sensors that take a reference value (two-phase, value ×10), by command."""

    AMBIENT_TEMP = Command.CAL_AMBIENT_TEMP
    OIL_TEMP = Command.CAL_OIL_TEMP
    HUMIDITY = Command.CAL_HUMIDITY
    BAROMETER = Command.CAL_BAROMETER


@dataclass(frozen=True, slots=True)
class GasReading(Reading):
    """Main data: concentrations, engine speed and oil temperature, sensor flags."""

    hc_ppm: int  # n-hexane equivalent
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    nox_ppm: int  # the NO cell, reported as NOx by the 4/5-gas models
    engine_speed_rpm: int
    oil_temp_c: float
    lambda_: float
    flow_raw: int  # sample-flow indicator, unit undocumented
    o2_sensor_aged: bool
    no_sensor_aged: bool
    water_trap_full: bool | None = None  # only with the 0x2C format


@dataclass(frozen=True, slots=True)
class AmbientReading(Reading):
    """Ambient conditions measured by the analyser."""

    temperature_c: float
    pressure_kpa: float
    humidity_pct: float


@dataclass(frozen=True, slots=True)
class IdleValues(Reading):
    """One engine speed of a two-speed-idle test."""

    hc_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    nox_ppm: int
    engine_speed_rpm: int
    oil_temp_c: float
    lambda_: float


@dataclass(frozen=True, slots=True)
class TwoSpeedIdleReading(Reading):
    """The two-speed-idle result stored in the analyser (0x88)."""

    high_idle: IdleValues
    low_idle: IdleValues


@dataclass(frozen=True, slots=True)
class CalibrationReading(Reading):
    """Bench readings while a span calibration or gas check runs."""

    hc_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    nox_ppm: int
    pef: float


ProgressCallback = Callable[[CalibrationReading], None]


def _reading(cls: type[T], source: object) -> T:
    """The reading ``cls`` from a codec message with the same field names (NO as NOx)."""
    names = (field.name for field in dataclasses.fields(cls))
    return cls(**{name: getattr(source, _RENAMED.get(name, name)) for name in names})


class Nha503Analyser:
    """An NHA-503 family gas analyser on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.GAS_ANALYSER

    def __init__(
        self, device_id: str, bus: StreamBus, options: Nha503Options | None = None
    ) -> None:
        self.device_id = device_id
        self.options = options or Nha503Options()
        self._bus = bus
        self._late_reply_possible = False
        self._read_command = _READ_COMMANDS[self.options.new_format, self.options.old_firmware]

    # --- readings ---------------------------------------------------------------------

    async def read_gases(self) -> GasReading:
        """Main data (0x81, or 0x2C / 0x01 per options)."""
        return _reading(GasReading, await self._ask(self._read_command, MainData))

    async def poll(self) -> GasReading:
        """Snapshot for the supervisor: a main-data read, which starts nothing."""
        return await self.read_gases()

    async def read_ambient(self) -> AmbientReading:
        """Ambient temperature, barometric pressure and humidity (0x02)."""
        return _reading(AmbientReading, await self._ask(Command.READ_AMBIENT, Ambient))

    async def read_status(self) -> AnalyserStatus:
        """The analyser state (0x26); codes this driver does not know read as UNKNOWN."""
        return AnalyserStatus((await self._ask(Command.READ_STATUS, Status)).code)

    async def warmup_remaining_s(self) -> int:
        """Seconds of warm-up left (0x27); 0 when warm."""
        return (await self._ask(Command.READ_WARMUP, WarmupTime)).seconds

    async def read_pef(self) -> float:
        """The bench's propane equivalence factor (0x0D)."""
        return (await self._ask(Command.READ_PEF, Pef)).value

    async def read_tsi_result(self) -> TwoSpeedIdleReading:
        """The two-speed-idle result the analyser stored (0x88)."""
        result = await self._ask(Command.READ_TSI_RESULT, TwoSpeedIdleResult)
        high, low = _reading(IdleValues, result.high_idle), _reading(IdleValues, result.low_idle)
        return TwoSpeedIdleReading(high, low)

    # --- gas path ---------------------------------------------------------------------

    async def pump_on(self) -> None:
        """Pump on, sample from the probe (0x04)."""
        await self.execute(Command.PUMP_ON)

    async def pump_off(self) -> None:
        """Stop the pump and any back-flush (0x06)."""
        await self.execute(Command.PUMP_OFF)

    async def ambient_air(self) -> None:
        """Pump on, draw ambient air through the zero port (0x03)."""
        await self.execute(Command.AMBIENT_AIR)

    async def backflush(self) -> None:
        """Back-flush the probe and hose (0x05); ``pump_off`` ends it."""
        await self.execute(Command.BACKFLUSH)

    async def execute(self, command: Command) -> None:
        """Send any command that is answered by a bare 0x06 (settings: fuel, stroke...)."""
        spec = COMMANDS[command]
        if spec.reply is not ReplyKind.ACK or spec.parameters.value:
            raise LocalProtocolError(f"{command.name} is not a plain acknowledged command")
        await self._ask(command, Ack)

    # --- actions ----------------------------------------------------------------------

    async def zero(self) -> None:
        """Zero the bench (0x08); ``DeviceFault`` if the analyser reports failure."""
        if await self._run_action(Command.ZERO) is ResultCode.FAILED:
            raise DeviceFault(f"{self.device_id}: zero failed")

    async def leak_check(self) -> bool:
        """Run the leak check (0x07); True when no leak was found."""
        return await self._run_action(Command.LEAK_CHECK) is ResultCode.OK

    async def span_calibrate(self, on_progress: ProgressCallback | None = None) -> None:
        """Calibrate on the span gas written before (0x0A); ``DeviceFault`` on failure."""
        if await self._run_action(Command.SPAN_CALIBRATE, on_progress) is ResultCode.FAILED:
            raise DeviceFault(f"{self.device_id}: span calibration failed")

    async def gas_check(self, on_progress: ProgressCallback | None = None) -> bool:
        """Check the bench on the check gas written before (0x0C); True when it passed."""
        return await self._run_action(Command.GAS_CHECK, on_progress) is ResultCode.OK

    # --- parameters -------------------------------------------------------------------

    async def write_span_gas(
        self, c3h8_ppm: int, co_pct_vol: float, co2_pct_vol: float, no_ppm: int
    ) -> None:
        """Tell the analyser the span (calibration) gas concentrations (0x09)."""
        block = GasBlock(c3h8_ppm, co_pct_vol, co2_pct_vol, no_ppm)
        await self._write_block(Command.WRITE_SPAN_GAS, encode_gas_block(block))

    async def write_check_gas(
        self, c3h8_ppm: int, co_pct_vol: float, co2_pct_vol: float, no_ppm: int
    ) -> None:
        """Tell the analyser the check (audit) gas concentrations (0x0B)."""
        block = GasBlock(c3h8_ppm, co_pct_vol, co2_pct_vol, no_ppm)
        await self._write_block(Command.WRITE_CHECK_GAS, encode_gas_block(block))

    async def calibrate_sensor(self, sensor: Sensor, reference: float) -> None:
        """Calibrate an ambient sensor to ``reference`` (°C, %, kPa)."""
        await self._write_block(Command(sensor), encode_value_block(reference))

    # --- exchanges --------------------------------------------------------------------

    async def _run_action(
        self, command: Command, on_progress: ProgressCallback | None = None
    ) -> ResultCode:
        """Start or continue an action and poll it until it reports OK or FAILED."""
        if await self.read_status() is AnalyserStatus.WARMING_UP:
            raise DeviceBusy(f"{self.device_id}: warming up, {command.name} not possible")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.action_timeout_s
        while True:
            reply = await self._exchange(encode_command(command), self._decoder(command))
            if isinstance(reply, CalibrationProgress):
                if on_progress is not None:
                    on_progress(_reading(CalibrationReading, reply))
            elif not isinstance(reply, Result):
                raise UnexpectedResponse(f"{self.device_id}: {command.name} answered {reply!r}")
            elif reply.code in (ResultCode.OK, ResultCode.FAILED):
                return reply.code
            if loop.time() >= deadline:
                raise DeviceFault(f"{self.device_id}: {command.name} still running at timeout")
            await asyncio.sleep(self.options.action_poll_s)

    async def _write_block(self, command: Command, block: bytes) -> None:
        """Two-phase command: the command byte, 0x06, the block, the result byte."""
        await self._ask(command, Ack)
        reply = await self._exchange(block, self._decoder(command, parameters=True))
        if not isinstance(reply, Result):
            raise UnexpectedResponse(f"{self.device_id}: {command.name} block got {reply!r}")
        if reply.code is not ResultCode.OK:
            raise DeviceRefused(
                f"{self.device_id}: {command.name} parameters rejected", code=int(reply.code)
            )

    def _decoder(self, command: Command, *, parameters: bool = False) -> ReplyDecoder:
        return ReplyDecoder(command, parameters=parameters, header=self.options.record_header)

    async def _ask(self, command: Command, expect: type[R]) -> R:
        reply = await self._exchange(encode_command(command), self._decoder(command))
        if not isinstance(reply, expect):
            raise UnexpectedResponse(f"{self.device_id}: {command.name} answered {reply!r}")
        return reply

    async def _exchange(self, request: bytes, decoder: ReplyDecoder) -> Reply:
        """One request; the reply is the last message of the burst; NAK raises."""
        if self._late_reply_possible:
            await self._settle()

        def drained(_message: Reply) -> bool:
            return decoder.buffered == 0

        try:
            messages = await self._bus.transact(
                self.device_id, Transaction(request, decoder, is_final=drained)
            )
        except ResponseTimeout:
            self._late_reply_possible = True
            raise
        reply = messages[-1]
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: {decoder.command.name} refused (NAK)")
        return reply

    async def _settle(self) -> None:
        """Wait until the line is quiet, so that a late reply is not taken for the next."""
        quiet = self.options.settle_s
        if quiet is None:
            quiet = self._bus.response_timeout
        self._late_reply_possible = False
        if quiet <= 0:
            return

        async def wait_quiet(link: ByteLink) -> None:
            link.purge()
            for _ in range(SETTLE_ROUNDS):  # a chattering line: stop waiting after a while
                try:
                    await link.read(quiet)
                except ResponseTimeout:
                    return

        await self._bus.submit(self.device_id, wait_quiet)


def _factory(ctx: DriverContext) -> Nha503Analyser:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the nha503 protocol needs a stream bus")
    options = Nha503Options.model_validate(ctx.options.model_dump())
    return Nha503Analyser(ctx.device_id, ctx.bus, options)


SPEC = DriverSpec(
    protocol="nha503",
    device_class=DeviceClass.GAS_ANALYSER,
    bus_kind="stream",
    summary="Nanhua NHA-503 family petrol gas analyser (single-byte commands, sum8 records)",
    factory=_factory,
    options=Nha503Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
