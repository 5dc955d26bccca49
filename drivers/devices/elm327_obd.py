"""Driver for an ELM327-compatible OBD-II reader on the lane's diagnostic cable.

Codec and choices: ``drivers.protocols.elm327``, docs/protocols/elm327.md. Why not the
``obd`` package (python-OBD): it opens and owns the serial port itself, with blocking
pyserial calls (and a thread for its async mode), so it cannot run as a job of this
project's one owner per bus (``drivers.bus``), over a serial device server, or under the
bus's timeouts, purges and evidence capture. The AT command set and the few J1979 PIDs
an inspection needs are small: the codec is written here, sans-I/O, and tested.

``connect`` resets and sets up the adapter (``init_commands``: ATZ, ATE0, ATL0, ATS0,
ATH1, ATSP<protocol>), asks ``0100`` (the adapter searches the vehicle's protocol; the
wait is ``search_timeout_s``), reads ``ATDPN`` and keeps the supported-PID bitmap. Every
OBD request is then one command and the lines up to the ``>`` prompt, parsed per
protocol and reassembled per ECU. ``NO DATA`` means "not supported" (None / empty);
``?`` raises ``DeviceRefused``; ``UNABLE TO CONNECT`` and bus errors raise
``DeviceFault`` (ignition off, cable loose).
"""

from __future__ import annotations

import re
from typing import ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DeviceClass, DriverContext, DriverSpec
from drivers.devices.dyno_api import (
    COMPRESSION_MONITORS,
    CONTINUOUS_MONITORS,
    SPARK_MONITORS,
    MilStatus,
    ObdAdapterState,
    ObdLive,
    Readiness,
)
from drivers.errors import DeviceFault, DeviceRefused, FrameError, UnexpectedResponse
from drivers.protocols.elm327 import (
    PIDS,
    PROTOCOL_NAMES,
    ElmReply,
    PromptDecoder,
    assemble,
    decode_calibration_ids,
    decode_cvns,
    decode_dtcs,
    decode_pid,
    decode_vin,
    encode_command,
    mode01_payload,
    parse_frames,
    supported_pids,
)
from drivers.transport import LineSettings

_VOLTS: Final = re.compile(r"(\d+(?:\.\d+)?)\s*V", re.IGNORECASE)
#: PIDs read by ``read_live``, by ObdLive field
LIVE_PIDS: Final = {spec.name: pid for pid, spec in PIDS.items()}
NOT_CONNECTED: Final = ("UNABLE TO CONNECT", "CAN ERROR", "BUS ERROR", "BUS BUSY", "STOPPED")


class Elm327Options(BaseModel):
    """Installation settings of an ELM327 reader."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    protocol: str = Field(
        default="0", pattern=r"^[0-9A-C]$", description="ATSP digit: 0 automatic search"
    )
    init_commands: tuple[str, ...] = Field(
        default=("ATZ", "ATE0", "ATL0", "ATS0", "ATH1"),
        description="sent in order by connect(), before ATSP",
    )
    search_timeout_s: float = Field(default=10.0, gt=0, description="wait for the first answer")
    reset_timeout_s: float = Field(default=3.0, gt=0, description="wait for ATZ")


class Elm327Obd:
    """An ELM327 OBD reader on a stream bus (serial, Bluetooth SPP or a Wi-Fi adapter's TCP)."""

    device_class: ClassVar[DeviceClass] = DeviceClass.OBD_READER

    def __init__(
        self, device_id: str, bus: StreamBus, options: Elm327Options | None = None
    ) -> None:
        self.device_id = device_id
        self.options = options or Elm327Options()
        self._bus = bus
        self.protocol_number: str | None = None
        self.adapter_version: str | None = None
        self.supported: set[int] = set()

    @property
    def protocol(self) -> str | None:
        """The vehicle protocol found by ``connect``."""
        number = self.protocol_number
        return None if number is None else PROTOCOL_NAMES.get(number, f"protocol {number}")

    @property
    def _headers(self) -> bool:
        return "ATH1" in (c.replace(" ", "").upper() for c in self.options.init_commands)

    # --- adapter ----------------------------------------------------------------------

    async def poll(self) -> ObdAdapterState:
        """Adapter (vehicle battery) voltage, ``ATRV``, and the protocol."""
        reply = await self._command("ATRV")
        match = _VOLTS.search(" ".join(reply.lines))
        return ObdAdapterState(float(match.group(1)) if match else None, self.protocol)

    async def connect(self) -> str:
        """Reset and set up the adapter, find the vehicle's protocol; returns its name."""
        for command in self.options.init_commands:
            timeout = self.options.reset_timeout_s if command.upper() == "ATZ" else None
            reply = await self._command(command, timeout)
            if command.upper() in ("ATZ", "ATI") and reply.lines:
                self.adapter_version = reply.lines[-1]
        await self._command(f"ATSP{self.options.protocol}")
        self.protocol_number = None
        reply = await self._command("0100", self.options.search_timeout_s)
        if reply.status is not None:
            self._messages(reply, "0100")  # raises for every status but NO DATA
        number = (await self._command("ATDPN")).lines[-1].upper().lstrip("A")
        if number not in PROTOCOL_NAMES or number == "0":
            raise UnexpectedResponse(f"{self.device_id}: ATDPN answered {number!r}")
        self.protocol_number = number
        self.supported = set()
        for message in self._messages(reply, "0100").values():
            self.supported |= supported_pids(message, 0x00)
        return self.protocol or number

    # --- J1979 ------------------------------------------------------------------------

    async def read_vin(self) -> str | None:
        """VIN (09 02), None when the vehicle does not answer it."""
        messages = await self._obd("0902")
        for message in messages.values():
            vin = decode_vin(message, self._protocol())
            if vin:
                return vin
        return None

    async def read_mil(self) -> MilStatus:
        """MIL state and DTC count (01 01); several ECUs: lamp on if any, counts added."""
        status = await self._monitor_status()
        mil = any(data[0] & 0x80 for data in status)
        count = sum(data[0] & 0x7F for data in status)
        return MilStatus(mil, count, any(data[1] & 0x08 for data in status))

    async def read_readiness(self) -> dict[str, Readiness]:
        """Every monitor (01 01): complete, incomplete or not supported (ECUs combined)."""
        result: dict[str, Readiness] = {}
        for data in await self._monitor_status():
            _b, c, d = data[1], data[2], data[3]
            names = COMPRESSION_MONITORS if _b & 0x08 else SPARK_MONITORS
            states = [_state(bool(_b & 1 << i), bool(_b & 1 << (i + 4))) for i in range(3)]
            entries = list(zip(CONTINUOUS_MONITORS, states, strict=True))
            entries += [
                (n, _state(bool(c & 1 << i), bool(d & 1 << i))) for i, n in enumerate(names)
            ]
            for name, state in entries:
                if not name.startswith("reserved"):
                    result[name] = _combine(result.get(name), state)
        return result

    async def read_dtcs(self) -> list[str]:
        """Stored emission-related DTCs (03), every ECU's, without repeats."""
        found: list[str] = []
        for message in (await self._obd("03")).values():
            found += [dtc for dtc in decode_dtcs(message, self._protocol()) if dtc not in found]
        return found

    async def read_calibration_ids(self) -> list[str]:
        """Calibration ids (09 04) of every ECU."""
        messages = await self._obd("0904")
        return [
            cid for m in messages.values() for cid in decode_calibration_ids(m, self._protocol())
        ]

    async def read_cvns(self) -> list[str]:
        """Calibration verification numbers (09 06) of every ECU."""
        messages = await self._obd("0906")
        return [cvn for m in messages.values() for cvn in decode_cvns(m, self._protocol())]

    async def read_live(self) -> ObdLive:
        """Mode 01 live values the vehicle supports (others None)."""
        values: dict[str, float | None] = {}
        for name, pid in LIVE_PIDS.items():
            values[name] = await self.read_pid(pid) if pid in self.supported else None
        return ObdLive(**values)

    async def read_pid(self, pid: int) -> float | None:
        """One Mode 01 PID of ``PIDS``; None on NO DATA."""
        messages = await self._obd(f"01{pid:02X}")
        for message in messages.values():
            return decode_pid(message, pid)
        return None

    # --- exchange ---------------------------------------------------------------------

    async def _monitor_status(self) -> list[bytes]:
        messages = await self._obd("0101")
        status = [mode01_payload(m, 0x01) for m in messages.values()]
        if not status or any(len(data) < 4 for data in status):
            raise UnexpectedResponse(f"{self.device_id}: 01 01 gave no monitor status")
        return status

    def _protocol(self) -> str:
        if self.protocol_number is None:
            raise UnexpectedResponse(f"{self.device_id}: not connected (call connect first)")
        return self.protocol_number

    async def _obd(self, command: str) -> dict[str | None, bytes]:
        self._protocol()
        return self._messages(await self._command(command), command)

    def _messages(self, reply: ElmReply, command: str) -> dict[str | None, bytes]:
        status = reply.status
        if status == "NO DATA":
            return {}
        if status == "?":
            raise DeviceRefused(f"{self.device_id}: {command} not understood (?)")
        if status is not None:
            raise DeviceFault(f"{self.device_id}: {command}: {status} (ignition on? cable?)")
        protocol = self._protocol()
        try:
            return assemble(parse_frames(reply.data_lines, protocol, self._headers), protocol)
        except FrameError as exc:
            raise UnexpectedResponse(f"{self.device_id}: {command}: {exc}") from exc

    async def _command(self, command: str, timeout: float | None = None) -> ElmReply:
        tx = Transaction(encode_command(command), PromptDecoder(), silence_timeout=timeout)
        reply = (await self._bus.transact(self.device_id, tx))[-1].without_echo(command)
        if command.upper().startswith("AT") and reply.status == "?":
            raise DeviceRefused(f"{self.device_id}: adapter refused {command} (?)")
        return reply


def _state(supported: bool, incomplete: bool) -> Readiness:
    if not supported:
        return "not_supported"
    return "incomplete" if incomplete else "complete"


def _combine(old: Readiness | None, new: Readiness) -> Readiness:
    """Across ECUs: incomplete anywhere wins, then complete, then not supported."""
    order: tuple[Readiness, ...] = ("incomplete", "complete", "not_supported")
    if old is None:
        return new
    return min(old, new, key=order.index)


def _factory(ctx: DriverContext) -> Elm327Obd:
    if not isinstance(ctx.bus, StreamBus):
        raise TypeError(f"{ctx.device_id}: the elm327 protocol needs a stream bus")
    return Elm327Obd(ctx.device_id, ctx.bus, Elm327Options.model_validate(ctx.options.model_dump()))


SPEC = DriverSpec(
    protocol="elm327",
    device_class=DeviceClass.OBD_READER,
    bus_kind="stream",
    summary="ELM327-compatible OBD-II reader: VIN, MIL, DTCs, readiness, CALID/CVN, live PIDs",
    factory=_factory,
    options=Elm327Options,
    default_line=LineSettings(baudrate=38400, bytesize=8, parity="N", stopbits=1),
)
