"""Yaohua XK3190 weighing-indicator codec: continuous mode tF=0 and command mode.

Theory of operation (protocols.md §5.4, source S8 = the XK3190-A1+P / A23P / A26 manuals;
docs/protocols/xk3190.md)
------------------------------------------------------------------------------------------
Every frame is printable ASCII between STX (0x02) and ETX (0x03), with a checksum: the
XOR of every byte between STX and the checksum, rendered as two upper-case ASCII hex
digits, high nibble first (``xor_ascii_hex``).

Continuous mode tF=0, indicator -> host, repeated (12 bytes)::

    02 · '+'|'-' · 6 digits (display value, no point) · decimals '0'-'4' · XH XL · 03

``+200.0 kg`` is ``02 2B 30 30 32 30 30 30 31 31 38 03`` (XOR of bytes 2-9 = 0x18).

Command mode, host -> indicator (6 bytes) and the reply::

    02 · address 'A'-'Z' · command 'A'-'F' · XH XL · 03
    02 · address · command · data · XH XL · 03

Address 'A' is indicator address 1 ... 'Z' is 26 (S8). Data: none for A (handshake, a
6-byte reply); sign + 6 digits + decimals for B gross, C tare, D net (14-byte replies);
E and F differ per model (A23P: unit price / amount; A9+: truck / cargo number) and are
kept raw. Choice where the doc only says "XOR hi/lo": in command mode the XOR covers
every byte between STX and the checksum (address, command and data), as in tF=0 and as
the A23P manual's ``XOR = 2 ⊕ 3 ⊕ ... ⊕ n`` says; its request table confirms it
(``02 41 42 30 33 03``: 'A' ^ 'B' = 0x03).

The protocol defines no negative answer. On the reply side a bare NAK byte (0x15, the
family convention of protocols.md §0) is decoded as ``Nak`` so a clone that sends one is
reported as a refusal, not a timeout; 0x15 never occurs inside a frame.

Resync rule: bytes before a start byte (STX, and NAK on the reply side) are dropped as
one ``FrameError``. A frame's length is known from its header (12 for tF=0, 6 for a
request or an A reply, 14 for B/C/D; E/F replies end at the first ETX, at most
``MAX_FRAME`` bytes). A control byte (STX, ETX, NAK) inside a frame means it was cut:
the bytes before it go. A frame without ETX at its length (a corrupted ETX) is dropped
up to the next start byte; a checksum mismatch (``ChecksumError``) or malformed fields
drop the whole frame. So a decoder never waits for bytes that belong to the next frame.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, TypeVar

from drivers.checksums import xor_ascii_hex
from drivers.errors import ChecksumError, FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

STX: Final = 0x02
ETX: Final = 0x03
NAK_BYTE: Final = 0x15
CONTINUOUS_LEN: Final = 12
REQUEST_LEN: Final = 6
WEIGHT_REPLY_LEN: Final = 14
#: longest frame we wait for when its length is not known from the header (E/F replies)
MAX_FRAME: Final = 32
DIGITS: Final = 6
MAX_COUNTS: Final = 999_999
MAX_DECIMALS: Final = 4


class Command(enum.StrEnum):
    """Command letters of command mode (S8)."""

    HANDSHAKE = "A"
    GROSS = "B"
    TARE = "C"
    NET = "D"
    MODEL_E = "E"  # A23P: unit price; A9+: truck number (kept raw)
    MODEL_F = "F"  # A23P: amount; A9+: cargo number (kept raw)


#: commands whose reply carries a weight (sign, 6 digits, decimals)
WEIGHT_COMMANDS: Final = frozenset({Command.GROSS, Command.TARE, Command.NET})
#: what E and F mean on the models whose manuals we read (S8); data kept raw
MODEL_COMMAND_MEANINGS: Final[dict[str, dict[Command, str]]] = {
    "a23p": {Command.MODEL_E: "unit price", Command.MODEL_F: "amount"},
    "a9+": {Command.MODEL_E: "truck number", Command.MODEL_F: "cargo number"},
}


# --- messages -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Weight:
    """A signed display value: the integer shown without its point, and the decimals."""

    counts: int
    decimals: int

    @property
    def value(self) -> float:
        """The value in the indicator's display unit."""
        return self.counts / 10.0**self.decimals

    @classmethod
    def from_value(cls, value: float, decimals: int) -> Weight:
        """The display value nearest ``value`` with ``decimals`` places."""
        return cls(round(value * 10**decimals), decimals)


@dataclass(frozen=True, slots=True)
class ContinuousFrame:
    """One tF=0 frame: the current weight (gross or net, as the display shows)."""

    weight: Weight


@dataclass(frozen=True, slots=True)
class CommandReply:
    """A command-mode reply: ``weight`` for B/C/D, the raw ``data`` field for E/F."""

    address: str
    command: str
    weight: Weight | None = None
    data: bytes = b""


@dataclass(frozen=True, slots=True)
class Nak:
    """A bare 0x15 (not in the XK3190 manuals; see the module docstring)."""


@dataclass(frozen=True, slots=True)
class Request:
    """Host -> indicator in command mode."""

    address: str
    command: str


Reply = ContinuousFrame | CommandReply | Nak
M = TypeVar("M")


# --- fields ---------------------------------------------------------------------------
_WEIGHT_FIELD = re.compile(rb"[+-][0-9]{6}[0-4]")
_LETTER = re.compile(rb"[A-Z]")


def format_weight(weight: Weight) -> bytes:
    """Sign, 6 digits and the decimals count (8 ASCII bytes)."""
    if abs(weight.counts) > MAX_COUNTS or not 0 <= weight.decimals <= MAX_DECIMALS:
        raise LocalProtocolError(f"{weight} does not fit sign + 6 digits + decimals")
    sign = "-" if weight.counts < 0 else "+"
    return f"{sign}{abs(weight.counts):06d}{weight.decimals}".encode("ascii")


def parse_weight(raw: bytes) -> Weight | None:
    """The 8-byte weight field, or None when it is not one."""
    if not _WEIGHT_FIELD.fullmatch(raw):
        return None
    counts = int(raw[1:7])
    return Weight(-counts if raw[:1] == b"-" else counts, raw[7] - 0x30)


def address_letter(address: int) -> str:
    """Indicator address 1-26 (its own setting) as the letter on the wire ('A'-'Z')."""
    if not 1 <= address <= 26:
        raise LocalProtocolError(f"XK3190 addresses are 1-26, not {address}")
    return chr(0x40 + address)


def _letter(value: str, what: str) -> int:
    if len(value) != 1 or not _LETTER.fullmatch(value.encode("ascii", "replace")):
        raise LocalProtocolError(f"{what} must be one letter 'A'-'Z', not {value!r}")
    return ord(value)


# --- encoders -------------------------------------------------------------------------
def encode_frame(body: bytes) -> bytes:
    """STX, ``body``, its XOR as two ASCII hex digits, ETX."""
    if any(byte < 0x20 or byte > 0x7E for byte in body):
        raise LocalProtocolError(f"frame body must be printable ASCII: {body!r}")
    return bytes((STX,)) + body + xor_ascii_hex(body) + bytes((ETX,))


def encode_continuous(weight: Weight) -> bytes:
    """One tF=0 frame (indicator side)."""
    return encode_frame(format_weight(weight))


def encode_request(address: str, command: str) -> bytes:
    """A command-mode request (host side)."""
    return encode_frame(bytes((_letter(address, "address"), _letter(command, "command"))))


def encode_reply(reply: CommandReply) -> bytes:
    """A command-mode reply (indicator side); a weight wins over raw ``data``."""
    head = bytes((_letter(reply.address, "address"), _letter(reply.command, "command")))
    data = format_weight(reply.weight) if reply.weight is not None else reply.data
    return encode_frame(head + data)


# --- decoders -------------------------------------------------------------------------
_CONTROL: Final = frozenset({STX, ETX, NAK_BYTE})


class _StxEtxDecoder(FrameDecoder[M]):
    """Shared scanner: finds checksum-valid STX ... ETX frames."""

    start_bytes: bytes = bytes((STX,))

    def _next_start(self, offset: int) -> int:
        """Index of the first start byte at or after ``offset`` (buffer length if none)."""
        found = [i for s in self.start_bytes if (i := self._buf.find(s, offset)) >= 0]
        return min(found, default=len(self._buf))

    def _expected_length(self) -> int | None:
        """The frame length the header announces, when it does (subclasses)."""
        return None

    def _next_body(self) -> bytes | NeedData:
        """The body (between STX and checksum) of the next valid frame, or NEED_DATA.

        A bare NAK (reply side) comes back as ``b"\\x15"``.
        """
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] not in self.start_bytes:
            raise self._drop(self._next_start(0), "no start byte")
        if buf[0] == NAK_BYTE:
            del buf[0]
            return bytes((NAK_BYTE,))
        limit = self._expected_length() or MAX_FRAME
        end = next((i for i in range(1, min(len(buf), limit)) if buf[i] in _CONTROL), None)
        if end is None:
            if len(buf) < limit:
                return NEED_DATA
            raise self._drop(self._next_start(1), f"no ETX within {limit} bytes")
        if buf[end] != ETX:
            raise self._drop(end, "frame cut short by a new start byte")
        expected = self._expected_length()
        if end < 4 or (expected is not None and end + 1 != expected):
            raise self._drop(end + 1, f"frame of {end + 1} bytes has the wrong length")
        frame = bytes(buf[: end + 1])
        body = frame[1:-3]
        if xor_ascii_hex(body) != frame[-3:-1].upper():
            raise self._drop(end + 1, "checksum mismatch", ChecksumError)
        del buf[: end + 1]
        return body


class ReplyDecoder(_StxEtxDecoder[Reply]):
    """Host side: tF=0 frames, command-mode replies and a bare NAK."""

    start_bytes = bytes((STX, NAK_BYTE))

    def _expected_length(self) -> int | None:
        buf = self._buf
        if len(buf) >= 2 and buf[1] in b"+-":
            return CONTINUOUS_LEN
        if len(buf) >= 3 and buf[2] == ord(Command.HANDSHAKE):
            return REQUEST_LEN
        if len(buf) >= 3 and chr(buf[2]) in WEIGHT_COMMANDS:
            return WEIGHT_REPLY_LEN
        return None

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        body = self._next_body()
        if body is NEED_DATA:
            return NEED_DATA
        if body == bytes((NAK_BYTE,)):
            return Nak()
        reply = parse_reply(body)
        if reply is None:
            raise FrameError(f"bad fields in frame body {body!r}", body)
        return reply


class RequestDecoder(_StxEtxDecoder[Request]):
    """Indicator side (simulators): command-mode requests."""

    def _expected_length(self) -> int | None:
        return REQUEST_LEN

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise ``FrameError`` after skipping."""
        body = self._next_body()
        if body is NEED_DATA:
            return NEED_DATA
        if not (_LETTER.fullmatch(body[:1]) and _LETTER.fullmatch(body[1:2])):
            raise FrameError(f"bad request {body!r}", body)
        return Request(chr(body[0]), chr(body[1]))


def parse_reply(body: bytes) -> Reply | None:
    """Interpret a checksum-valid frame body; None when its fields are malformed."""
    if body[:1] in (b"+", b"-"):
        weight = parse_weight(body)
        return None if weight is None else ContinuousFrame(weight)
    if len(body) < 2 or not (_LETTER.fullmatch(body[:1]) and _LETTER.fullmatch(body[1:2])):
        return None
    address, command, data = chr(body[0]), chr(body[1]), body[2:]
    if command == Command.HANDSHAKE:
        return CommandReply(address, command) if not data else None
    if command in WEIGHT_COMMANDS:
        weight = parse_weight(data)
        return None if weight is None else CommandReply(address, command, weight)
    return CommandReply(address, command, None, data)
