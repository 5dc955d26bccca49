"""FuLi FLB-100 opacimeter bytes in the instrument role.

From protocols.md §2.1 (the FLB-100 manual, S3 pp. 16-22):

- request ``DID (0x02) · LB · CMD · [data] · CS``; response ``ACK 0x06 | NAK 0x15 · LB ·
  CMD · [data] · CS``; LB the whole length including CS; CS the two's complement of the
  8-bit sum of every byte before it (``02 04 01 F9`` status, ack ``06 04 05 F1``);
- a wrong DID or checksum gets no answer, a bad command a bare 0x15;
- numbers are big-endian unsigned; K in hundredths of m⁻¹, N in tenths of %, the
  temperatures and engine speed whole.

Reply data by command: 0x01 three status bytes (byte 1 bits 0 steady-state mode, 1
warming up, 2 direct mode, 3 free-acceleration mode, 4 in menu, 5 free-acceleration data
valid, 6 steady-state measurement started, 7 auto trigger armed; byte 2 bit 3
acceleration in progress, bit 0 linearity-check mode: our choice); 0x02 K (2 bytes), N
(2), gas temperature (1), oil temperature (2), rpm (2); 0x03 Km, Nm, Tm, oil temperature
(2 bytes each); 0x04 ``00 00 00`` no result yet, ``0F`` running, or the K average and
the last four K (2 bytes each); 0x0D N (2); 0x0E K, rpm (2 each); 0x0F 100 N values and
the maximum rpm (2 bytes each, LB 0xCE); every other command an empty ack.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import neg_sum8

DID: Final = 0x02
ACK: Final = 0x06
NAK: Final = 0x15
MIN_LEN: Final = 4
MAX_LEN: Final = 0xCE

STATUS, REALTIME, STEADY_RESULT, FREE_ACCEL_RESULT = 0x01, 0x02, 0x03, 0x04
LINEARITY_ZERO, MODE_DIRECT, MODE_STEADY, MODE_FREE_ACCEL = 0x05, 0x06, 0x07, 0x08
STEADY_STOP, STEADY_START, FREE_ACCEL_TRIGGER = 0x09, 0x0A, 0x0B
LINEARITY_CHECK_MODE, READ_CHECK_VALUE = 0x0C, 0x0D
LAST_FREE_ACCEL, FREE_ACCEL_CURVE = 0x0E, 0x0F
COMMANDS: Final = frozenset(range(0x01, 0x10))

# status bits: byte 1 is bits 0-7, byte 2 bits 8-15
STEADY_MODE: Final = 1 << 0
WARMING_UP: Final = 1 << 1
DIRECT_MODE: Final = 1 << 2
FREE_ACCEL_MODE: Final = 1 << 3
FREE_ACCEL_DATA_VALID: Final = 1 << 5
STEADY_MEASURING: Final = 1 << 6
LINEARITY_CHECK: Final = 1 << 8  # byte 2 bit 0 (our choice)
ACCELERATING: Final = 1 << 11  # byte 2 bit 3


def frame(start: int, command: int, data: bytes = b"") -> bytes:
    """``start · LB · CMD · data · CS``."""
    body = bytes((start, len(data) + MIN_LEN, command)) + data
    return body + bytes((neg_sum8(body),))


def u16(*values: float) -> bytes:
    """Whole numbers as big-endian 2-byte fields (clipped to 0-65535)."""
    return b"".join(struct.pack(">H", min(0xFFFF, max(0, round(v)))) for v in values)


def ack(command: int) -> bytes:
    """An empty acknowledgement."""
    return frame(ACK, command)


def refusal(command: int | None = None) -> bytes:
    """The bare 0x15, or the framed NAK of ``command``."""
    return bytes((NAK,)) if command is None else frame(NAK, command)


def status(flags: int) -> bytes:
    """0x01: status bytes 1, 2 and a third, undocumented one (0)."""
    return frame(ACK, STATUS, bytes((flags & 0xFF, flags >> 8 & 0xFF, 0)))


def realtime(k_m1: float, n_pct: float, gas_c: int, oil_c: int, rpm: int) -> bytes:
    """0x02: K, N, gas temperature (one byte), oil temperature, engine speed."""
    gas = bytes((min(0xFF, max(0, gas_c)),))
    return frame(ACK, REALTIME, u16(k_m1 * 100, n_pct * 10) + gas + u16(oil_c, rpm))


def steady_result(k_m1: float, n_pct: float, gas_c: int, oil_c: int) -> bytes:
    """0x03: the maxima Km, Nm, Tm and the oil temperature."""
    return frame(ACK, STEADY_RESULT, u16(k_m1 * 100, n_pct * 10, gas_c, oil_c))


def free_accel_none() -> bytes:
    """0x04 before a result: ``06 07 04 00 00 00 EF``."""
    return frame(ACK, FREE_ACCEL_RESULT, bytes(3))


def free_accel_running() -> bytes:
    """0x04 during an acceleration: ``06 05 04 0F E2``."""
    return frame(ACK, FREE_ACCEL_RESULT, b"\x0f")


def free_accel_done(average_k: float, last_four_k: tuple[float, ...]) -> bytes:
    """0x04 with the K average and the last four K, oldest first."""
    return frame(ACK, FREE_ACCEL_RESULT, u16(*(k * 100 for k in (average_k, *last_four_k))))


def check_value(n_pct: float) -> bytes:
    """0x0D: the reference filter's N."""
    return frame(ACK, READ_CHECK_VALUE, u16(n_pct * 10))


def last_free_accel(k_m1: float, rpm: int) -> bytes:
    """0x0E: K and the engine speed of the last free acceleration."""
    return frame(ACK, LAST_FREE_ACCEL, u16(k_m1 * 100, rpm))


def free_accel_curve(n_pct: tuple[float, ...], max_rpm: int) -> bytes:
    """0x0F: the 100 N values of the last free acceleration and its maximum speed."""
    return frame(ACK, FREE_ACCEL_CURVE, u16(*(n * 10 for n in n_pct), max_rpm))


@dataclass(frozen=True, slots=True)
class Request:
    """A request with a valid checksum."""

    command: int
    data: bytes


def split_requests(buf: bytearray, did: int = DID) -> list[Request]:
    """The requests to ``did`` at the front of ``buf`` (removed). Bytes before a DID are
    noise; a DID whose LB is out of range, or whose frame fails its checksum, loses one
    byte (the instrument stays silent)."""
    requests: list[Request] = []
    while buf:
        if buf[0] != did:
            at = buf.find(bytes((did,)))
            del buf[: at if at > 0 else len(buf)]
            continue
        if len(buf) < 3:
            break
        length = buf[1]
        if not MIN_LEN <= length <= MAX_LEN:
            del buf[:1]
            continue
        if len(buf) < length:
            if _good_frame_inside(buf, did, length):
                del buf[:1]  # this one was cut short: a whole request follows
                continue
            break
        body = bytes(buf[: length - 1])
        if neg_sum8(body) != buf[length - 1]:
            del buf[:1]
            continue
        requests.append(Request(buf[2], body[3:]))
        del buf[:length]
    return requests


def _good_frame_inside(buf: bytearray, did: int, length: int) -> bool:
    """Whether a complete, checksum-valid request starts inside the first ``length``."""
    for i in range(1, min(len(buf), length)):
        size = buf[i + 1] if i + 1 < len(buf) else 0
        whole = buf[i] == did and size >= MIN_LEN and i + size <= len(buf)
        if whole and neg_sum8(bytes(buf[i : i + size - 1])) == buf[i + size - 1]:
            return True
    return False
