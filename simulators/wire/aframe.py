"""Jiangxing "A-frame" bytes in the device role (JXGT2 brake tester, TLCH-10 speed tester).

From protocols.md §5.1 (source S4): every frame is ``'A' (0x41) · LEN · CMD · data · CS``,
LEN the whole frame length including CS, CS the two's complement of the 8-bit sum of
all bytes before it, data ASCII digits. Requests are 4 bytes (``41 04 63 58`` lifts the
rollers' lift up). What the device sends, by length:

- 4: the request echoed, as its acknowledgement;
- 12, CMD 0x66: a brake sample, left force at offsets 3-6, right force at 7-10, four
  ASCII digits each; the test's last frame carries 'E' at offsets 2, 6 and 10 (we fill
  2-10 with 'E');
- 15, CMD 0x68: speed, current 3-7, latched 8-12 (five characters, km/h with one
  decimal, e.g. ``040.5``), offset 13 'a' when latched (else a space);
- 20, CMD 0x6B: brake result, max left 3-6, max right 7-10, left and right at the
  moment of the largest difference 11-14, 15-18;
- 20, CMD 0x68: weighing, offsets 3-10 '0', left and right wheel load (kg) 11-14, 15-18.

Negative numbers are written ``-012`` (the field keeps its width). The NAK is a bare
0x15 (the family convention; S4 documents none).
"""

from __future__ import annotations

from typing import Final

from drivers.checksums import neg_sum8

START: Final = 0x41  # 'A'
NAK: Final = 0x15
REQUEST_LEN: Final = 4
END_MARK: Final = 0x45  # 'E'

ZERO: Final = 0x62
LIFT_UP: Final = 0x63
LIFT_DOWN: Final = 0x64
START_TEST: Final = 0x66  # brake: start test; speed: clear / start
LOCK_WEIGHT: Final = 0x67
READ: Final = 0x68  # brake: weigh; speed: read speed
GET_RESULT: Final = 0x6B
TESTER_RAISE: Final = 0x70
TESTER_LOWER: Final = 0x71
#: what each model answers (anything else is NAKed)
JXGT2_COMMANDS: Final = frozenset(
    {ZERO, LIFT_UP, LIFT_DOWN, START_TEST, READ, GET_RESULT, TESTER_RAISE, TESTER_LOWER}
)
TLCH10_COMMANDS: Final = frozenset({LIFT_UP, LIFT_DOWN, START_TEST, READ})
#: a request whose checksum failed (the device NAKs it)
BAD_CHECKSUM: Final = -1


def frame(command: int, data: bytes = b"") -> bytes:
    """``'A' · LEN · CMD · data · CS``."""
    body = bytes((START, len(data) + 4, command)) + data
    return body + bytes((neg_sum8(body),))


def digits(value: int, width: int = 4) -> bytes:
    """An integer field: zero-padded, ``-012`` when negative."""
    return f"{value:0{width}d}".encode("ascii")


def ack(command: int) -> bytes:
    """The 4-byte echo of ``command``."""
    return frame(command)


def force_sample(left: int, right: int) -> bytes:
    """A 12-byte brake sample (forces in the device's unit)."""
    return frame(START_TEST, digits(left) + digits(right))


def stream_end() -> bytes:
    """The frame that closes a brake stream: 'E' at offsets 2 to 10."""
    return frame(END_MARK, bytes((END_MARK,)) * 8)


def brake_result(max_left: int, max_right: int, diff_left: int, diff_right: int) -> bytes:
    """The 20-byte result of a brake test."""
    fields = (max_left, max_right, diff_left, diff_right)
    return frame(GET_RESULT, b"".join(digits(value) for value in fields))


def wheel_loads(left_kg: int, right_kg: int) -> bytes:
    """The 20-byte weighing frame."""
    return frame(READ, b"0" * 8 + digits(left_kg) + digits(right_kg))


def speed(current_kmh: float, latched_kmh: float, latched: bool) -> bytes:
    """The 15-byte speed frame."""
    data = f"{current_kmh:05.1f}{latched_kmh:05.1f}".encode("ascii")
    return frame(READ, data + (b"a" if latched else b" "))


def split_requests(buf: bytearray) -> list[int]:
    """The requests at the front of ``buf`` (removed): their command bytes, or
    ``BAD_CHECKSUM``. Noise before an 'A', and a 4-byte window that is no request (a
    wrong length byte, or an 'A' inside it: it was cut), are skipped up to the next 'A'."""
    requests: list[int] = []
    while buf:
        if buf[0] != START:
            at = buf.find(bytes((START,)))
            del buf[: at if at > 0 else len(buf)]
            continue
        if len(buf) >= 2 and buf[1] != REQUEST_LEN:
            _skip_to_next_start(buf)
            continue
        if START in buf[1 : min(len(buf), REQUEST_LEN - 1)]:
            _skip_to_next_start(buf)
            continue
        if len(buf) < REQUEST_LEN:
            break
        if neg_sum8(bytes(buf[:3])) != buf[3]:
            requests.append(BAD_CHECKSUM)
            _skip_to_next_start(buf)
            continue
        requests.append(buf[2])
        del buf[:REQUEST_LEN]
    return requests


def _skip_to_next_start(buf: bytearray) -> None:
    at = buf.find(bytes((START,)), 1)
    del buf[: at if at > 0 else len(buf)]
