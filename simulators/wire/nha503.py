"""Nanhua NHA-503 family gas-analyser bytes in the analyser role ("分析仪通用协议").

From protocols.md §1.1 (source S1). The host sends one command byte; the analyser
answers with a reply whose shape depends only on the command. No start byte, no length.

- one byte: 0x06 accepted, 0x15 illegal; actions answer 0x00 ok, 0x01 failed, 0x05 in
  progress; the status command (0x26) a state byte;
- two bytes, big-endian, no checksum: warm-up seconds left (0x27), PEF x1000 (0x0D);
- records: byte 0 a header (0x06), big-endian 16-bit fields, signed where zero drift
  can go negative, last byte the plain 8-bit sum of all bytes before it (not negated):
  main data (0x81, old 0x01; 21 bytes) HC ppm, CO %/100, CO2 %/100, O2 %/100, NO ppm,
  engine speed r/min (unsigned), oil temperature °C/10, flow (unsigned, raw), one flags
  byte (bit 0 O2 cell aged, bit 1 NO cell aged), λ/100; 0x2C (23 bytes) the same with
  the checksum at byte 22, bytes 20-21 a status word whose byte 21 bit 6 says "water
  trap full"; ambient (0x02, 8 bytes) temperature °C/10, barometer kPa/10, RH %/10; the
  two-speed-idle result (0x88, 35 bytes) high-idle then low-idle block of HC, CO, CO2, O2,
  NO, r/min, oil °C/10, λ/100, one spare byte, the sum;
- span calibration (0x0A) and gas check (0x0C) answer 0x05 followed by HC, CO, CO2, O2,
  NO, PEF/1000 and a sum of those 13 bytes (0x05 included: our reading, S1 does not
  check it) while they run.

Two-phase commands: command byte -> 0x06 -> parameter block -> a result byte. Span and
check gas (0x09, 0x0B): 9 bytes, C3H8 ppm, CO x100, CO2 x100, NO ppm (unsigned) and their
sum; a wrong sum is answered 0x01. Sensor calibrations (0x1B, 0x1D-0x1F): the reference
value x10 (signed, 2 bytes), no checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import sum8

ACK: Final = 0x06
NAK: Final = 0x15
HEADER: Final = 0x06
OK, FAILED, IN_PROGRESS = 0x00, 0x01, 0x05

# command bytes
READ_DATA_OLD, READ_AMBIENT, AMBIENT_AIR, PUMP_ON = 0x01, 0x02, 0x03, 0x04
BACKFLUSH, PUMP_OFF, LEAK_CHECK, ZERO = 0x05, 0x06, 0x07, 0x08
WRITE_SPAN_GAS, SPAN_CALIBRATE, WRITE_CHECK_GAS, GAS_CHECK = 0x09, 0x0A, 0x0B, 0x0C
READ_PEF = 0x0D
CAL_AMBIENT_TEMP, CAL_OIL_TEMP, CAL_HUMIDITY, CAL_BAROMETER = 0x1B, 0x1D, 0x1E, 0x1F
READ_STATUS, READ_WARMUP = 0x26, 0x27
READ_DATA_NEW, READ_DATA, READ_TSI_RESULT = 0x2C, 0x81, 0x88
#: every command byte the analyser knows (protocols.md §1.1 command table)
COMMANDS: Final = frozenset(
    {*range(0x01, 0x1C), *range(0x1D, 0x22), *range(0x26, 0x2D), READ_DATA, READ_TSI_RESULT}
)
GAS_BLOCK_LEN: Final = 9
VALUE_BLOCK_LEN: Final = 2
#: two-phase command -> the length of its parameter block
PARAMETERS: Final = {
    WRITE_SPAN_GAS: GAS_BLOCK_LEN,
    WRITE_CHECK_GAS: GAS_BLOCK_LEN,
    CAL_AMBIENT_TEMP: VALUE_BLOCK_LEN,
    CAL_OIL_TEMP: VALUE_BLOCK_LEN,
    CAL_HUMIDITY: VALUE_BLOCK_LEN,
    CAL_BAROMETER: VALUE_BLOCK_LEN,
}

# status byte (0x26): 0-3 per protocols.md, 4-6 our choice (the document lists "...")
READY, MEASURING, WARMING_UP, STATUS_LEAK_CHECK = 0, 1, 2, 3
ZEROING, CALIBRATING, STATUS_BACKFLUSH = 4, 5, 6
WATER_TRAP_FULL: Final = 0x0040  # 0x2C word at bytes 20-21: byte 21 (its low byte), bit 6


def _clip(value: float, scale: int, signed: bool = True) -> int:
    low, high = (-0x8000, 0x7FFF) if signed else (0, 0xFFFF)
    return min(high, max(low, round(value * scale)))


def _s16(value: float, scale: int = 1) -> bytes:
    return struct.pack(">h", _clip(value, scale))


def _u16(value: float, scale: int = 1) -> bytes:
    return struct.pack(">H", _clip(value, scale, signed=False))


def with_sum(body: bytes) -> bytes:
    """``body`` and its 8-bit sum."""
    return body + bytes((sum8(body),))


def byte(code: int) -> bytes:
    """A one-byte reply (ACK, NAK, result, status)."""
    return bytes((code,))


def warmup_left(seconds: int) -> bytes:
    """0x27: warm-up seconds left."""
    return _u16(seconds)


def pef(value: float) -> bytes:
    """0x0D: the propane equivalence factor x1000."""
    return _s16(value, 1000)


@dataclass(frozen=True, slots=True)
class Gases:
    """The five gases as a record carries them."""

    hc_ppm: float
    co_pct: float
    co2_pct: float
    o2_pct: float
    no_ppm: float


def _gases(g: Gases) -> bytes:
    return (
        _s16(g.hc_ppm) + _s16(g.co_pct, 100) + _s16(g.co2_pct, 100) + _s16(g.o2_pct, 100)
    ) + _s16(g.no_ppm)


def main_data(
    gases: Gases,
    rpm: int,
    oil_c: float,
    flow: int,
    flags: int,
    lambda_: float,
    ext_status: int | None = None,
) -> bytes:
    """0x81 / 0x01 (21 bytes), or 0x2C (23 bytes) when ``ext_status`` is given."""
    body = bytes((HEADER,)) + _gases(gases) + _u16(rpm) + _s16(oil_c, 10) + _u16(flow)
    body += bytes((flags,)) + _s16(lambda_, 100)
    return with_sum(body if ext_status is None else body + _u16(ext_status))


def ambient(temperature_c: float, pressure_kpa: float, humidity_pct: float) -> bytes:
    """0x02 (8 bytes)."""
    fields = _s16(temperature_c, 10) + _s16(pressure_kpa, 10) + _s16(humidity_pct, 10)
    return with_sum(bytes((HEADER,)) + fields)


@dataclass(frozen=True, slots=True)
class IdleValues:
    """One engine speed of the two-speed-idle result."""

    gases: Gases
    rpm: int
    oil_c: float
    lambda_: float


def _idle(block: IdleValues) -> bytes:
    return _gases(block.gases) + _u16(block.rpm) + _s16(block.oil_c, 10) + _s16(block.lambda_, 100)


def tsi_result(high: IdleValues, low: IdleValues) -> bytes:
    """0x88 (35 bytes): high idle, low idle, a spare byte (0)."""
    return with_sum(bytes((HEADER,)) + _idle(high) + _idle(low) + b"\x00")


def progress(gases: Gases, pef_value: float) -> bytes:
    """0x05 and the bench readings while a span calibration or gas check runs (14 bytes)."""
    return with_sum(bytes((IN_PROGRESS,)) + _gases(gases) + _s16(pef_value, 1000))


@dataclass(frozen=True, slots=True)
class GasBlock:
    """The span or check gas written with 0x09 / 0x0B."""

    c3h8_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    no_ppm: int


@dataclass(frozen=True, slots=True)
class Command:
    """A command byte (``known`` False: the analyser NAKs it)."""

    code: int
    known: bool = True


@dataclass(frozen=True, slots=True)
class BadGasBlock:
    """A gas block whose sum failed."""


@dataclass(frozen=True, slots=True)
class Value:
    """A sensor-calibration reference value."""

    value: float


Request = Command | GasBlock | BadGasBlock | Value


class RequestReader:
    """Command bytes, and the parameter block the analyser asked for (``expect``)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.pending = 0  # length of the parameter block expected next (0: none)

    def feed(self, data: bytes) -> None:
        """Bytes from the host."""
        self.buf += data

    def expect(self, command: int) -> None:
        """The next bytes are ``command``'s parameter block."""
        self.pending = PARAMETERS[command]

    def cancel(self) -> None:
        """The host went quiet: forget the block and what came of it."""
        self.pending = 0
        self.buf.clear()

    def next(self) -> Request | None:
        """The next request, or None until more bytes arrive."""
        buf, size = self.buf, self.pending
        if size:
            if len(buf) < size:
                return None
            block = bytes(buf[:size])
            del buf[:size]
            self.pending = 0
            if size == VALUE_BLOCK_LEN:
                return Value(struct.unpack(">h", block)[0] / 10)
            if sum8(block[:-1]) != block[-1]:
                return BadGasBlock()
            c3h8, co, co2, no = struct.unpack(">4H", block[:-1])
            return GasBlock(c3h8, co / 100, co2 / 100, no)
        if not buf:
            return None
        code = buf.pop(0)
        return Command(code, code in COMMANDS)
