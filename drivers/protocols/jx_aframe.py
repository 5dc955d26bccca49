"""Jiangxing "A-frame" codec: JXGT2 roller brake tester and TLCH-10 speedometer tester.

Theory of operation (protocols.md §5.1, source S4; docs/protocols/jx-aframe.md)
--------------------------------------------------------------------------------
Every frame, both directions::

    'A' (0x41) · LEN · CMD · DATA (ASCII) · CS

LEN is the total frame length including the checksum; CS is the two's complement of the
8-bit sum of all preceding bytes (``neg_sum8``), so the whole frame sums to 0 mod 256.
Requests are always 4 bytes (``41 04 63 58`` = lift up). Replies, by length:

- LEN 4, ack: the request echoed (CMD = the command acknowledged);
- LEN 12, brake stream sample: CMD 0x66, left force 3-6, right force 7-10 (4 ASCII
  each); the end-of-test frame has 'E' at 2, 6 and 10 (we send 'E' at 2-10);
- LEN 15, speed: CMD 0x68, current speed 3-7, latched speed 8-12 (5 ASCII, km/h),
  13 = 'a' when latched (we send ' ' otherwise; any byte but 'a' = not latched);
- LEN 20, CMD 0x6B brake result: left/right max force 3-6, 7-10; left/right force at
  the moment of the largest left-right difference ("过程差") 11-14, 15-18;
- LEN 20, CMD 0x68 weighing: 3-10 undocumented (kept raw, we send '0'), left/right
  wheel load in kg 11-14, 15-18. Any other CMD: ``UnknownFrame``.

Choices where the source is silent: integer fields are ``[spaces][-]digits[spaces]`` filling
the width (we encode zero-padded, ``-012`` for negatives, so -999..9999); decimal fields
(speed) are decimal text with an optional point, read like the vendor's ``Float.valueOf``
(``040.5`` = 40.5 km/h, ``00040`` = 40 km/h; we encode ``%05.1f``). Force units are not
stated: this codec keeps the device's number, drivers scale it (option ``force_unit``).
The device's negative acknowledgement is not documented either: we use the family
convention of a bare NAK byte 0x15 (protocols.md §0), decoded as ``Nak``.

Resync rule: bytes before a start byte ('A', and 0x15 on the reply side) are dropped as
one ``FrameError``. A candidate frame is dropped up to the next start byte when its LEN
is not a known length (4, 12, 15, 20; requests 4), when a second 'A' shows up before its
checksum position (payload bytes are ASCII digits, spaces, '.', '-', 'E' or 'a', never
'A', so the frame was cut), when its checksum fails (``ChecksumError``), or when its
fields are not ASCII numbers (the whole checksum-valid frame goes). So a stray 'A' never
makes the decoder wait for bytes that belong to the next frame.
``rejected_frames`` counts the last two cases (a frame was lost) apart from line noise,
so a driver can tell that a brake stream lost a sample.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from drivers.checksums import neg_sum8
from drivers.errors import (
    ChecksumError,
    DeviceRefused,
    FrameError,
    LocalProtocolError,
    UnexpectedResponse,
)
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

START: Final = 0x41  # 'A'
NAK_BYTE: Final = 0x15
END_MARK: Final = 0x45  # 'E'
LATCHED_MARK: Final = 0x61  # 'a'
NOT_LATCHED_MARK: Final = 0x20  # our choice, any byte but 'a' reads as "not latched"

REQUEST_LEN: Final = 4
ACK_LEN: Final = 4
SAMPLE_LEN: Final = 12
SPEED_LEN: Final = 15
RECORD_LEN: Final = 20
REPLY_LENGTHS: Final = frozenset({ACK_LEN, SAMPLE_LEN, SPEED_LEN, RECORD_LEN})
FORCE_WIDTH: Final = 4
SPEED_WIDTH: Final = 5


class Command(enum.IntEnum):
    """Command bytes of the family (protocols.md §5.1, "Commands seen")."""

    ZERO = 0x62  # brake: zero display; weigher: zero
    LIFT_UP = 0x63  # lift between the rollers up (vehicle can drive on/off)
    LIFT_DOWN = 0x64  # lift down (wheels rest on the rollers)
    START = 0x66  # brake: start test (stream follows); speed: clear / start
    LOCK_WEIGHT = 0x67  # weigher only
    READ = 0x68  # brake: start weighing (20-byte loads); speed: read speed (15 bytes)
    GET_RESULT = 0x6B  # brake: result frame (20 bytes)
    TESTER_RAISE = 0x70  # brake: whole tester raise
    TESTER_LOWER = 0x71  # brake: whole tester lower


_BRAKE_COMMANDS: Final = frozenset(Command) - {Command.LOCK_WEIGHT}
#: The commands each model answers (what a simulator accepts; anything else is NAKed).
MODEL_COMMANDS: Final[dict[str, frozenset[Command]]] = {
    "jxgt2": _BRAKE_COMMANDS,
    "tlch10": frozenset({Command.LIFT_UP, Command.LIFT_DOWN, Command.START, Command.READ}),
    "jxzb10": frozenset({Command.ZERO, Command.LOCK_WEIGHT, Command.READ}),
}


# --- messages -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Request:
    """Host -> device: a bare 4-byte command (``command`` may be one we do not know)."""

    command: int


@dataclass(frozen=True, slots=True)
class Ack:
    """Device -> host: the 4-byte echo that acknowledges ``command``."""

    command: int


@dataclass(frozen=True, slots=True)
class Nak:
    """Device -> host: a bare 0x15 (our choice; the source documents no NAK)."""


@dataclass(frozen=True, slots=True)
class ForceSample:
    """One streamed brake sample, forces in the device's unit (daN unless configured)."""

    force_left: int
    force_right: int
    command: int = Command.START


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The end-of-test frame ('E' at offsets 2, 6, 10) that closes a brake stream."""


@dataclass(frozen=True, slots=True)
class BrakeResultFrame:
    """The 20-byte result: maxima, and the force pair where left and right differed most."""

    max_force_left: int
    max_force_right: int
    diff_force_left: int
    diff_force_right: int
    command: int = Command.GET_RESULT


@dataclass(frozen=True, slots=True)
class WeightFrame:
    """The 20-byte weighing frame: wheel loads in kg; bytes 3-10 kept as sent."""

    load_left_kg: int
    load_right_kg: int
    reserved: bytes = b"00000000"
    command: int = Command.READ


@dataclass(frozen=True, slots=True)
class SpeedFrame:
    """The 15-byte speed frame of the TLCH-10, km/h."""

    speed_kmh: float
    latched_speed_kmh: float
    latched: bool
    command: int = Command.READ


@dataclass(frozen=True, slots=True)
class UnknownFrame:
    """A valid frame of a known length whose command this codec does not interpret."""

    command: int
    data: bytes


Reply = (
    Ack | Nak | ForceSample | StreamEnd | BrakeResultFrame | WeightFrame | SpeedFrame | UnknownFrame
)
M = TypeVar("M")
#: the frames that answer a request (as opposed to stream samples)
Answer = TypeVar("Answer", Ack, BrakeResultFrame, WeightFrame, SpeedFrame)


# --- fields ---------------------------------------------------------------------------
_INT_FIELD = re.compile(rb" *-?[0-9]+ *")
_DECIMAL_FIELD = re.compile(rb" *-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+) *")


def format_int(value: int, width: int = FORCE_WIDTH) -> bytes:
    """An integer as a zero-padded ASCII field (``-012`` for negatives)."""
    text = f"{value:0{width}d}".encode("ascii")
    if len(text) != width:
        raise LocalProtocolError(f"{value} does not fit a {width}-character field")
    return text


def parse_int(raw: bytes) -> int | None:
    """An ASCII integer field, or None when it is not one."""
    return int(raw) if _INT_FIELD.fullmatch(raw) else None


def format_decimal(value: float, width: int = SPEED_WIDTH) -> bytes:
    """A value with one decimal as an ASCII field (``040.5``)."""
    if not math.isfinite(value):
        raise LocalProtocolError(f"{value} is not a number a device can show")
    text = f"{value:0{width}.1f}".encode("ascii")
    if len(text) != width:
        raise LocalProtocolError(f"{value} does not fit a {width}-character field")
    return text


def parse_decimal(raw: bytes) -> float | None:
    """An ASCII decimal field (point optional), or None when it is not one."""
    return float(raw) if _DECIMAL_FIELD.fullmatch(raw) else None


# --- encoders -------------------------------------------------------------------------
def encode_frame(command: int, data: bytes = b"") -> bytes:
    """Wrap ``data`` in an A-frame with its length and checksum.

    An 'A' as command or data byte would read as a cut frame (see the resync rule), so
    the family never sends one and neither do we.
    """
    length = len(data) + 4
    if not 0 <= command <= 0xFF or command == START or START in data or length > 0xFF:
        raise LocalProtocolError(f"cannot frame command {command} with data {data!r}")
    body = bytes((START, length, command)) + data
    return body + bytes((neg_sum8(body),))


def encode_request(command: int) -> bytes:
    """The 4-byte request for ``command``."""
    return encode_frame(command)


def encode_reply(message: Reply) -> bytes:
    """The bytes a device sends for ``message``."""
    match message:
        case Ack(command):
            return encode_frame(command)
        case Nak():
            return bytes((NAK_BYTE,))
        case ForceSample(left, right, command):
            return encode_frame(command, format_int(left) + format_int(right))
        case StreamEnd():
            return encode_frame(END_MARK, bytes((END_MARK,)) * 8)
        case BrakeResultFrame(max_left, max_right, diff_left, diff_right, command):
            fields = (max_left, max_right, diff_left, diff_right)
            return encode_frame(command, b"".join(format_int(value) for value in fields))
        case WeightFrame(left, right, reserved, command):
            if len(reserved) != 8:
                raise LocalProtocolError("weight frame bytes 3-10 must be 8 bytes")
            return encode_frame(command, reserved + format_int(left) + format_int(right))
        case SpeedFrame(speed, latched_speed, latched, command):
            mark = LATCHED_MARK if latched else NOT_LATCHED_MARK
            data = format_decimal(speed) + format_decimal(latched_speed) + bytes((mark,))
            return encode_frame(command, data)
        case UnknownFrame(command, data):
            return encode_frame(command, data)
    raise LocalProtocolError(f"not a reply: {message!r}")


# --- decoders -------------------------------------------------------------------------
class _AFrameDecoder(FrameDecoder[M]):
    """Shared scanner: finds checksum-valid A-frames of the allowed lengths."""

    lengths: frozenset[int] = REPLY_LENGTHS
    start_bytes: bytes = bytes((START,))

    def __init__(self) -> None:
        super().__init__()
        #: candidate frames thrown away (bad checksum or bad fields), not counting noise
        self.rejected_frames = 0

    def _next_start(self, offset: int) -> int:
        """Index of the first start byte at or after ``offset`` (buffer length if none)."""
        found = [i for s in self.start_bytes if (i := self._buf.find(s, offset)) >= 0]
        return min(found, default=len(self._buf))

    def _next_frame(self) -> bytes | NeedData:
        """The next checksum-valid frame (removed from the buffer), or NEED_DATA."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] not in self.start_bytes:
            raise self._drop(self._next_start(0), "no start byte")
        if buf[0] != START:
            return bytes((buf.pop(0),))  # a single-byte message (NAK)
        if len(buf) < 2:
            return NEED_DATA
        length = buf[1]
        if length not in self.lengths:
            raise self._drop(self._next_start(1), f"bad length byte {length}")
        # an 'A' before the checksum position: payload never holds one, so the frame was cut
        if buf.find(START, 1, min(len(buf), length - 1)) > 0:
            raise self._drop(self._next_start(1), "frame cut short by a new start byte")
        if len(buf) < length:
            return NEED_DATA
        frame = bytes(buf[:length])
        if neg_sum8(frame[:-1]) != frame[-1]:
            self.rejected_frames += 1
            raise self._drop(self._next_start(1), "checksum mismatch", ChecksumError)
        del buf[:length]
        return frame


class ReplyDecoder(_AFrameDecoder[Reply]):
    """Host side: decodes device replies (acks, stream samples, records, NAK)."""

    start_bytes = bytes((START, NAK_BYTE))

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        frame = self._next_frame()
        if frame is NEED_DATA:
            return NEED_DATA
        if frame == bytes((NAK_BYTE,)):
            return Nak()
        reply = parse_reply(frame)
        if reply is None:
            self.rejected_frames += 1
            raise FrameError(f"bad fields in frame {frame.hex(' ')}", frame)
        return reply


class RequestDecoder(_AFrameDecoder[Request]):
    """Device side (simulators): decodes 4-byte requests."""

    lengths = frozenset({REQUEST_LEN})

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        frame = self._next_frame()
        if frame is NEED_DATA:
            return NEED_DATA
        return Request(frame[2])


def parse_reply(frame: bytes) -> Reply | None:
    """Interpret a checksum-valid reply frame; None when its fields are malformed."""
    command = frame[2]
    if len(frame) == ACK_LEN:
        return Ack(command)
    if len(frame) == SAMPLE_LEN:
        if frame[2] == frame[6] == frame[10] == END_MARK:
            return StreamEnd()
        left, right = parse_int(frame[3:7]), parse_int(frame[7:11])
        if left is None or right is None:
            return None
        return ForceSample(left, right, command)
    if len(frame) == SPEED_LEN:
        return _parse_speed(frame)
    return _parse_record(frame)


def _parse_speed(frame: bytes) -> SpeedFrame | None:
    speed, latched_speed = parse_decimal(frame[3:8]), parse_decimal(frame[8:13])
    if speed is None or latched_speed is None:
        return None
    return SpeedFrame(speed, latched_speed, frame[13] == LATCHED_MARK, frame[2])


def _parse_record(frame: bytes) -> Reply | None:
    command = frame[2]
    if command not in (Command.GET_RESULT, Command.READ):
        return UnknownFrame(command, frame[3:-1])
    values = [parse_int(frame[i : i + 4]) for i in (3, 7, 11, 15)]
    if command == Command.READ:
        left, right = values[2], values[3]
        if left is None or right is None:
            return None
        return WeightFrame(left, right, frame[3:11], command)
    a, b, c, d = values
    if a is None or b is None or c is None or d is None:
        return None
    return BrakeResultFrame(a, b, c, d, command)


# --- request / answer matching ----------------------------------------------------------
def answers(command: int, expect: type[Answer]) -> Callable[[Reply], bool]:
    """The ``is_final`` rule of a request: a NAK, or an ``expect`` frame echoing ``command``.

    Anything else (a late reply to an earlier request, the tail of a brake stream) is
    passed over, so a slow or glued reply never answers the wrong question.
    """

    def is_final(message: Reply) -> bool:
        return isinstance(message, Nak) or (
            isinstance(message, expect) and message.command == command
        )

    return is_final


def answer_of(messages: Sequence[Reply], command: int, expect: type[Answer]) -> Answer:
    """The answer among ``messages`` (the last one); NAK -> ``DeviceRefused``."""
    reply = messages[-1] if messages else None
    if isinstance(reply, Nak):
        raise DeviceRefused(f"command 0x{command:02X} refused (NAK)")
    if isinstance(reply, expect) and reply.command == command:
        return reply
    raise UnexpectedResponse(f"command 0x{command:02X}: expected {expect.__name__}, got {reply!r}")
