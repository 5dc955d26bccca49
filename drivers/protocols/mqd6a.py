"""Mingquan MQD-6A headlamp tester codec: framed commands, events and lamp data.

Theory of operation (protocols.md §4.1, sources S4 and S6; docs/protocols/mqd6a.md)
-----------------------------------------------------------------------------------
PC -> tester, 6 bytes: ``02 · 01 (address) · 32 ('2', device) · class · sub-command · CS``.
Tester -> PC event, 5 bytes: ``02 · 32 · class · code · CS``. CS is the two's complement
of the 8-bit sum of every preceding byte including STX (``neg_sum8``): measure in place
is ``02 01 32 54 51 26``, the event "main high beam done" ``02 32 54 4F 29``.

Lamp records (18 ASCII bytes per beam, all '0' = not measured) are in
``drivers.protocols.mqd6a_records`` (``LampRecord``, ``Record``, ``Slot`` re-exported).

Data replies carry no checksum in S4, which reads "the 112 bytes" after G 0x4F. We frame
them by length after the request (``ReplyDecoder(data=...)``) and fill in the bytes S4
skips from S6, which documents the tester's per-side packet as
``02 · 'L'|'R' · high record · low record · CS`` (39 bytes, CS = neg_sum8 of the 38 before):

- the answer to G 0x4C / 0x4D (left / right main lamp) is that 39-byte packet;
- the 112-byte dump answering G 0x4F is ``02 'L'`` + left main high, left aux high, left
  low + ``'R'`` + right main high, right aux high, right low + CS, which puts the right
  block at offset 57 behind one separator byte, as protocols.md describes.

``strict`` decoders (the default) check those marker and CS bytes; with
``strict=False`` a data reply is any ``length`` bytes that do not open like an event or
a NAK and whose six records parse, for a tester whose unknown bytes differ.

A bare NAK byte (0x15) is decoded as ``Nak``: not in S4, it is the family convention
(protocols.md §0) and what our simulator sends for a request it cannot accept. The status
reply is not documented either: we answer T 0x6F with an event-shaped frame whose code is
a ``STATUS_CODES`` entry (0x30 ready at home, 0x31 busy, 0x32 ready away from home).

Resync rule: bytes before a start byte (STX; NAK on the reply side) are one
``FrameError``. An event or request whose checksum fails (``ChecksumError``) or whose
header is unknown is dropped up to the next STX. A data reply is dropped the same way
when a start byte shows up where its ASCII records are (it was cut), when its markers or
CS fail, or when a record does not parse; so a truncated dump never swallows the next
event.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

from drivers.checksums import neg_sum8
from drivers.errors import ChecksumError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData
from drivers.protocols.mqd6a_records import DUMP_OFFSETS, RECORD_LEN, encode_record, parse_record
from drivers.protocols.mqd6a_records import LampRecord as LampRecord  # re-exported: in messages
from drivers.protocols.mqd6a_records import Record as Record
from drivers.protocols.mqd6a_records import Slot as Slot

STX: Final = 0x02
NAK_BYTE: Final = 0x15
ADDRESS: Final = 0x01
DEVICE: Final = 0x32  # '2'
REQUEST_LEN: Final = 6
EVENT_LEN: Final = 5
DUMP_LEN: Final = 112
MAIN_LAMP_LEN: Final = 39
LEFT: Final = 0x4C  # 'L'
RIGHT: Final = 0x52  # 'R'
RIGHT_MARK_AT: Final = 56


class Cls(enum.IntEnum):
    """Frame classes."""

    MEASURE = 0x54  # 'T'
    GET = 0x47  # 'G'
    MOTION = 0x4D  # 'M'
    SETTING = 0x53  # 'S'
    ERROR = 0x45  # 'E' (events only)


class Command(enum.Enum):
    """PC -> tester commands: (class, sub-command), protocols.md §4.1 / S4."""

    MEASURE_IN_PLACE = (Cls.MEASURE, 0x51)
    MEASURE_FULL_TRAVEL = (Cls.MEASURE, 0x52)
    MEASURE_ONE_LAMP = (Cls.MEASURE, 0x5B)
    MEASURE_LEFT = (Cls.MEASURE, 0x07)
    MEASURE_RIGHT = (Cls.MEASURE, 0x40)
    RIGHT_ONLY = (Cls.MEASURE, 0x59)
    LEFT_ONLY = (Cls.MEASURE, 0x5A)
    LEAVE_ADJUST = (Cls.MEASURE, 0x53)
    LEAVE_MEASURING = (Cls.MEASURE, 0x54)
    GET_STATUS = (Cls.MEASURE, 0x6F)
    GET_LEFT_AUX = (Cls.GET, 0x4A)
    GET_RIGHT_AUX = (Cls.GET, 0x4B)
    GET_LEFT_MAIN = (Cls.GET, 0x4C)
    GET_RIGHT_MAIN = (Cls.GET, 0x4D)
    GET_CURRENT = (Cls.GET, 0x4E)
    GET_ALL = (Cls.GET, 0x4F)
    HOME = (Cls.MOTION, 0x47)
    STOP = (Cls.MOTION, 0x3E)
    FOUR_LAMPS = (Cls.SETTING, 0x31)
    TWO_LAMPS = (Cls.SETTING, 0x32)
    HIGH_ONLY = (Cls.SETTING, 0x33)
    LOW_ONLY = (Cls.SETTING, 0x34)
    HIGH_AND_LOW = (Cls.SETTING, 0x35)
    HIGH_FIRST = (Cls.SETTING, 0x71)
    LOW_FIRST = (Cls.SETTING, 0x72)
    ADJUST_HIGH = (Cls.SETTING, 0x60)
    NO_ADJUST_HIGH = (Cls.SETTING, 0x61)
    ADJUST_LOW = (Cls.SETTING, 0x62)
    NO_ADJUST_LOW = (Cls.SETTING, 0x63)


COMMANDS_BY_CODE: Final[dict[tuple[int, int], Command]] = {c.value: c for c in Command}


class EventKind(enum.Enum):
    """Tester -> PC events: (class, code)."""

    MAIN_HIGH_DONE = (Cls.MEASURE, 0x4F)
    AUX_HIGH_DONE = (Cls.MEASURE, 0x4E)
    LOW_DONE = (Cls.MEASURE, 0x4D)
    HOMED = (Cls.MEASURE, 0x40)
    NO_LAMP = (Cls.ERROR, 0x13)
    MEASURE_ERROR = (Cls.ERROR, 0x14)


EVENTS_BY_CODE: Final[dict[tuple[int, int], EventKind]] = {e.value: e for e in EventKind}
#: why a measurement stopped, in the words a technician needs
ERROR_REASONS: Final[dict[EventKind, str]] = {
    EventKind.NO_LAMP: "no lamp found",
    EventKind.MEASURE_ERROR: "measurement error",
}
#: our status reply codes (class 'T'), see the module docstring
STATUS_CODES: Final[dict[int, str]] = {0x30: "ready_home", 0x31: "busy", 0x32: "ready_away"}


#: the event that says a slot's beam was measured
SLOT_EVENTS: Final[dict[str, EventKind]] = {
    "main_high": EventKind.MAIN_HIGH_DONE,
    "aux_high": EventKind.AUX_HIGH_DONE,
    "low": EventKind.LOW_DONE,
}


# --- messages -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    """PC -> tester; ``command`` is None for a (class, sub) this codec does not know."""

    cls: int
    sub: int
    address: int = ADDRESS

    @property
    def command(self) -> Command | None:
        """The known command, if any."""
        return COMMANDS_BY_CODE.get((self.cls, self.sub))


@dataclass(frozen=True, slots=True)
class Event:
    """Tester -> PC 5-byte frame: an event, or our status reply (class 'T', 0x30-0x32)."""

    cls: int
    code: int

    @property
    def kind(self) -> EventKind | None:
        """The documented event, if it is one."""
        return EVENTS_BY_CODE.get((self.cls, self.code))

    @property
    def status(self) -> str | None:
        """The status this frame reports, if it is a status reply."""
        return STATUS_CODES.get(self.code) if self.cls == Cls.MEASURE else None


@dataclass(frozen=True, slots=True)
class Nak:
    """A bare 0x15 (family convention, see the module docstring)."""


@dataclass(frozen=True, slots=True)
class DataDump:
    """The 112-byte answer to G 0x4F: six records in ``Slot`` order."""

    records: tuple[Record, Record, Record, Record, Record, Record]

    def record(self, slot: Slot) -> Record:
        """The record of ``slot``."""
        return self.records[slot.value]


@dataclass(frozen=True, slots=True)
class MainLampData:
    """The 39-byte answer to G 0x4C / 0x4D: one side's main lamp, high and low beam."""

    side: Literal["left", "right"]
    high: Record
    low: Record


Reply = Event | Nak | DataDump | MainLampData
DataKind = Literal["none", "dump", "main"]
M = TypeVar("M")


# --- encoders -------------------------------------------------------------------------
def _with_cs(body: bytes) -> bytes:
    return body + bytes((neg_sum8(body),))


def encode_request(command: Command | tuple[int, int]) -> bytes:
    """The 6-byte request frame (PC side)."""
    cls, sub = command.value if isinstance(command, Command) else command
    if not (0 <= cls <= 0xFF and 0 <= sub <= 0xFF):
        raise LocalProtocolError(f"not a class/sub-command pair: {command!r}")
    return _with_cs(bytes((STX, ADDRESS, DEVICE, cls, sub)))


def encode_event(event: Event | EventKind) -> bytes:
    """The 5-byte event frame (tester side)."""
    cls, code = event.value if isinstance(event, EventKind) else (event.cls, event.code)
    return _with_cs(bytes((STX, DEVICE, cls, code)))


def encode_dump(dump: DataDump) -> bytes:
    """The 112-byte answer to G 0x4F (tester side)."""
    left = b"".join(encode_record(record) for record in dump.records[:3])
    right = b"".join(encode_record(record) for record in dump.records[3:])
    return _with_cs(bytes((STX, LEFT)) + left + bytes((RIGHT,)) + right)


def encode_main_lamp(data: MainLampData) -> bytes:
    """The 39-byte answer to G 0x4C / 0x4D (tester side)."""
    mark = LEFT if data.side == "left" else RIGHT
    return _with_cs(bytes((STX, mark)) + encode_record(data.high) + encode_record(data.low))


# --- decoders -------------------------------------------------------------------------
class _Mqd6aDecoder(FrameDecoder[M]):
    start_bytes: bytes = bytes((STX,))

    def _next_start(self, offset: int) -> int:
        found = [i for s in self.start_bytes if (i := self._buf.find(s, offset)) >= 0]
        return min(found, default=len(self._buf))

    def _checked(self, length: int) -> bytes | NeedData:
        """The next ``length``-byte neg_sum8 frame at the buffer start, or NEED_DATA."""
        if len(self._buf) < length:
            return NEED_DATA
        frame = bytes(self._buf[:length])
        if neg_sum8(frame[:-1]) != frame[-1]:
            raise self._drop(self._next_start(1), "checksum mismatch", ChecksumError)
        del self._buf[:length]
        return frame


class RequestDecoder(_Mqd6aDecoder[Request]):
    """Tester side (simulators): 6-byte requests."""

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] != STX:
            raise self._drop(self._next_start(0), "no start byte")
        if len(buf) >= 3 and buf[2] != DEVICE:
            raise self._drop(self._next_start(1), f"not a headlamp request (device {buf[2]:#x})")
        frame = self._checked(REQUEST_LEN)
        if frame is NEED_DATA:
            return NEED_DATA
        return Request(frame[3], frame[4], frame[1])


class ReplyDecoder(_Mqd6aDecoder[Reply]):
    """PC side: events, NAK and, when asked for, one kind of data reply."""

    start_bytes = bytes((STX, NAK_BYTE))

    def __init__(self, data: DataKind = "none", *, strict: bool = True) -> None:
        super().__init__()
        self.data: DataKind = data
        self.strict = strict

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if self.data != "none" and not self.strict and not self._opens_frame():
            return self._data_reply()
        if buf[0] not in self.start_bytes:
            raise self._drop(self._next_start(0), "no start byte")
        if buf[0] == NAK_BYTE:
            del buf[0]
            return Nak()
        if len(buf) < 2:
            return NEED_DATA
        if buf[1] == DEVICE:
            frame = self._checked(EVENT_LEN)
            return NEED_DATA if frame is NEED_DATA else Event(frame[2], frame[3])
        if self.data != "none" and buf[1] in (LEFT, RIGHT):
            return self._data_reply()
        raise self._drop(self._next_start(1), f"unknown frame header {buf[1]:#04x}")

    def _opens_frame(self) -> bool:
        """Whether the buffer opens like an event or a NAK (lenient data mode)."""
        buf = self._buf
        return buf[0] == NAK_BYTE or (buf[0] == STX and (len(buf) < 2 or buf[1] == DEVICE))

    def _data_reply(self) -> DataDump | MainLampData | NeedData:
        length = DUMP_LEN if self.data == "dump" else MAIN_LAMP_LEN
        # records are ASCII: a start byte among them means the reply was cut short
        cut = self._next_start(2)
        if cut < min(len(self._buf), length - 1):
            raise self._drop(cut, "data reply cut short by a new start byte")
        if len(self._buf) < length:
            return NEED_DATA
        frame = bytes(self._buf[:length])
        if self.strict and neg_sum8(frame[:-1]) != frame[-1]:
            raise self._drop(self._next_start(1), "data checksum mismatch", ChecksumError)
        try:
            reply = self._parse_data(frame)
        except ValueError as exc:
            raise self._drop(self._next_start(1), f"bad data reply ({exc})") from None
        del self._buf[:length]
        return reply

    def _parse_data(self, frame: bytes) -> DataDump | MainLampData:
        if self.data == "main":
            if self.strict and frame[1] not in (LEFT, RIGHT):
                raise ValueError("no side mark")
            side: Literal["left", "right"] = "right" if frame[1] == RIGHT else "left"
            return MainLampData(side, parse_record(frame[2:20]), parse_record(frame[20:38]))
        if self.strict and (frame[1] != LEFT or frame[RIGHT_MARK_AT] != RIGHT):
            raise ValueError("no 'L' / 'R' marks")
        r = [parse_record(frame[at : at + RECORD_LEN]) for at in DUMP_OFFSETS]
        return DataDump((r[0], r[1], r[2], r[3], r[4], r[5]))
