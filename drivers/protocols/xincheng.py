"""Chengdu XinCheng (成都新成) dyno controller, protocol v8.0, sans-I/O codec.

Theory of operation (protocols.md §3.1, source S2 + driver S1; docs/protocols/xincheng.md)
-------------------------------------------------------------------------------------------
RS-232 38400 8N1, the PC is master. Three frame shapes::

    command   (9 bytes):  'X' · function · sub-function · float32 LE · CS · 'C'
    response (17 bytes):  'A' · function · sub-function · 3 × float32 LE · key · 'C'
    debug text:           'D' · ASCII text · 'C'     ("power up", "error command", ...)

The worked example: set speed 70.0 km/h is ``'X' 'S' 'S' 00 00 8C 42 CS 'C'``. The key
byte carries the remote-control key code in D7-D4 (1-12, latched until ``SK``) and the
photocells 3/2/1 in D2/D1/D0. Responses carry no checksum.

The document's inconsistencies, handled as protocols.md advises:

(a) it never says which bytes CS covers, and Nanhua's driver overwrites the trailing 'C'
    with the checksum (so real controllers ignore it). The encoder writes the documented
    placement (``Placement.DOC``: CS at byte 7, 'C' at byte 8) or Nanhua's
    (``Placement.NANHUA``: byte 7 = 0, CS at byte 8), CS = ``sum8`` of bytes 0-6
    (``Coverage.FRAME``) or 1-6 (``Coverage.BODY``), all four as data. The device-side
    decoder accepts both placements and both coverages: a frame ending in 'C' is taken
    whatever its CS (``checksum_ok`` tells), one without 'C' only when byte 8 is a
    checksum of either coverage.
(b) the ``ARS`` example shows roller diameter 21.6 and pulses 3600 big-endian while
    everything else is little-endian: ``parse_roller_setup`` reads little-endian and
    falls back to big-endian when only that gives plausible values (it says which).
(c) Nanhua's driver labels the three ``AII`` floats P, F, V, the document speed, force,
    duty: the order is data (``IDLE_LAYOUTS``), the document's by default.

Our choices where the document is silent (the simulator does the same): a command that
returns nothing answers with a response echoing its function and sub-function, the
command's value in the first float, zeros in the others; while a control mode runs the
controller pushes ``AII``-shaped frames (speed, force, duty) every 10-30 ms; ``RF``
answers two frames (``ARA``, ``ARB``).

Resync: bytes before 'A' or 'D' go as one ``FrameError``. An 'A' not followed, 16 bytes
on, by 'C' with letters as function/sub-function and finite floats is dropped alone (so
a stray 'A' inside float bytes never swallows the next frame); a 'D' whose text meets a
non-printable byte, or runs past ``DEBUG_MAX`` without 'C', is dropped alone.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import sum8
from drivers.errors import FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

COMMAND_START: Final = 0x58  # 'X'
RESPONSE_START: Final = 0x41  # 'A'
DEBUG_START: Final = 0x44  # 'D'
END: Final = 0x43  # 'C'
COMMAND_LEN: Final = 9
RESPONSE_LEN: Final = 17
DEBUG_MAX: Final = 64  # longest debug frame we wait for, 'D' and 'C' included
KEY_SHIFT: Final = 4
PHOTOCELL_MASK: Final = 0x07

_FLOAT: Final = struct.Struct("<f")
_FLOATS: Final = struct.Struct("<3f")
_FLOATS_BE: Final = struct.Struct(">3f")


class Placement(enum.Enum):
    """Where a command's checksum goes (inconsistency (a))."""

    DOC = "doc"  # CS at byte 7, 'C' at byte 8
    NANHUA = "nanhua"  # byte 7 = 0x00, CS at byte 8 (Nanhua's driver)


class Coverage(enum.Enum):
    """Which bytes the checksum sums (inconsistency (a))."""

    FRAME = "frame"  # bytes 0-6: 'X', function, sub-function, float
    BODY = "body"  # bytes 1-6: function, sub-function, float


#: two-letter commands of the v8.0 document, with what they do (the command table)
COMMANDS: Final[dict[str, str]] = {
    "SS": "set speed target, km/h",
    "SF": "set force target, N",
    "SP": "set power target, kW",
    "SI": "set PWM duty, %",
    "SC": "select force channel 1/2/3",
    "SZ": "zero force",
    "SK": "clear the latched remote key",
    "BS": "begin constant speed",
    "BF": "begin constant force",
    "BP": "begin constant power",
    "BI": "begin constant PWM",
    "BQ": "stop control (PWM 0)",
    "EB": "motor start",
    "ES": "motor stop",
    "EY": "relay LH1-3 on",
    "EN": "relay LH1-3 off",
    "JU": "lift up",
    "JD": "lift down",
    "DF": "calibration mode, force (streams 3 ADC voltages)",
    "DS": "calibration mode, speed",
    "RT": "read ambient: temperature °C, RH %, pressure kPa",
    "RF": "read force coefficients (two frames ARA, ARB)",
    "RC": "read force channel",
    "Rs": "read speed PID",
    "Rf": "read force PID",
    "RS": "read roller diameter cm and encoder pulses/rev",
    "MM": "store coefficients to ROM",
    "II": "idle poll: speed km/h, force N, duty %",
}

#: order of the three ``AII`` floats (inconsistency (c)), by firmware family
IDLE_LAYOUTS: Final[dict[str, tuple[str, str, str]]] = {
    "doc": ("speed_kmh", "force_n", "duty_pct"),
    "nanhua": ("power_kw", "force_n", "speed_kmh"),
}
#: plausible ranges of the ``ARS`` values (diameter cm, pulses per revolution)
ROLLER_DIAMETER_CM: Final = (5.0, 200.0)
ENCODER_PULSES: Final = (1.0, 100_000.0)


# --- messages ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """Host -> controller (decoded on the device side)."""

    function: str
    sub: str
    value: float
    #: None: Nanhua placement (its checksum is what framed it); else whether CS matched
    checksum_ok: bool | None = None
    placement: Placement = Placement.DOC

    @property
    def code(self) -> str:
        """The two letters, e.g. ``"SS"``."""
        return self.function + self.sub


@dataclass(frozen=True, slots=True)
class Response:
    """Controller -> host: function, sub-function, three floats, the key byte."""

    function: str
    sub: str
    values: tuple[float, float, float]
    key: int = 0
    payload: bytes = b""  # the 12 float bytes as received (for inconsistency (b))

    @property
    def code(self) -> str:
        """The two letters, e.g. ``"II"``."""
        return self.function + self.sub

    @property
    def remote_key(self) -> int | None:
        """The latched remote-control key (1-12), None when none is latched."""
        code = self.key >> KEY_SHIFT
        return code or None

    @property
    def photocells(self) -> tuple[bool, bool, bool]:
        """Photocells 1, 2, 3 (D0, D1, D2)."""
        return bool(self.key & 1), bool(self.key & 2), bool(self.key & 4)


@dataclass(frozen=True, slots=True)
class DebugText:
    """Controller -> host: a 'D' ... 'C' text ("motor on", "error command"...)."""

    text: str


Message = Response | DebugText


# --- encoding ---------------------------------------------------------------------------


def _letters(code: str) -> bytes:
    raw = code.encode("ascii", "replace")
    if len(raw) != 2 or not raw.isalpha():
        raise LocalProtocolError(f"XinCheng command must be two letters, not {code!r}")
    return raw


def float_bytes(value: float) -> bytes:
    """IEEE-754 float32 little-endian, e.g. 70.0 -> ``00 00 8C 42``."""
    if not math.isfinite(value):
        raise LocalProtocolError(f"value {value!r} is not a finite number")
    try:
        return _FLOAT.pack(value)
    except OverflowError:
        raise LocalProtocolError(f"value {value!r} does not fit a float32") from None


def checksum(frame_head: bytes, coverage: Coverage) -> int:
    """The CS of a command whose first 7 bytes are ``frame_head``."""
    return sum8(frame_head if coverage is Coverage.FRAME else frame_head[1:])


def encode_command(
    code: str,
    value: float = 0.0,
    *,
    placement: Placement = Placement.DOC,
    coverage: Coverage = Coverage.FRAME,
) -> bytes:
    """A 9-byte command, e.g. ``encode_command("SS", 70.0)``."""
    head = bytes((COMMAND_START,)) + _letters(code) + float_bytes(value)
    cs = checksum(head, coverage)
    if placement is Placement.DOC:
        return head + bytes((cs, END))
    return head + bytes((0, cs))


def encode_response(message: Message) -> bytes:
    """The bytes of a response or debug text (device side, tests)."""
    if isinstance(message, DebugText):
        text = message.text.encode("ascii")
        if b"C" in text or len(text) + 2 > DEBUG_MAX or not _printable(text):
            raise LocalProtocolError(f"debug text {message.text!r} cannot be framed")
        return bytes((DEBUG_START,)) + text + bytes((END,))
    payload = message.payload or _FLOATS.pack(*message.values)
    head = bytes((RESPONSE_START,)) + _letters(message.code)
    return head + payload + bytes((message.key & 0xFF, END))


def _printable(raw: bytes) -> bool:
    return all(0x20 <= byte < 0x7F for byte in raw)


# --- decoding ---------------------------------------------------------------------------


def _is_letter(byte: int) -> bool:
    return 0x41 <= byte <= 0x5A or 0x61 <= byte <= 0x7A


class ResponseDecoder(FrameDecoder[Message]):
    """Host side: responses and debug texts (see the resync rule above)."""

    def next_message(self) -> Message | NeedData:
        """Return the next message, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] not in (RESPONSE_START, DEBUG_START):
            start = next((i for i, b in enumerate(buf) if b in (RESPONSE_START, DEBUG_START)), 0)
            raise self._drop(start or len(buf), "bytes before a frame start")
        if buf[0] == DEBUG_START:
            return self._debug()
        return self._response()

    def _debug(self) -> Message | NeedData:
        buf = self._buf
        end = buf.find(bytes((END,)), 1, DEBUG_MAX)
        text = bytes(buf[1 : end if end > 0 else min(len(buf), DEBUG_MAX)])
        if not _printable(text):
            raise self._drop(1, "'D' not followed by debug text")
        if end < 0:
            if len(buf) >= DEBUG_MAX:
                raise self._drop(1, "debug text without its 'C'")
            return NEED_DATA
        del buf[: end + 1]
        return DebugText(text.decode("ascii"))

    def _response(self) -> Message | NeedData:
        buf = self._buf
        if len(buf) >= 3 and not (_is_letter(buf[1]) and _is_letter(buf[2])):
            raise self._drop(1, "'A' not followed by a function and sub-function letter")
        if len(buf) < RESPONSE_LEN:
            return NEED_DATA
        frame = bytes(buf[:RESPONSE_LEN])
        payload = frame[3:15]
        values = _FLOATS.unpack(payload)
        if frame[-1] != END or not all(math.isfinite(v) for v in values):
            raise self._drop(1, "not a 17-byte response")
        del buf[:RESPONSE_LEN]
        code = frame[1:3].decode("ascii")
        return Response(code[0], code[1], values, frame[15], payload)


class CommandDecoder(FrameDecoder[Command]):
    """Device side: 9-byte commands in either checksum placement (inconsistency (a))."""

    def next_message(self) -> Command | NeedData:
        """Return the next command, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        if buf[0] != COMMAND_START:
            start = buf.find(bytes((COMMAND_START,)))
            raise self._drop(start if start > 0 else len(buf), "bytes before 'X'")
        if len(buf) >= 3 and not (_is_letter(buf[1]) and _is_letter(buf[2])):
            raise self._drop(1, "'X' not followed by two letters")
        if len(buf) < COMMAND_LEN:
            return NEED_DATA
        frame = bytes(buf[:COMMAND_LEN])
        head = frame[:7]
        sums = {checksum(head, coverage) for coverage in Coverage}
        value = _FLOAT.unpack(frame[3:7])[0]
        if frame[8] == END:
            message = Command(chr(frame[1]), chr(frame[2]), value, frame[7] in sums)
        elif frame[8] in sums:
            message = Command(chr(frame[1]), chr(frame[2]), value, None, Placement.NANHUA)
        else:
            raise self._drop(1, "9 bytes from 'X' end neither in 'C' nor in a checksum")
        del buf[:COMMAND_LEN]
        return message


# --- typed views of responses -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollerSetup:
    """``ARS``: roller diameter and encoder pulses, with the byte order that made sense."""

    diameter_cm: float
    pulses_per_rev: float
    byte_order: str  # "little" (the document's rule) or "big" (its ARS example)


def _plausible_setup(diameter: float, pulses: float) -> bool:
    low_d, high_d = ROLLER_DIAMETER_CM
    low_p, high_p = ENCODER_PULSES
    return low_d <= diameter <= high_d and low_p <= pulses <= high_p


def parse_roller_setup(response: Response) -> RollerSetup:
    """Diameter and pulses of an ``ARS`` response, little-endian first (inconsistency (b))."""
    diameter, pulses, _ = response.values
    if _plausible_setup(diameter, pulses):
        return RollerSetup(diameter, pulses, "little")
    if len(response.payload) == _FLOATS.size:
        big = _FLOATS_BE.unpack(response.payload)
        if _plausible_setup(big[0], big[1]):
            return RollerSetup(big[0], big[1], "big")
    raise FrameError(f"ARS values {diameter!r}, {pulses!r} are no roller setup in either order")


def idle_fields(response: Response, layout: str = "doc") -> dict[str, float]:
    """The three ``AII`` floats by name, in the firmware's order (inconsistency (c))."""
    return dict(zip(IDLE_LAYOUTS[layout], response.values, strict=True))
