"""FuLi FLB-100 opacimeter: the typed messages and their byte layouts (pure, no framing hunt).

``drivers.protocols.flb100`` finds frames in the byte stream; this module builds frames
and says what their data bytes mean (the layouts are listed in that module's docstring).
Multi-byte numbers are big-endian unsigned; K is carried ×100, N ×10, temperatures and
engine speed as integers.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from drivers.checksums import neg_sum8
from drivers.errors import LocalProtocolError

DID: Final = 0x02  # device id of the FLB-100
ACK: Final = 0x06
NAK: Final = 0x15
MIN_LEN: Final = 4
MAX_LEN: Final = 0xCE  # the 0x0F curve reply
CURVE_POINTS: Final = 100
RESULT_K_COUNT: Final = 4  # K values in a free-acceleration result
_RUNNING_MARK: Final = 0x0F


class Command(enum.IntEnum):
    """Command bytes (manual's table)."""

    STATUS = 0x01
    REALTIME = 0x02
    STEADY_RESULT = 0x03
    FREE_ACCEL_RESULT = 0x04
    LINEARITY_ZERO = 0x05  # linearity correction (zero)
    MODE_DIRECT = 0x06
    MODE_STEADY = 0x07
    MODE_FREE_ACCEL = 0x08
    STEADY_STOP = 0x09
    STEADY_START = 0x0A
    FREE_ACCEL_TRIGGER = 0x0B
    LINEARITY_CHECK_MODE = 0x0C
    READ_CHECK_VALUE = 0x0D
    LAST_FREE_ACCEL = 0x0E
    FREE_ACCEL_CURVE = 0x0F


class StatusFlags(enum.IntFlag):
    """Status bytes 1 (bits 0-7) and 2 (bits 8-15) of the 0x01 reply."""

    STEADY_MODE = 1 << 0
    WARMING_UP = 1 << 1
    DIRECT_MODE = 1 << 2
    FREE_ACCEL_MODE = 1 << 3
    IN_MENU = 1 << 4
    FREE_ACCEL_DATA_VALID = 1 << 5
    STEADY_MEASURING = 1 << 6
    AUTO_TRIGGER_ARMED = 1 << 7
    LINEARITY_CHECK_MODE = 1 << 8  # byte 2 bit 0: our choice
    ACCELERATING = 1 << 11  # byte 2 bit 3


class FreeAccelState(enum.Enum):
    """What a 0x04 reply says."""

    NONE = "none"  # no result yet
    RUNNING = "running"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Ack:
    """Command accepted (LB 4)."""

    command: Command


@dataclass(frozen=True, slots=True)
class Nak:
    """Refused: framed (``command`` set) or the bare 0x15 (``command`` None)."""

    command: Command | None = None


@dataclass(frozen=True, slots=True)
class StatusReply:
    """0x01: the flags and the undocumented third byte."""

    flags: StatusFlags
    byte3: int = 0


@dataclass(frozen=True, slots=True)
class Realtime:
    """0x02: real-time values."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int
    engine_speed_rpm: int


@dataclass(frozen=True, slots=True)
class SteadyResult:
    """0x03: maxima of the last steady-state measurement."""

    k_m1: float
    n_pct: float
    gas_temp_c: int
    oil_temp_c: int


@dataclass(frozen=True, slots=True)
class FreeAccelReply:
    """0x04: no result yet, running, or the K average and the last four K (oldest first)."""

    state: FreeAccelState
    k_avg_m1: float = 0.0
    k_values_m1: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class CheckValue:
    """0x0D: opacity read in linearity-check mode."""

    n_pct: float


@dataclass(frozen=True, slots=True)
class LastFreeAccel:
    """0x0E: main data of the last free acceleration."""

    k_m1: float
    engine_speed_rpm: int


@dataclass(frozen=True, slots=True)
class FreeAccelCurve:
    """0x0F: opacity curve of the last free acceleration and its maximum speed."""

    n_pct: tuple[float, ...]
    max_rpm: int


Response = (
    Ack
    | Nak
    | StatusReply
    | Realtime
    | SteadyResult
    | FreeAccelReply
    | CheckValue
    | LastFreeAccel
    | FreeAccelCurve
)


@dataclass(frozen=True, slots=True)
class Request:
    """A request frame; ``cmd`` is raw so that the device can NAK unknown ones."""

    cmd: int
    data: bytes = b""
    did: int = DID

    @property
    def command(self) -> Command | None:
        """The command, or None if the byte is not in the table."""
        return Command(self.cmd) if self.cmd in _COMMAND_CODES else None


_REALTIME: Final = struct.Struct(">HHBHH")
_STEADY: Final = struct.Struct(">4H")
_RESULT: Final = struct.Struct(f">{1 + RESULT_K_COUNT}H")
_CURVE: Final = struct.Struct(f">{CURVE_POINTS + 1}H")
_U16: Final = struct.Struct(">H")
_U16X2: Final = struct.Struct(">2H")


def _frame_len(data_len: int) -> int:
    return data_len + MIN_LEN


#: Reply LB values each command allows (the command table, as data).
COMMANDS: Final[dict[Command, frozenset[int]]] = {
    command: frozenset({MIN_LEN}) for command in Command
} | {
    Command.STATUS: frozenset({_frame_len(3)}),
    Command.REALTIME: frozenset({_frame_len(_REALTIME.size)}),
    Command.STEADY_RESULT: frozenset({_frame_len(_STEADY.size)}),
    Command.FREE_ACCEL_RESULT: frozenset({_frame_len(1), _frame_len(3), _frame_len(_RESULT.size)}),
    Command.READ_CHECK_VALUE: frozenset({_frame_len(_U16.size)}),
    Command.LAST_FREE_ACCEL: frozenset({_frame_len(_U16X2.size)}),
    Command.FREE_ACCEL_CURVE: frozenset({_frame_len(_CURVE.size)}),
}
_COMMAND_CODES: Final = frozenset(Command)


def build_frame(start: int, cmd: int, data: bytes = b"") -> bytes:
    """A frame: start byte, LB, CMD, data, ``neg_sum8``."""
    if len(data) + MIN_LEN > MAX_LEN:
        raise LocalProtocolError(f"frame of {len(data)} data bytes is too long")
    body = bytes((start, len(data) + MIN_LEN, cmd)) + data
    return body + bytes((neg_sum8(body),))


def _pack(layout: struct.Struct, *values: float) -> bytes:
    try:
        return layout.pack(*(round(value) for value in values))
    except struct.error as exc:
        raise LocalProtocolError(f"value out of range for the wire format: {exc}") from None


def _free_accel_data(reply: FreeAccelReply) -> bytes:
    if reply.state is FreeAccelState.NONE:
        return bytes(3)
    if reply.state is FreeAccelState.RUNNING:
        return bytes((_RUNNING_MARK,))
    if len(reply.k_values_m1) != RESULT_K_COUNT:
        raise LocalProtocolError(f"a result carries {RESULT_K_COUNT} K values")
    return _pack(_RESULT, *(k * 100 for k in (reply.k_avg_m1, *reply.k_values_m1)))


def encode_response(response: Response) -> bytes:
    """The bytes the instrument sends for ``response``."""
    match response:
        case Ack(command):
            return build_frame(ACK, command)
        case Nak(None):
            return bytes((NAK,))
        case Nak(Command() as command):
            return build_frame(NAK, command)
        case StatusReply(flags, byte3):
            return build_frame(ACK, Command.STATUS, bytes((flags & 0xFF, flags >> 8, byte3)))
        case Realtime(k, n, gas_t, oil_t, rpm):
            data = _pack(_REALTIME, k * 100, n * 10, gas_t, oil_t, rpm)
            return build_frame(ACK, Command.REALTIME, data)
        case SteadyResult(k, n, gas_t, oil_t):
            return build_frame(
                ACK, Command.STEADY_RESULT, _pack(_STEADY, k * 100, n * 10, gas_t, oil_t)
            )
        case FreeAccelReply():
            return build_frame(ACK, Command.FREE_ACCEL_RESULT, _free_accel_data(response))
        case CheckValue(n):
            return build_frame(ACK, Command.READ_CHECK_VALUE, _pack(_U16, n * 10))
        case LastFreeAccel(k, rpm):
            return build_frame(ACK, Command.LAST_FREE_ACCEL, _pack(_U16X2, k * 100, rpm))
        case FreeAccelCurve(n_values, max_rpm):
            if len(n_values) != CURVE_POINTS:
                raise LocalProtocolError(f"a curve has {CURVE_POINTS} points")
            data = _pack(_CURVE, *(n * 10 for n in n_values), max_rpm)
            return build_frame(ACK, Command.FREE_ACCEL_CURVE, data)
    raise LocalProtocolError(f"not an FLB-100 response: {response!r}")


def _parse_free_accel(data: bytes) -> FreeAccelReply:
    if len(data) == 1:
        return FreeAccelReply(FreeAccelState.RUNNING)
    if len(data) == 3:
        return FreeAccelReply(FreeAccelState.NONE)
    k_avg, *k_values = (raw / 100 for raw in _RESULT.unpack(data))
    return FreeAccelReply(FreeAccelState.DONE, k_avg, tuple(k_values))


def parse_response(frame: bytes) -> Response:
    """The message of a checked frame whose LB the table allows for its CMD."""
    command, data = Command(frame[2]), frame[3:-1]
    if frame[0] == NAK:
        return Nak(command)
    match command:
        case Command.STATUS:
            return StatusReply(StatusFlags(data[0] | data[1] << 8), data[2])
        case Command.REALTIME:
            k, n, gas_t, oil_t, rpm = _REALTIME.unpack(data)
            return Realtime(k / 100, n / 10, gas_t, oil_t, rpm)
        case Command.STEADY_RESULT:
            k, n, gas_t, oil_t = _STEADY.unpack(data)
            return SteadyResult(k / 100, n / 10, gas_t, oil_t)
        case Command.FREE_ACCEL_RESULT:
            return _parse_free_accel(data)
        case Command.READ_CHECK_VALUE:
            return CheckValue(_U16.unpack(data)[0] / 10)
        case Command.LAST_FREE_ACCEL:
            k, rpm = _U16X2.unpack(data)
            return LastFreeAccel(k / 100, rpm)
        case Command.FREE_ACCEL_CURVE:
            *n_values, max_rpm = _CURVE.unpack(data)
            return FreeAccelCurve(tuple(n / 10 for n in n_values), max_rpm)
    return Ack(command)
