"""Nanhua NHC-03 dyno controller, sans-I/O codec.

Theory of operation (protocols.md §3.2, source S1; docs/protocols/nhc03.md)
---------------------------------------------------------------------------
9600 8N1, the host asks. Every request is 7 bytes::

    0x08 · cmd (ASCII) · 0x07 · p1 · p2 · p3 · CS        CS = sum8 of the 6 bytes before

Commands (``COMMANDS``): ``C`` real-time data; ``D`` status word; ``E`` n read variable
n; ``F`` n hi lo write variable n; control words in the cmd position: '0' control off,
'1' constant speed, '2' constant force, '4' ASM, '5'/'6' lift up/down, '7' constant
power, 'J'/'K' motor on/off, 'Q' variable load. Variables (``Variable``): 200 speed
target ×100 km/h, 201/202 force target integer N / tenths, 228 power target ×100 kW,
229, 230 ASM speed ×100; for 'Q' (our choice: S1 names the control word, not its
variables) 240 road-load A ×10 N, 241 B ×100 N/(km/h), 242 C ×1000 N/(km/h)², 243
inertia kg.

Replies depend on the command only (no echo), so a decoder is built per command:

- ``C``: 9 bytes ``0x06 · power u16 ÷100 kW · force u16 N · force tenths u8 · speed
  u16 ÷100 km/h · CS`` (the 8 data bytes are S1's; the 0x06 header byte and CS = sum8 of
  all preceding bytes are our choice, the NHA-503 record rule of the same vendor);
- ``D`` and ``E``: 4 bytes ``0x06 · u16 · CS`` (same rule);
- ``F`` and control words: one byte, 0x06 done, 0x15 busy or refused (S1).

The status word's bits are not in S1: ours are ``StatusWord`` (lift up, motor on,
rollers turning) in the low byte and the control word in force (ASCII) in the high byte.
Resync: for records, a window whose header or CS fails loses one byte (``FrameError`` /
``ChecksumError``); for one-byte replies the last byte of a burst counts (stale bytes
before it are dropped). A lone 0x15 answers any command.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import sum8
from drivers.errors import ChecksumError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

START: Final = 0x08
LENGTH: Final = 0x07
REQUEST_LEN: Final = 7
ACK: Final = 0x06
NAK: Final = 0x15
REALTIME_LEN: Final = 9
WORD_LEN: Final = 4


class Cmd(enum.Enum):
    """The cmd byte: data requests and control words (protocols.md §3.2)."""

    REALTIME = "C"
    STATUS = "D"
    READ_VARIABLE = "E"
    WRITE_VARIABLE = "F"
    CONTROL_OFF = "0"
    CONSTANT_SPEED = "1"
    CONSTANT_FORCE = "2"
    ASM = "4"
    LIFT_UP = "5"
    LIFT_DOWN = "6"
    CONSTANT_POWER = "7"
    MOTOR_ON = "J"
    MOTOR_OFF = "K"
    VARIABLE_LOAD = "Q"

    @property
    def byte(self) -> int:
        """The byte on the wire."""
        return ord(self.value)


class Variable(enum.IntEnum):
    """Controller variables (protocols.md §3.2)."""

    SPEED_TARGET = 200  # km/h ×100
    FORCE_INTEGER = 201  # N
    FORCE_TENTHS = 202  # N/10
    POWER_TARGET = 228  # kW ×100
    ASM_229 = 229
    ASM_SPEED = 230  # km/h ×100
    # our choice (S1 names the 'Q' variable-load control word but not its variables):
    ROAD_A = 240  # N ×10
    ROAD_B = 241  # N/(km/h) ×100
    ROAD_C = 242  # N/(km/h)² ×1000
    ROAD_INERTIA = 243  # kg


class StatusWord(enum.IntFlag):
    """Low byte of the ``D`` status word (our choice, see the module docstring)."""

    LIFT_UP = 0x01
    MOTOR_ON = 0x02
    ROLLING = 0x04


class ReplyKind(enum.Enum):
    """Shape of the reply to a command."""

    REALTIME = "realtime"
    WORD = "word"
    ACK = "ack"


#: command -> reply shape (the command table)
COMMANDS: Final[dict[Cmd, ReplyKind]] = {cmd: ReplyKind.ACK for cmd in Cmd} | {
    Cmd.REALTIME: ReplyKind.REALTIME,
    Cmd.STATUS: ReplyKind.WORD,
    Cmd.READ_VARIABLE: ReplyKind.WORD,
}
_BY_BYTE: Final = {cmd.byte: cmd for cmd in Cmd}


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A decoded request (device side)."""

    cmd: Cmd
    p1: int = 0
    p2: int = 0
    p3: int = 0

    @property
    def variable(self) -> int:
        """Variable number of ``E``/``F``."""
        return self.p1

    @property
    def word(self) -> int:
        """Value written by ``F`` (p2 high, p3 low)."""
        return self.p2 << 8 | self.p3


@dataclass(frozen=True, slots=True)
class Realtime:
    """Reply to ``C``."""

    power_kw: float
    force_n: float
    speed_kmh: float


@dataclass(frozen=True, slots=True)
class Word:
    """Reply to ``D`` (status) or ``E`` (a variable)."""

    value: int


@dataclass(frozen=True, slots=True)
class Ack:
    """0x06: done."""


@dataclass(frozen=True, slots=True)
class Nak:
    """0x15: busy or refused."""


Reply = Realtime | Word | Ack | Nak


# --- encoding ---------------------------------------------------------------------------


def encode_request(cmd: Cmd, p1: int = 0, p2: int = 0, p3: int = 0) -> bytes:
    """A 7-byte request, e.g. ``encode_request(Cmd.REALTIME)`` = ``08 43 07 00 00 00 52``."""
    if not all(0 <= p <= 0xFF for p in (p1, p2, p3)):
        raise LocalProtocolError(f"NHC-03 parameters must be bytes, not {(p1, p2, p3)}")
    head = bytes((START, cmd.byte, LENGTH, p1, p2, p3))
    return head + bytes((sum8(head),))


def encode_read_variable(variable: int) -> bytes:
    """``E`` n: read variable ``n``."""
    return encode_request(Cmd.READ_VARIABLE, _variable(variable))


def encode_write_variable(variable: int, value: int) -> bytes:
    """``F`` n hi lo: write ``value`` (0..65535) to variable ``n``."""
    if not 0 <= value <= 0xFFFF:
        raise LocalProtocolError(f"variable {variable} value {value} does not fit 16 bits")
    return encode_request(Cmd.WRITE_VARIABLE, _variable(variable), value >> 8, value & 0xFF)


def _variable(variable: int) -> int:
    if not 0 <= variable <= 0xFF:
        raise LocalProtocolError(f"variable number {variable} does not fit the p1 byte")
    return variable


def _u16(value: float, scale: float, name: str) -> int:
    raw = round(value * scale)
    if not 0 <= raw <= 0xFFFF:
        raise LocalProtocolError(f"{name} {value} out of range")
    return raw


def encode_reply(reply: Reply) -> bytes:
    """The bytes of a reply (device side, tests)."""
    if isinstance(reply, Ack):
        return bytes((ACK,))
    if isinstance(reply, Nak):
        return bytes((NAK,))
    if isinstance(reply, Word):
        body = bytes((ACK,)) + struct.pack(">H", _u16(reply.value, 1, "word"))
    else:
        total = round(reply.force_n * 10)
        if not 0 <= total <= 0xFFFF * 10 + 9:
            raise LocalProtocolError(f"force {reply.force_n} out of range")
        body = bytes((ACK,)) + struct.pack(
            ">HHBH",
            _u16(reply.power_kw, 100, "power"),
            total // 10,
            total % 10,
            _u16(reply.speed_kmh, 100, "speed"),
        )
    return body + bytes((sum8(body),))


# --- decoding ---------------------------------------------------------------------------


def parse_record(kind: ReplyKind, frame: bytes) -> Reply:
    """The message of a checked record."""
    if kind is ReplyKind.WORD:
        return Word(struct.unpack(">H", frame[1:3])[0])
    power, force, tenths, speed = struct.unpack(">HHBH", frame[1:8])
    return Realtime(power / 100, round(force + tenths / 10, 1), speed / 100)


class ReplyDecoder(FrameDecoder[Reply]):
    """Host side: the reply to one command (see the resync rule above)."""

    def __init__(self, cmd: Cmd) -> None:
        super().__init__()
        self.cmd = cmd
        self.kind = COMMANDS[cmd]

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if self.kind is ReplyKind.ACK:
            if len(buf) > 1:
                raise self._drop(len(buf) - 1, "stale bytes before a one-byte reply")
            byte = buf.pop(0)
            if byte == ACK:
                return Ack()
            if byte == NAK:
                return Nak()
            buf.insert(0, byte)
            raise self._drop(1, f"byte 0x{byte:02X} is neither ACK nor NAK")
        if buf[0] == NAK and len(buf) == 1:
            del buf[0]
            return Nak()
        if buf[0] != ACK:
            start = buf.find(bytes((ACK,)))
            raise self._drop(start if start > 0 else len(buf), "bytes before a record")
        size = REALTIME_LEN if self.kind is ReplyKind.REALTIME else WORD_LEN
        if len(buf) < size:
            return NEED_DATA
        frame = bytes(buf[:size])
        if sum8(frame[:-1]) != frame[-1]:
            raise self._drop(1, "record checksum mismatch", ChecksumError)
        del buf[:size]
        return parse_record(self.kind, frame)


class RequestDecoder(FrameDecoder[Request]):
    """Device side: 7-byte requests; unknown cmd or bad CS loses one byte."""

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] != START:
            start = buf.find(bytes((START,)))
            raise self._drop(start if start > 0 else len(buf), "bytes before 0x08")
        if len(buf) >= 3 and (buf[1] not in _BY_BYTE or buf[2] != LENGTH):
            raise self._drop(1, "0x08 without a known command and 0x07")
        if len(buf) < REQUEST_LEN:
            return NEED_DATA
        frame = bytes(buf[:REQUEST_LEN])
        if sum8(frame[:-1]) != frame[-1]:
            raise self._drop(1, "request checksum mismatch", ChecksumError)
        del buf[:REQUEST_LEN]
        return Request(_BY_BYTE[frame[1]], frame[3], frame[4], frame[5])
