"""Driver for the FuLi FLV-1000 VMAS dilution flowmeter (福立, protocols.md §3.4).

Codec and choices: ``drivers.protocols.flv1000``, docs/protocols/flv1000.md. A reading
is two requests: 0x86 (diluted O2, pressure, temperature, actual flow) and 0x85
(standard flow). The manual's example checksums contradict its own rule, so a reply
whose checksum disagrees is **kept**: it is logged, counted in ``checksum_mismatches``
and, with option ``strict_checksum``, refused with ``ChecksumError`` instead. A reply is
the last one of its burst that answers the command asked (a glued late reply is skipped).
"""

from __future__ import annotations

import logging
from typing import ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec
from drivers.devices.dyno_api import FlowReading, FlowStatus
from drivers.errors import ChecksumError, DeviceRefused, UnexpectedResponse
from drivers.protocols.flv1000 import (
    Ack,
    Command,
    Measurement,
    Nak,
    Reply,
    ReplyDecoder,
    Status,
    StatusBits,
    Version,
    encode_request,
)
from drivers.transport import LineSettings

R = TypeVar("R", Measurement, Status, Version, Ack)
log = logging.getLogger(__name__)


class Flv1000Options(BaseModel):
    """Installation settings of an FLV-1000."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strict_checksum: bool = Field(
        default=False, description="refuse replies whose checksum breaks the rule (default: log)"
    )


def _answers(message: Reply, command: Command) -> bool:
    if isinstance(message, Nak):
        return True
    if isinstance(message, Status):
        return command is Command.STATUS
    if isinstance(message, Version):
        return command is Command.VERSION
    return message.command is command


class Flv1000Flowmeter:
    """An FLV-1000 flowmeter on a stream bus."""

    device_class: ClassVar[DeviceClass] = DeviceClass.FLOWMETER

    def __init__(
        self, device_id: str, bus: StreamBus, options: Flv1000Options | None = None
    ) -> None:
        self.device_id = device_id
        self.options = options or Flv1000Options()
        self._bus = bus
        self.checksum_mismatches = 0

    async def read_all(self) -> FlowReading:
        """Diluted O2, pressure, temperature, actual and standard flow."""
        values = (await self._ask(Command.ALL_ACTUAL, Measurement)).named()
        standard = (await self._ask(Command.FLOW_STANDARD, Measurement)).values[0]
        return FlowReading(
            o2_diluted_pct_vol=values["o2_diluted_pct_vol"],
            pressure_kpa=values["pressure_kpa"],
            temperature_c=values["temperature_c"],
            flow_actual_l_s=values["flow_actual_l_s"],
            flow_standard_l_s=standard,
        )

    async def poll(self) -> FlowReading:
        """Snapshot for the supervisor."""
        return await self.read_all()

    async def read_status(self) -> FlowStatus:
        """Status flags (0x88)."""
        status = await self._ask(Command.STATUS, Status)
        bits = status.bits
        return FlowStatus(
            flow_out_of_range=StatusBits.FLOW_OUT_OF_RANGE in bits,
            pressure_abnormal=StatusBits.PRESSURE_ABNORMAL in bits,
            temperature_abnormal=StatusBits.TEMPERATURE_ABNORMAL in bits,
            o2_warming=StatusBits.O2_WARMING in bits,
            status_hex=bytes(status.raw).hex(" "),
        )

    async def read_version(self) -> str:
        """Firmware version text (0x89)."""
        return (await self._ask(Command.VERSION, Version)).text

    async def calibrate(self, command: Command, reference: float | None = None) -> None:
        """A calibration (0xA0-0xA6), with its reference value where it takes one."""
        await self._ask(command, Ack, reference)

    async def calibrate_o2_span(self, o2_pct_vol: float = 20.9) -> None:
        """O2 span on ambient air (0xA1), 20.9 %vol by default."""
        await self.calibrate(Command.CAL_O2_SPAN, o2_pct_vol)

    async def _ask(self, command: Command, expect: type[R], reference: float | None = None) -> R:
        decoder = ReplyDecoder()

        def is_final(message: Reply) -> bool:
            return _answers(message, command) and decoder.buffered == 0

        request = encode_request(command, reference)
        reply = (
            await self._bus.transact(
                self.device_id, Transaction(request, decoder, is_final=is_final)
            )
        )[-1]
        if isinstance(reply, Nak):
            raise DeviceRefused(f"{self.device_id}: {command.name} refused (NAK)")
        if not isinstance(reply, expect):
            raise UnexpectedResponse(f"{self.device_id}: {command.name} answered {reply!r}")
        if not reply.checksum_ok:
            self.checksum_mismatches += 1
            log.warning(
                "%s: %s reply checksum breaks the stated rule", self.device_id, command.name
            )
            if self.options.strict_checksum:
                raise ChecksumError(f"{self.device_id}: {command.name} reply checksum mismatch")
        return reply


def _factory(ctx: DriverContext) -> Flv1000Flowmeter:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the flv1000 protocol needs a stream bus")
    options = Flv1000Options.model_validate(ctx.options.model_dump())
    return Flv1000Flowmeter(ctx.device_id, ctx.bus, options)


SPEC = DriverSpec(
    protocol="flv1000",
    device_class=DeviceClass.FLOWMETER,
    bus_kind="stream",
    summary="FuLi FLV-1000 VMAS flowmeter: diluted O2, flow, pressure, temperature, status",
    factory=_factory,
    options=Flv1000Options,
    default_line=LineSettings(baudrate=9600, bytesize=8, parity="N", stopbits=1),
)
