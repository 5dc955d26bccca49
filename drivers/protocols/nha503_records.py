"""Nanhua NHA-503 family: the typed messages and their byte layouts (pure, no framing).

``drivers.protocols.nha503`` frames and unframes these; this module says what the bytes
of each record mean (protocols.md §1.1 tables, offsets confirmed against S1's reader).
Layouts are data: each is a list of (field, struct code, scale) with the wire value =
value × scale, big-endian, ``h`` signed (zero drift can make gases negative), ``H``
unsigned, ``B`` one byte. Records end with ``sum8`` of all preceding bytes.

Main data (0x81 / old 0x01, 21 bytes): header, HC ppm, CO %×100, CO2 %×100, O2 %×100,
NO ppm, rpm (unsigned), oil °C×10, flow (raw, unsigned), flags (bit0 O2 cell aged, bit1
NO cell aged), λ×100, sum8. 0x2C (23 bytes) inserts a 16-bit extended status before the
checksum, whose byte 21 bit 6 is "water trap full"; its other bits are kept raw.
Ambient (0x02, 8 bytes): header, ambient °C×10, barometer kPa×10, RH %×10, sum8.
Two-speed idle (0x88, 35 bytes): header, high-idle then low-idle block (HC, CO, CO2, O2,
NO, rpm, oil °C×10, λ×100 each), one undocumented byte (kept raw), sum8.
Calibration progress (after a 0x05 of 0x0A/0x0C, 14 bytes): 0x05, HC, CO, CO2, O2, NO,
PEF×1000, sum8 (our reading: S1 does not check it). PEF (0x0D): int16 ×1000, no checksum.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Any, Final

from drivers.checksums import sum8
from drivers.errors import LocalProtocolError

ACK: Final = 0x06
NAK: Final = 0x15
HEADER: Final = 0x06  # byte 0 of the records our simulator sends (also SV-5Q's header)
IN_PROGRESS: Final = 0x05


class ResultCode(enum.IntEnum):
    """Result byte of actions and parameter blocks."""

    OK = 0x00
    FAILED = 0x01  # leak found, zero/calibration failed, parameter checksum error
    IN_PROGRESS = 0x05
    IN_PROGRESS_ALT = 0x06  # some firmware answers 0x06 while a leak check runs


class AnalyserStatus(enum.IntEnum):
    """Status byte (0x26). 0-3 per protocols.md; 4-6 are our choice (the doc says "…")."""

    READY = 0  # pump off
    MEASURING = 1  # pump on
    WARMING_UP = 2
    LEAK_CHECK = 3
    ZEROING = 4
    CALIBRATING = 5  # span calibration or gas check
    BACKFLUSH = 6
    UNKNOWN = 0xFF  # any other code

    @classmethod
    def _missing_(cls, value: object) -> AnalyserStatus:
        return cls.UNKNOWN


@dataclass(frozen=True, slots=True)
class Ack:
    """0x06: command accepted."""


@dataclass(frozen=True, slots=True)
class Nak:
    """0x15: illegal or refused command."""


@dataclass(frozen=True, slots=True)
class Result:
    """Result byte of an action or a parameter block."""

    code: ResultCode


@dataclass(frozen=True, slots=True)
class Status:
    """Raw status byte (0x26); ``AnalyserStatus(code)`` names it."""

    code: int


@dataclass(frozen=True, slots=True)
class WarmupTime:
    """Warm-up time left (0x27), seconds."""

    seconds: int


@dataclass(frozen=True, slots=True)
class Pef:
    """Propane equivalence factor (0x0D)."""

    value: float


@dataclass(frozen=True, slots=True)
class MainData:
    """Main data record: 0x81/0x01 (21 bytes) or 0x2C (23 bytes, ``ext_status`` set)."""

    hc_ppm: int  # hexane equivalent
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    no_ppm: int
    engine_speed_rpm: int
    oil_temp_c: float
    flow_raw: int
    flags: int
    lambda_: float
    ext_status: int | None = None
    header: int = HEADER

    @property
    def o2_sensor_aged(self) -> bool:
        """The O2 cell needs replacing (flags bit 0)."""
        return bool(self.flags & 0x01)

    @property
    def no_sensor_aged(self) -> bool:
        """The NO cell needs replacing (flags bit 1)."""
        return bool(self.flags & 0x02)

    @property
    def water_trap_full(self) -> bool | None:
        """Water trap full (0x2C only: bit 6 of byte 21)."""
        return None if self.ext_status is None else bool(self.ext_status & 0x0040)


@dataclass(frozen=True, slots=True)
class Ambient:
    """Ambient record (0x02)."""

    temperature_c: float
    pressure_kpa: float
    humidity_pct: float
    header: int = HEADER


@dataclass(frozen=True, slots=True)
class IdleBlock:
    """One engine speed of the two-speed-idle result."""

    hc_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    no_ppm: int
    engine_speed_rpm: int
    oil_temp_c: float
    lambda_: float


@dataclass(frozen=True, slots=True)
class TwoSpeedIdleResult:
    """0x88 record."""

    high_idle: IdleBlock
    low_idle: IdleBlock
    reserved: int = 0
    header: int = HEADER


@dataclass(frozen=True, slots=True)
class CalibrationProgress:
    """What the bench reads while a span calibration or gas check runs."""

    hc_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    o2_pct_vol: float
    no_ppm: int
    pef: float


@dataclass(frozen=True, slots=True)
class GasBlock:
    """Span or check gas concentrations (parameter block of 0x09/0x0B)."""

    c3h8_ppm: int
    co_pct_vol: float
    co2_pct_vol: float
    no_ppm: int


@dataclass(frozen=True, slots=True)
class ValueBlock:
    """Reference value of a sensor calibration (parameter block of 0x1B, 0x1D-0x1F)."""

    value: float


Reply = (
    Ack
    | Nak
    | Result
    | Status
    | WarmupTime
    | Pef
    | MainData
    | Ambient
    | TwoSpeedIdleResult
    | CalibrationProgress
)


class Layout:
    """A fixed big-endian field layout: (attribute, struct code, scale) per field."""

    def __init__(self, *fields: tuple[str, str, int]) -> None:
        self.fields = fields
        self.struct = struct.Struct(">" + "".join(code for _, code, _ in fields))
        self.size = self.struct.size

    def unpack(self, data: bytes, offset: int = 0) -> dict[str, Any]:
        """Field values by attribute name, scaled (ints stay ints at scale 1)."""
        raw = self.struct.unpack_from(data, offset)
        return {
            name: value / scale if scale != 1 else value
            for (name, _, scale), value in zip(self.fields, raw, strict=True)
        }

    def pack(self, item: object) -> bytes:
        """The wire bytes of ``item``'s fields; ``LocalProtocolError`` when out of range."""
        values = [round(getattr(item, name) * scale) for name, _, scale in self.fields]
        try:
            return self.struct.pack(*values)
        except struct.error as exc:
            raise LocalProtocolError(f"{type(item).__name__}: {exc}") from None


_GASES: Final = (("co_pct_vol", "h", 100), ("co2_pct_vol", "h", 100), ("o2_pct_vol", "h", 100))
MAIN: Final = Layout(
    ("header", "B", 1),
    ("hc_ppm", "h", 1),
    *_GASES,
    ("no_ppm", "h", 1),
    ("engine_speed_rpm", "H", 1),
    ("oil_temp_c", "h", 10),
    ("flow_raw", "H", 1),
    ("flags", "B", 1),
    ("lambda_", "h", 100),
)
EXT_STATUS: Final = Layout(("ext_status", "H", 1))
AMBIENT: Final = Layout(
    ("header", "B", 1),
    ("temperature_c", "h", 10),
    ("pressure_kpa", "h", 10),
    ("humidity_pct", "h", 10),
)
IDLE: Final = Layout(
    ("hc_ppm", "h", 1),
    *_GASES,
    ("no_ppm", "h", 1),
    ("engine_speed_rpm", "H", 1),
    ("oil_temp_c", "h", 10),
    ("lambda_", "h", 100),
)
PROGRESS: Final = Layout(("hc_ppm", "h", 1), *_GASES, ("no_ppm", "h", 1), ("pef", "h", 1000))
GAS_BLOCK: Final = Layout(
    ("c3h8_ppm", "H", 1), ("co_pct_vol", "H", 100), ("co2_pct_vol", "H", 100), ("no_ppm", "H", 1)
)
VALUE_BLOCK: Final = Layout(("value", "h", 10))
WARMUP: Final = Layout(("seconds", "H", 1))
PEF: Final = Layout(("value", "h", 1000))
_BYTE: Final = Layout(("code", "B", 1))

MAIN_LEN: Final = MAIN.size + 1
MAIN_NEW_LEN: Final = MAIN_LEN + EXT_STATUS.size
AMBIENT_LEN: Final = AMBIENT.size + 1
TSI_LEN: Final = 1 + 2 * IDLE.size + 2
PROGRESS_LEN: Final = 1 + PROGRESS.size + 1
GAS_BLOCK_LEN: Final = GAS_BLOCK.size + 1


def with_sum8(body: bytes) -> bytes:
    """``body`` followed by its 8-bit sum."""
    return body + bytes((sum8(body),))


def parse_main(frame: bytes) -> MainData:
    """A checked 21- or 23-byte main data frame."""
    ext = EXT_STATUS.unpack(frame, MAIN.size) if len(frame) == MAIN_NEW_LEN else {}
    return MainData(**MAIN.unpack(frame), **ext)


def parse_ambient(frame: bytes) -> Ambient:
    """A checked ambient frame."""
    return Ambient(**AMBIENT.unpack(frame))


def parse_tsi(frame: bytes) -> TwoSpeedIdleResult:
    """A checked two-speed-idle frame."""
    high = IdleBlock(**IDLE.unpack(frame, 1))
    low = IdleBlock(**IDLE.unpack(frame, 1 + IDLE.size))
    return TwoSpeedIdleResult(high, low, frame[-2], frame[0])


def parse_progress(frame: bytes) -> CalibrationProgress:
    """A checked 14-byte progress frame (0x05 first)."""
    return CalibrationProgress(**PROGRESS.unpack(frame, 1))


def parse_warmup(frame: bytes) -> WarmupTime:
    """The two bytes of 0x27."""
    return WarmupTime(**WARMUP.unpack(frame))


def parse_pef(frame: bytes) -> Pef:
    """The two bytes of 0x0D."""
    return Pef(**PEF.unpack(frame))


def parse_gas_block(block: bytes) -> GasBlock:
    """A checked 9-byte gas block."""
    return GasBlock(**GAS_BLOCK.unpack(block))


def parse_value_block(block: bytes) -> ValueBlock:
    """The two bytes of a sensor calibration value."""
    return ValueBlock(**VALUE_BLOCK.unpack(block))


def encode_gas_block(block: GasBlock) -> bytes:
    """The 9-byte parameter block of 0x09/0x0B."""
    return with_sum8(GAS_BLOCK.pack(block))


def encode_value_block(value: float) -> bytes:
    """The 2-byte parameter block of a sensor calibration (value ×10)."""
    return VALUE_BLOCK.pack(ValueBlock(value))


def encode_reply(reply: Reply) -> bytes:
    """The bytes the analyser sends for ``reply``."""
    match reply:
        case Ack():
            return bytes((ACK,))
        case Nak():
            return bytes((NAK,))
        case Result() | Status():
            return _BYTE.pack(reply)
        case WarmupTime():
            return WARMUP.pack(reply)
        case Pef():
            return PEF.pack(reply)
        case MainData():
            ext = b"" if reply.ext_status is None else EXT_STATUS.pack(reply)
            return with_sum8(MAIN.pack(reply) + ext)
        case Ambient():
            return with_sum8(AMBIENT.pack(reply))
        case TwoSpeedIdleResult(high, low, reserved, header):
            blocks = IDLE.pack(high) + IDLE.pack(low)
            return with_sum8(_BYTE.pack(Status(header)) + blocks + _BYTE.pack(Status(reserved)))
        case CalibrationProgress():
            return with_sum8(bytes((IN_PROGRESS,)) + PROGRESS.pack(reply))
    raise LocalProtocolError(f"not an NHA-503 reply: {reply!r}")
