"""FuLi FLV-1000 VMAS flowmeter (福立), RS-232 appendix of its manual, sans-I/O codec.

Theory of operation (protocols.md §3.4, source S3; docs/protocols/flv1000.md)
-----------------------------------------------------------------------------
9600 8N1, point to point, the host asks::

    request:   CMD · LB · [data] · CS
    response:  0x06 · CMD · LB · [data] · CS        NAK: a bare 0x15

LB is the whole frame's length, CS included, and CS is the two's complement of the
8-bit sum of every byte before it (``neg_sum8``): the FuLi rule, stated for the FLB-100
(whose examples all verify) and the rule this manual states. The manual's own example
checksums do not follow it: we **follow the rule** when encoding, and when decoding we
**verify, log and do not reject** (every message carries ``checksum_ok``; drivers count
and log mismatches), until the rule is checked on hardware. Numbers are big-endian
(temperature signed), scaled as the table says (``MEASUREMENTS``):

- 0x81 diluted O2 ÷100 %vol, 0x82 pressure ÷10 kPa, 0x83 temperature ÷10 °C, 0x84 actual
  flow ÷10 L/s, 0x85 standard flow ÷10 L/s;
- 0x86 O2, pressure, temperature, actual flow; 0x87 the same with standard flow (the
  manual says "all four values" for both: we read 0x87's fourth as standard flow);
- 0x88 three status bytes: byte 1 bit 0 flow out of range (80-200 L/s), bit 2 pressure
  abnormal, bit 3 temperature abnormal, bit 4 O2 sensor warming (bytes 2-3 kept raw);
- 0x89 version, ASCII (our choice: 1-16 characters);
- 0xA0-0xA6 calibrations (``Calibration``; the data each takes is our choice, as the
  manual names them only), answered by an acknowledgement frame ``06 CMD 04 CS``.

Resync (host side): bytes before 0x06/0x15 go as one ``FrameError``; a 0x06 whose CMD is
not in the table or whose LB is not the table's length for it is dropped alone; a framed
reply is taken at its LB whatever its CS (verify-log-don't-reject), so a checksum never
causes a resync. A 0x15 alone, or one not starting a plausible frame, is the NAK.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import neg_sum8
from drivers.errors import LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

ACK: Final = 0x06
NAK: Final = 0x15
REQUEST_MIN: Final = 3
VERSION_MAX: Final = 16


class Command(enum.IntEnum):
    """Command bytes (protocols.md §3.4)."""

    O2 = 0x81
    PRESSURE = 0x82
    TEMPERATURE = 0x83
    FLOW_ACTUAL = 0x84
    FLOW_STANDARD = 0x85
    ALL_ACTUAL = 0x86
    ALL_STANDARD = 0x87
    STATUS = 0x88
    VERSION = 0x89
    CAL_O2_ZERO = 0xA0
    CAL_O2_SPAN = 0xA1
    CAL_PRESSURE = 0xA2
    CAL_TEMPERATURE = 0xA3
    CAL_FLOW_ZERO = 0xA4
    CAL_FLOW_SPAN = 0xA5
    CAL_FACTORY = 0xA6


@dataclass(frozen=True, slots=True)
class Quantity:
    """One number on the wire: its name, divisor and signedness."""

    name: str
    divisor: float
    signed: bool = False

    def encode(self, value: float) -> bytes:
        """Two bytes big-endian; ``LocalProtocolError`` when out of range."""
        raw = round(value * self.divisor)
        low, high = (-0x8000, 0x7FFF) if self.signed else (0, 0xFFFF)
        if not low <= raw <= high:
            raise LocalProtocolError(f"{self.name} {value} out of the field's range")
        return struct.pack(">h" if self.signed else ">H", raw)

    def decode(self, raw: bytes) -> float:
        """The value of two bytes."""
        number: int = struct.unpack(">h" if self.signed else ">H", raw)[0]
        return round(number / self.divisor, 2)


O2: Final = Quantity("o2_diluted_pct_vol", 100)
PRESSURE: Final = Quantity("pressure_kpa", 10)
TEMPERATURE: Final = Quantity("temperature_c", 10, signed=True)
FLOW_ACTUAL: Final = Quantity("flow_actual_l_s", 10)
FLOW_STANDARD: Final = Quantity("flow_standard_l_s", 10)

#: the measuring commands and the quantities of their reply, in order
MEASUREMENTS: Final[dict[Command, tuple[Quantity, ...]]] = {
    Command.O2: (O2,),
    Command.PRESSURE: (PRESSURE,),
    Command.TEMPERATURE: (TEMPERATURE,),
    Command.FLOW_ACTUAL: (FLOW_ACTUAL,),
    Command.FLOW_STANDARD: (FLOW_STANDARD,),
    Command.ALL_ACTUAL: (O2, PRESSURE, TEMPERATURE, FLOW_ACTUAL),
    Command.ALL_STANDARD: (O2, PRESSURE, TEMPERATURE, FLOW_STANDARD),
}
#: calibration commands and the reference value they carry (None: no data); our choice
CALIBRATIONS: Final[dict[Command, Quantity | None]] = {
    Command.CAL_O2_ZERO: None,
    Command.CAL_O2_SPAN: O2,
    Command.CAL_PRESSURE: PRESSURE,
    Command.CAL_TEMPERATURE: TEMPERATURE,
    Command.CAL_FLOW_ZERO: None,
    Command.CAL_FLOW_SPAN: FLOW_STANDARD,
    Command.CAL_FACTORY: None,
}
STATUS_LEN: Final = 3


class StatusBits(enum.IntFlag):
    """Status byte 1 of 0x88."""

    FLOW_OUT_OF_RANGE = 0x01
    PRESSURE_ABNORMAL = 0x04
    TEMPERATURE_ABNORMAL = 0x08
    O2_WARMING = 0x10


def reply_lengths(command: int) -> frozenset[int]:
    """The LB values a reply to ``command`` may have (empty: not a command)."""
    if command in MEASUREMENTS:
        return frozenset({4 + 2 * len(MEASUREMENTS[Command(command)])})
    if command == Command.STATUS:
        return frozenset({4 + STATUS_LEN})
    if command == Command.VERSION:
        return frozenset(range(5, 5 + VERSION_MAX))
    if command in CALIBRATIONS:
        return frozenset({4})
    return frozenset()


def request_lengths(command: int) -> frozenset[int]:
    """The LB values a request for ``command`` may have."""
    if command in CALIBRATIONS:
        return frozenset({REQUEST_MIN if CALIBRATIONS[Command(command)] is None else 5})
    return frozenset({REQUEST_MIN}) if command in set(Command) else frozenset()


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Measurement:
    """Reply to 0x81-0x87: the values of ``MEASUREMENTS[command]``, in order."""

    command: Command
    values: tuple[float, ...]
    checksum_ok: bool = True

    def named(self) -> dict[str, float]:
        """The values by quantity name."""
        quantities = MEASUREMENTS[self.command]
        return {q.name: v for q, v in zip(quantities, self.values, strict=True)}


@dataclass(frozen=True, slots=True)
class Status:
    """Reply to 0x88: the three status bytes."""

    raw: tuple[int, int, int]
    checksum_ok: bool = True

    @property
    def bits(self) -> StatusBits:
        """Flags of byte 1."""
        return StatusBits(self.raw[0] & sum(StatusBits))


@dataclass(frozen=True, slots=True)
class Version:
    """Reply to 0x89."""

    text: str
    checksum_ok: bool = True


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledgement of a calibration command."""

    command: Command
    checksum_ok: bool = True


@dataclass(frozen=True, slots=True)
class Nak:
    """A bare 0x15: command refused."""


Reply = Measurement | Status | Version | Ack | Nak


@dataclass(frozen=True, slots=True)
class Request:
    """Host -> flowmeter (device side)."""

    command: Command
    data: bytes = b""
    checksum_ok: bool = True

    @property
    def reference(self) -> float | None:
        """The calibration reference value carried, if any."""
        quantity = CALIBRATIONS.get(self.command)
        return quantity.decode(self.data) if quantity is not None and self.data else None


# --- encoding ---------------------------------------------------------------------------


def _frame(head: bytes, data: bytes) -> bytes:
    length = len(head) + 2 + len(data)
    body = head + bytes((length,)) + data
    return body + bytes((neg_sum8(body),))


def encode_request(command: Command, reference: float | None = None) -> bytes:
    """A request, e.g. ``encode_request(Command.ALL_ACTUAL)`` = ``86 03 77``."""
    quantity = CALIBRATIONS.get(command)
    if quantity is None:
        if reference is not None:
            raise LocalProtocolError(f"{command.name} takes no value")
        return _frame(bytes((command,)), b"")
    if reference is None:
        raise LocalProtocolError(f"{command.name} needs a reference value")
    return _frame(bytes((command,)), quantity.encode(reference))


def encode_reply(reply: Reply) -> bytes:
    """The bytes of a reply (device side, tests); always with the rule's checksum."""
    if isinstance(reply, Nak):
        return bytes((NAK,))
    if isinstance(reply, Measurement):
        quantities = MEASUREMENTS[reply.command]
        data = b"".join(q.encode(v) for q, v in zip(quantities, reply.values, strict=True))
        command = reply.command
    elif isinstance(reply, Status):
        command, data = Command.STATUS, bytes(reply.raw)
    elif isinstance(reply, Version):
        command, data = Command.VERSION, reply.text.encode("ascii")
        if not 1 <= len(data) <= VERSION_MAX:
            raise LocalProtocolError(f"version {reply.text!r} does not fit")
    else:
        command, data = reply.command, b""
    head = bytes((ACK, command))
    return _frame(head, data)


# --- decoding ---------------------------------------------------------------------------


def parse_reply(frame: bytes) -> Reply:
    """The reply of a framed response (its header already checked against the table)."""
    command, data = Command(frame[1]), frame[3:-1]
    ok = neg_sum8(frame[:-1]) == frame[-1]
    if command in MEASUREMENTS:
        quantities = MEASUREMENTS[command]
        values = tuple(q.decode(data[2 * i : 2 * i + 2]) for i, q in enumerate(quantities))
        return Measurement(command, values, ok)
    if command is Command.STATUS:
        return Status((data[0], data[1], data[2]), ok)
    if command is Command.VERSION:
        return Version(data.decode("ascii", "replace"), ok)
    return Ack(command, ok)


class ReplyDecoder(FrameDecoder[Reply]):
    """Host side: flowmeter replies (see the resync rule above)."""

    def _plausible(self) -> bool:
        buf = self._buf
        return len(buf) >= 3 and buf[0] == ACK and buf[2] in reply_lengths(buf[1])

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] == NAK:
            del buf[0]
            return Nak()
        if buf[0] != ACK:
            start = next((i for i, b in enumerate(buf) if b in (ACK, NAK)), len(buf))
            raise self._drop(start, "bytes before a reply")
        if len(buf) < 3:
            return NEED_DATA
        if not self._plausible():
            raise self._drop(1, "0x06 without a known command and length")
        length = buf[2]
        if len(buf) < length:
            return NEED_DATA
        frame = bytes(buf[:length])
        del buf[:length]
        return parse_reply(frame)


class RequestDecoder(FrameDecoder[Request]):
    """Device side: host requests (checksum verified and reported, not enforced)."""

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if not request_lengths(buf[0]):
            raise self._drop(1, f"unknown command 0x{buf[0]:02X}")
        if len(buf) < 2:
            return NEED_DATA
        if buf[1] not in request_lengths(buf[0]):
            raise self._drop(1, "request length does not fit its command")
        length = buf[1]
        if len(buf) < length:
            return NEED_DATA
        frame = bytes(buf[:length])
        del buf[:length]
        ok = neg_sum8(frame[:-1]) == frame[-1]
        return Request(Command(frame[0]), frame[2:-1], ok)
