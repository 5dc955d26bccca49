"""Mingquan MQD-6A headlamp-tester bytes in the tester role.

From protocols.md §4.1 (sources S4, S6):

- PC -> tester, 6 bytes: ``02 · 01 (address) · 32 ('2', device) · class · sub-command · CS``;
- tester -> PC event, 5 bytes: ``02 · 32 · class · code · CS``;
- CS: the two's complement of the 8-bit sum of every byte before it, STX included
  (measure in place ``02 01 32 54 51 26``, "main high beam done" ``02 32 54 4F 29``);
- a lamp record, 18 ASCII bytes: horizontal offset (5), vertical offset (5), intensity
  in hundreds of cd (4 digits), lamp height in mm (4 digits); all '0' = not measured;
- the 112-byte dump (answer to G 0x4F): 2 header bytes, the left main high, left aux
  high, left low records, one separator byte, the right ones, so that the right block
  starts at offset 57; with S6's per-side packet ``02 · 'L'|'R' · records · CS`` the
  header is ``02 'L'``, the separator 'R' and the last byte a CS of the 111 before it;
- the answer to G 0x4C / 0x4D (S6): ``02 · 'L'|'R' · high record · low record · CS``.

Offsets are written ``+12.3`` below 100 and ``+0123`` up to 9999 (the field's 5
characters). The NAK byte 0x15 and the status answer to T 0x6F (an event with code
0x30 ready at home, 0x31 busy, 0x32 ready away from home) are our choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from drivers.checksums import neg_sum8

STX: Final = 0x02
NAK: Final = 0x15
ADDRESS: Final = 0x01
DEVICE: Final = 0x32
REQUEST_LEN: Final = 6
RECORD_LEN: Final = 18
LEFT, RIGHT = 0x4C, 0x52  # 'L', 'R'
MEASURE, GET, MOTION, SETTING, ERROR = 0x54, 0x47, 0x4D, 0x53, 0x45  # 'T' 'G' 'M' 'S' 'E'

# requests (class, sub-command)
MEASURE_IN_PLACE: Final = (MEASURE, 0x51)
MEASURE_FULL_TRAVEL: Final = (MEASURE, 0x52)
MEASURE_ONE_LAMP: Final = (MEASURE, 0x5B)
MEASURE_LEFT: Final = (MEASURE, 0x07)
MEASURE_RIGHT: Final = (MEASURE, 0x40)
RIGHT_ONLY: Final = (MEASURE, 0x59)
LEFT_ONLY: Final = (MEASURE, 0x5A)
LEAVE_ADJUST: Final = (MEASURE, 0x53)
LEAVE_MEASURING: Final = (MEASURE, 0x54)
GET_STATUS: Final = (MEASURE, 0x6F)
GET_LEFT_MAIN: Final = (GET, 0x4C)
GET_RIGHT_MAIN: Final = (GET, 0x4D)
GET_ALL: Final = (GET, 0x4F)
HOME: Final = (MOTION, 0x47)
STOP: Final = (MOTION, 0x3E)
FOUR_LAMPS: Final = (SETTING, 0x31)
TWO_LAMPS: Final = (SETTING, 0x32)
HIGH_ONLY: Final = (SETTING, 0x33)
LOW_ONLY: Final = (SETTING, 0x34)
HIGH_AND_LOW: Final = (SETTING, 0x35)
HIGH_FIRST: Final = (SETTING, 0x71)
LOW_FIRST: Final = (SETTING, 0x72)
#: every request the tester knows (S4's table; the rest is NAKed)
KNOWN: Final = frozenset(
    {
        MEASURE_IN_PLACE, MEASURE_FULL_TRAVEL, MEASURE_ONE_LAMP, MEASURE_LEFT, MEASURE_RIGHT,
        RIGHT_ONLY, LEFT_ONLY, LEAVE_ADJUST, LEAVE_MEASURING, GET_STATUS,
        (GET, 0x4A), (GET, 0x4B), GET_LEFT_MAIN, GET_RIGHT_MAIN, (GET, 0x4E), GET_ALL,
        HOME, STOP, FOUR_LAMPS, TWO_LAMPS, HIGH_ONLY, LOW_ONLY, HIGH_AND_LOW, HIGH_FIRST,
        LOW_FIRST, (SETTING, 0x60), (SETTING, 0x61), (SETTING, 0x62), (SETTING, 0x63),
    }
)  # fmt: skip

# events (class, code)
MAIN_HIGH_DONE: Final = (MEASURE, 0x4F)
AUX_HIGH_DONE: Final = (MEASURE, 0x4E)
LOW_DONE: Final = (MEASURE, 0x4D)
HOMED: Final = (MEASURE, 0x40)
NO_LAMP: Final = (ERROR, 0x13)
MEASURE_ERROR: Final = (ERROR, 0x14)
STATUS_CODES: Final = {"ready_home": 0x30, "busy": 0x31, "ready_away": 0x32}


@dataclass(frozen=True, slots=True)
class Beam:
    """One measured beam in the tester's units."""

    horizontal_offset: float
    vertical_offset: float
    intensity_cd: int
    height_mm: int


def _with_cs(body: bytes) -> bytes:
    return body + bytes((neg_sum8(body),))


def event(kind: tuple[int, int]) -> bytes:
    """The 5-byte event (class, code)."""
    return _with_cs(bytes((STX, DEVICE, *kind)))


def request(kind: tuple[int, int], address: int = ADDRESS) -> bytes:
    """The 6-byte request (class, sub-command); the PC's side, for tests and tools."""
    return _with_cs(bytes((STX, address, DEVICE, *kind)))


def offset_field(value: float) -> bytes:
    """A signed offset in 5 characters."""
    text = f"{value:+05.1f}" if -99.95 < value < 99.95 else f"{round(value):+05d}"
    return text.encode("ascii")


def record(beam: Beam | None) -> bytes:
    """The 18 ASCII bytes of a beam ('0' x 18 when not measured)."""
    if beam is None:
        return b"0" * RECORD_LEN
    hundreds, height = round(beam.intensity_cd / 100), beam.height_mm
    return (
        offset_field(beam.horizontal_offset)
        + offset_field(beam.vertical_offset)
        + f"{hundreds:04d}{height:04d}".encode("ascii")
    )


def dump(beams: list[Beam | None]) -> bytes:
    """The 112-byte answer to G 0x4F: six beams, left main high ... right low."""
    left = b"".join(record(beam) for beam in beams[:3])
    right = b"".join(record(beam) for beam in beams[3:6])
    return _with_cs(bytes((STX, LEFT)) + left + bytes((RIGHT,)) + right)


def main_lamp(side: str, high: Beam | None, low: Beam | None) -> bytes:
    """The 39-byte answer to G 0x4C (left) / 0x4D (right)."""
    mark = LEFT if side == "left" else RIGHT
    return _with_cs(bytes((STX, mark)) + record(high) + record(low))


@dataclass(frozen=True, slots=True)
class Request:
    """A request as received; ``checksum_ok`` False when its CS failed."""

    address: int
    kind: tuple[int, int]
    checksum_ok: bool = True


def split_requests(buf: bytearray) -> list[Request]:
    """The requests at the front of ``buf`` (removed). Noise and frames that are not for
    a headlamp tester (device byte other than '2') are skipped up to the next STX."""
    requests: list[Request] = []
    while buf:
        if buf[0] != STX:
            at = buf.find(bytes((STX,)))
            del buf[: at if at > 0 else len(buf)]
            continue
        if len(buf) >= 3 and buf[2] != DEVICE:
            _skip_to_next_stx(buf)
            continue
        if len(buf) < REQUEST_LEN:
            break
        frame = bytes(buf[:REQUEST_LEN])
        if neg_sum8(frame[:5]) != frame[5]:
            requests.append(Request(frame[1], (frame[3], frame[4]), checksum_ok=False))
            _skip_to_next_stx(buf)
            continue
        requests.append(Request(frame[1], (frame[3], frame[4])))
        del buf[:REQUEST_LEN]
    return requests


def _skip_to_next_stx(buf: bytearray) -> None:
    at = buf.find(bytes((STX,)), 1)
    del buf[: at if at > 0 else len(buf)]
