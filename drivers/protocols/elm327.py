"""ELM327 (and compatible) OBD-II scan tool: AT commands and SAE J1979 replies, sans-I/O.

Theory of operation (ELM327 data sheet, SAE J1979 / ISO 15765-4; docs/protocols/elm327.md)
------------------------------------------------------------------------------------------
The host writes one command line, ended by CR (``ATZ``, ``ATE0``, ``0100``, ``0902``); the
adapter answers with text lines ended by CR (CR LF after ``ATL1``) and then the prompt
``>``, which says it is ready for the next command. ``PromptDecoder`` cuts the stream at
each ``>``: every ``ElmReply`` holds the lines of one answer. The answer to an OBD request
is hex data, one line per vehicle frame, or a status word: ``NO DATA``, ``?`` (not
understood), ``SEARCHING...`` before the first answer with automatic protocol search,
``UNABLE TO CONNECT``, ``BUS INIT: ...``, ``CAN ERROR``, ``BUS ERROR``, ``STOPPED`` ...

Frames (``parse_frames``), for headers on (``ATH1``, what our driver sets) or off, with
spaces (``ATS1``) or without (``ATS0``):

- CAN 11-bit: ``7E8 06 41 0C 1A F8`` = ECU 7E8, ISO-TP PCI ``06`` (single frame, 6
  bytes), data; multi-frame messages (VIN) come as a first frame ``10 14 49 02 01 ...``
  (length 0x014) and consecutive frames ``21 ...``, ``22 ...`` reassembled by ``assemble``;
- CAN 29-bit: ``18 DA F1 10`` then PCI and data, the ECU being the last header byte;
- J1850 / ISO 9141 / KWP: ``48 6B 10`` header, data, a checksum byte (dropped);
- headers off: CAN single frames are bare data; multi-frame answers come as ``014`` then
  ``0: 49 02 01 31 47 31``, ``1: ...`` (ELM's own ISO-TP display).

Decoding of J1979 data (``decode_pid``, ``decode_dtcs``, ``decode_vin``...): Mode 01 PIDs
by the table ``PIDS``; Mode 03 DTCs (CAN: a count byte first); Mode 09 VIN (02),
calibration ids (04, 16 ASCII each), CVNs (06, 4 bytes each). Legacy protocols send Mode
09 items as several frames each carrying the message number: ``assemble`` joins them.

Resync: a reply is cut at ``>``; bytes that are not printable ASCII (or CR, LF, NUL) are
line noise: everything up to the last of them is dropped as a ``FrameError`` and the text
after it is kept as the reply; a run of ``MAX_REPLY`` bytes without a prompt is dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from drivers.errors import FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData

PROMPT: Final = 0x3E  # '>'
CR: Final = b"\r"
MAX_REPLY: Final = 4096

#: ATDPN digit -> protocol name (ELM327 data sheet, "ATSP" table)
PROTOCOL_NAMES: Final[dict[str, str]] = {
    "0": "automatic",
    "1": "SAE J1850 PWM (41.6 kbaud)",
    "2": "SAE J1850 VPW (10.4 kbaud)",
    "3": "ISO 9141-2 (5 baud init)",
    "4": "ISO 14230-4 KWP (5 baud init)",
    "5": "ISO 14230-4 KWP (fast init)",
    "6": "ISO 15765-4 (CAN 11/500)",
    "7": "ISO 15765-4 (CAN 29/500)",
    "8": "ISO 15765-4 (CAN 11/250)",
    "9": "ISO 15765-4 (CAN 29/250)",
    "A": "SAE J1939 (CAN 29/250)",
}
CAN_PROTOCOLS: Final = frozenset("6789AB")
EXTENDED_CAN: Final = frozenset("79A")

#: status words an OBD request may get instead of data
STATUS_WORDS: Final = (
    "NO DATA",
    "?",
    "UNABLE TO CONNECT",
    "CAN ERROR",
    "BUS ERROR",
    "BUS BUSY",
    "DATA ERROR",
    "FB ERROR",
    "STOPPED",
    "BUFFER FULL",
    "ERROR",
)
_ALLOWED: Final = frozenset(range(0x20, 0x7F)) | {0x0D, 0x0A, 0x00}
_HEX_LINE: Final = re.compile(r"^[0-9A-F ]+$")
_ISO_TP_INDEX: Final = re.compile(r"^([0-9A-F]):\s*(.*)$")


def encode_command(text: str) -> bytes:
    """One command line: ``encode_command("0100")`` = ``b"0100\\r"``."""
    raw = text.strip().encode("ascii", "replace")
    if not raw or not all(0x20 <= b < 0x7F for b in raw):
        raise LocalProtocolError(f"not an ELM327 command: {text!r}")
    return raw + CR


@dataclass(frozen=True, slots=True)
class ElmReply:
    """The lines of one answer, without empty lines, prompt or line ends."""

    lines: tuple[str, ...]

    def without_echo(self, command: str) -> ElmReply:
        """The reply minus a first line echoing ``command`` (``ATE1``, the default)."""
        if self.lines and self.lines[0].replace(" ", "") == command.replace(" ", ""):
            return ElmReply(self.lines[1:])
        return self

    @property
    def status(self) -> str | None:
        """The status word this reply ends in, if any (``NO DATA``, ``?``...)."""
        for line in reversed(self.lines):
            for word in STATUS_WORDS:
                if line.upper().startswith(word):
                    return word
        return None

    @property
    def data_lines(self) -> tuple[str, ...]:
        """Lines that may carry frames: ``SEARCHING...`` and ``BUS INIT`` left out."""
        skip = ("SEARCHING", "BUS INIT")
        return tuple(line for line in self.lines if not line.upper().startswith(skip))


class PromptDecoder(FrameDecoder[ElmReply]):
    """Host side: one ``ElmReply`` per ``>`` prompt."""

    def next_message(self) -> ElmReply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        end = buf.find(bytes((PROMPT,)))
        if end < 0:
            if len(buf) >= MAX_REPLY:
                raise self._drop(len(buf), "no prompt within the longest reply")
            return NEED_DATA
        raw = bytes(buf[:end])
        bad = [i for i, b in enumerate(raw) if b not in _ALLOWED]
        if bad:  # line noise: drop through the last non-text byte, keep the text after it
            raise self._drop(bad[-1] + 1, "non-text bytes in a reply")
        del buf[: end + 1]
        text = raw.replace(b"\x00", b"").decode("ascii")
        lines = tuple(line.strip() for line in re.split(r"[\r\n]+", text) if line.strip())
        return ElmReply(lines)


class CommandDecoder(FrameDecoder[str]):
    """Device side: command lines (CR ends one; LF and spaces ignored, case folded)."""

    def next_message(self) -> str | NeedData:
        """Return the next command line, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        end = buf.find(CR)
        if end < 0:
            if len(buf) > MAX_REPLY:
                raise self._drop(len(buf), "command line too long")
            return NEED_DATA
        raw = bytes(buf[:end])
        del buf[: end + 1]
        if not all(0x20 <= b < 0x7F or b == 0x0A for b in raw):
            raise FrameError(f"command with non-text bytes: dropped {raw.hex(' ')}", raw)
        return raw.decode("ascii").replace("\n", "").replace(" ", "").upper()


# --- frames -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One vehicle frame: the responding ECU (None with headers off) and its bytes."""

    ecu: str | None
    data: bytes


def _hex_bytes(text: str) -> bytes:
    compact = text.replace(" ", "")
    if len(compact) % 2:
        raise FrameError(f"odd number of hex digits in {text!r}")
    return bytes.fromhex(compact)


def parse_frames(lines: Iterable[str], protocol: str, headers: bool) -> list[Frame]:
    """The frames of an OBD answer's data lines; ``FrameError`` for a line that is none.

    With CAN and headers on, ``data`` starts with the ISO-TP PCI byte; with headers off,
    ELM's multi-frame display (a length line ``014``, then ``0: ...``, ``1: ...``) becomes
    a first frame carrying that length and one consecutive frame (PCI ``0x2n``) per line.
    """
    can = protocol in CAN_PROTOCOLS
    frames: list[Frame] = []
    for raw in lines:
        line = raw.upper().strip()
        indexed = _ISO_TP_INDEX.match(line)
        if indexed is not None:
            pci = 0x20 | int(indexed.group(1), 16)
            frames.append(Frame(None, bytes((pci,)) + _hex_bytes(indexed.group(2))))
            continue
        if not _HEX_LINE.match(line):
            raise FrameError(f"not a data line: {raw!r}")
        if not headers:
            compact = line.replace(" ", "")
            if can and len(compact) == 3:  # the length line before "0: ...": a first frame
                length = int(compact, 16)
                frames.append(Frame(None, bytes((0x10 | length >> 8, length & 0xFF))))
                continue
            data = _hex_bytes(line)
            frames.append(Frame(None, bytes((len(data),)) + data if can else data))
            continue
        frames.append(_headed_frame(line, protocol))
    return frames


def _headed_frame(line: str, protocol: str) -> Frame:
    compact = line.replace(" ", "")
    if protocol in CAN_PROTOCOLS and protocol not in EXTENDED_CAN:
        if len(compact) < 5 or len(compact) % 2 == 0:
            raise FrameError(f"not an 11-bit CAN frame: {line!r}")
        return Frame(compact[:3], bytes.fromhex(compact[3:]))
    data = _hex_bytes(compact)
    if protocol in EXTENDED_CAN:
        if len(data) < 5:
            raise FrameError(f"not a 29-bit CAN frame: {line!r}")
        return Frame(f"{data[3]:02X}", data[4:])
    if len(data) < 5:
        raise FrameError(f"not a legacy OBD frame: {line!r}")
    return Frame(f"{data[2]:02X}", data[3:-1])  # 3 header bytes, data, checksum


def assemble(frames: Iterable[Frame], protocol: str) -> dict[str | None, bytes]:
    """Messages by ECU: ISO-TP reassembly on CAN, frames joined per ECU otherwise."""
    can = protocol in CAN_PROTOCOLS
    messages: dict[str | None, bytearray] = {}
    lengths: dict[str | None, int] = {}
    for frame in frames:
        if not can:
            messages.setdefault(frame.ecu, bytearray()).extend(frame.data)
            continue
        if not frame.data:
            raise FrameError(f"empty CAN frame from {frame.ecu}")
        pci, body = frame.data[0], frame.data[1:]
        kind = pci >> 4
        if kind == 0:
            messages[frame.ecu] = bytearray(body[: pci & 0x0F])
            lengths[frame.ecu] = pci & 0x0F
        elif kind == 1:
            if len(body) < 1:
                raise FrameError(f"first frame without length from {frame.ecu}")
            lengths[frame.ecu] = (pci & 0x0F) << 8 | body[0]
            messages[frame.ecu] = bytearray(body[1:])
        elif kind == 2:
            if frame.ecu not in messages:
                raise FrameError(f"consecutive frame without a first frame from {frame.ecu}")
            messages[frame.ecu].extend(body)
        else:
            raise FrameError(f"ISO-TP flow control or unknown PCI 0x{pci:02X}")
    out: dict[str | None, bytes] = {}
    for ecu, data in messages.items():
        length = lengths.get(ecu, 0)
        out[ecu] = bytes(data[:length] if length else data)
    return out


def join_legacy_items(message: bytes, mode: int, pid: int) -> bytes:
    """Mode 09 on legacy protocols: every frame repeats ``49 pid n``; keep the payloads."""
    header = bytes((mode | 0x40, pid))
    parts, i = bytearray(), 0
    while i + 3 <= len(message) and message[i : i + 2] == header:
        parts.extend(message[i + 3 : i + 7])
        i += 7
    if i != len(message):
        raise FrameError(f"legacy Mode {mode:02X} answer not in 7-byte items")
    return bytes(parts)


# --- J1979 data -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pid:
    """A Mode 01 PID: name, data length and formula."""

    name: str
    length: int
    decode: Callable[[bytes], float]


PIDS: Final[dict[int, Pid]] = {
    0x04: Pid("engine_load_pct", 1, lambda d: round(d[0] * 100 / 255, 1)),
    0x05: Pid("coolant_temp_c", 1, lambda d: d[0] - 40),
    0x0B: Pid("map_kpa", 1, lambda d: d[0]),
    0x0C: Pid("engine_speed_rpm", 2, lambda d: (d[0] * 256 + d[1]) / 4),
    0x0D: Pid("vehicle_speed_kmh", 1, lambda d: d[0]),
    0x0F: Pid("intake_air_temp_c", 1, lambda d: d[0] - 40),
    0x10: Pid("maf_g_s", 2, lambda d: (d[0] * 256 + d[1]) / 100),
    0x11: Pid("throttle_pct", 1, lambda d: round(d[0] * 100 / 255, 1)),
}


def mode01_payload(message: bytes, pid: int) -> bytes:
    """The data bytes of a Mode 01 answer to ``pid`` (``41 pid ...``)."""
    if len(message) < 2 or message[0] != 0x41 or message[1] != pid:
        raise FrameError(f"not an answer to 01 {pid:02X}: {message.hex(' ')}")
    return message[2:]


def decode_pid(message: bytes, pid: int) -> float:
    """The value of a Mode 01 answer by ``PIDS``."""
    spec = PIDS[pid]
    data = mode01_payload(message, pid)
    if len(data) < spec.length:
        raise FrameError(f"01 {pid:02X} answer too short: {message.hex(' ')}")
    return spec.decode(data[: spec.length])


def supported_pids(message: bytes, base: int) -> set[int]:
    """PIDs flagged in a 01 00/20/40 bitmap answer."""
    data = mode01_payload(message, base)
    if len(data) < 4:
        raise FrameError(f"01 {base:02X} bitmap too short")
    bits = int.from_bytes(data[:4], "big")
    return {base + i + 1 for i in range(32) if bits & (1 << (31 - i))}


_DTC_LETTERS: Final = "PCBU"


def dtc_text(high: int, low: int) -> str:
    """Two DTC bytes as text: ``01 33`` -> ``P0133``."""
    return f"{_DTC_LETTERS[high >> 6]}{(high >> 4) & 0x3}{high & 0xF:X}{low:02X}"


def decode_dtcs(message: bytes, protocol: str) -> list[str]:
    """DTCs of a Mode 03 answer (``43 ...``); CAN carries a count byte first."""
    if not message or message[0] != 0x43:
        raise FrameError(f"not a Mode 03 answer: {message.hex(' ')}")
    body = message[1:]
    if protocol in CAN_PROTOCOLS:
        count, body = (body[0], body[1:]) if body else (0, b"")
        body = body[: 2 * count]
    return [
        dtc_text(body[i], body[i + 1]) for i in range(0, len(body) - 1, 2) if body[i] or body[i + 1]
    ]


def mode09_payload(message: bytes, pid: int, protocol: str) -> tuple[int, bytes]:
    """Item count and data of a Mode 09 answer (``49 pid n ...``)."""
    if protocol not in CAN_PROTOCOLS:
        return 0, join_legacy_items(message, 0x09, pid)
    if len(message) < 3 or message[0] != 0x49 or message[1] != pid:
        raise FrameError(f"not an answer to 09 {pid:02X}: {message.hex(' ')}")
    return message[2], message[3:]


def decode_vin(message: bytes, protocol: str) -> str:
    """The VIN of a 09 02 answer: 17 characters, padding removed."""
    _, data = mode09_payload(message, 0x02, protocol)
    text = bytes(b for b in data if 0x20 < b < 0x7F).decode("ascii")
    return text[-17:]


def decode_calibration_ids(message: bytes, protocol: str) -> list[str]:
    """Calibration ids of a 09 04 answer: 16 ASCII bytes each, NUL padded."""
    _, data = mode09_payload(message, 0x04, protocol)
    items = [data[i : i + 16] for i in range(0, len(data), 16)]
    return [item.rstrip(b"\x00").decode("ascii", "replace") for item in items if item.strip(b"\0")]


def decode_cvns(message: bytes, protocol: str) -> list[str]:
    """CVNs of a 09 06 answer: 4 bytes each, as 8 hex digits."""
    _, data = mode09_payload(message, 0x06, protocol)
    return [data[i : i + 4].hex().upper() for i in range(0, len(data) - 3, 4)]
