"""Nanhua NHA-503 family gas analyser codec ("分析仪通用协议"), sans-I/O.

Theory of operation (protocols.md §1.1, source S1; docs/protocols/nha503.md)
-----------------------------------------------------------------------------
The host is master and sends one command byte; the analyser answers with a reply whose
shape depends only on the command (``COMMANDS``, the command table), so a reply decoder
is built per command: ``ReplyDecoder(Command.READ_DATA)``. There is no start byte and no
length byte. Reply shapes (``ReplyKind``):

- ACK: one byte, 0x06 (0x15 = NAK, illegal or refused command);
- RESULT: one byte, 0x00 ok / 0x01 failed (leak found, checksum error) / 0x05 in
  progress (0x06 also means "in progress" on some firmware);
- STATUS: one byte, the analyser state (``AnalyserStatus``);
- WORD: two bytes big-endian, no checksum (warm-up seconds 0x27, PEF ×1000 0x0D);
- RECORD: fixed length, byte 0 a header (0x06 from our simulator; not checked, as
  Nanhua's driver does not check it, unless a decoder is given ``header``), big-endian
  int16 fields, last byte = 8-bit sum of all preceding bytes (``sum8``, not negated);
- PROGRESS (span calibration 0x0A, gas check 0x0C): a RESULT byte, but 0x05 is followed by
  13 bytes: HC, CO, CO2, O2, NO, PEF (int16) and a checksum. Nanhua's driver reads them
  without checking; we take the checksum as ``sum8`` of the 13 preceding bytes (0x05
  included), the RECORD rule with 0x05 as header. A result byte counts only as the last
  byte of the buffer, and not at all once a progress record failed its checksum (its
  leftover bytes could pass for 0x00 or 0x01).

Two-phase commands: command byte -> 0x06 -> parameter block -> RESULT byte. Span and
check gas (0x09, 0x0B) take 9 bytes: C3H8 ppm, CO ×100, CO2 ×100, NO ppm (uint16) and a
``sum8``; the ambient sensor calibrations (0x1B, 0x1D-0x1F) take an int16 value ×10 with
no checksum. ``ReplyDecoder(command, parameters=True)`` decodes the final RESULT byte.

Resync rules. Records: the window at the front of the buffer is taken as a frame; when
its checksum fails one byte is dropped (``ChecksumError``) and the next window is tried,
since nothing else marks a frame start. Unchecked replies (one-byte and WORD): the device
sends exactly that many bytes per request, so when more are buffered, all but the last
are dropped as stale (a glued late reply) or noise. A lone 0x15 (nothing after it) is a
NAK; in front of more bytes it may start a record and is kept. Where noise arrives in a
separate burst before an unchecked reply the two cannot be told apart: the protocol has
no checksum there. Drivers take the last message of a burst (see nha503_analyser).

Typed messages and byte layouts live in ``drivers.protocols.nha503_records`` and are
re-exported here, so users import everything from this module.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from drivers.checksums import sum8
from drivers.errors import ChecksumError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData
from drivers.protocols.nha503_records import (
    ACK,
    AMBIENT_LEN,
    GAS_BLOCK_LEN,
    HEADER,
    IN_PROGRESS,
    MAIN_LEN,
    MAIN_NEW_LEN,
    NAK,
    PROGRESS_LEN,
    TSI_LEN,
    Ack,
    Ambient,
    AnalyserStatus,
    CalibrationProgress,
    GasBlock,
    IdleBlock,
    MainData,
    Nak,
    Pef,
    Reply,
    Result,
    ResultCode,
    Status,
    TwoSpeedIdleResult,
    ValueBlock,
    WarmupTime,
    encode_gas_block,
    encode_reply,
    encode_value_block,
    parse_ambient,
    parse_gas_block,
    parse_main,
    parse_pef,
    parse_progress,
    parse_tsi,
    parse_value_block,
    parse_warmup,
)

__all__ = [
    "ACK",
    "COMMANDS",
    "HEADER",
    "NAK",
    "Ack",
    "Ambient",
    "AnalyserStatus",
    "CalibrationProgress",
    "Command",
    "CommandRequest",
    "CommandSpec",
    "GasBlock",
    "IdleBlock",
    "MainData",
    "Nak",
    "ParameterKind",
    "Pef",
    "Reply",
    "ReplyDecoder",
    "ReplyKind",
    "Request",
    "RequestDecoder",
    "Result",
    "ResultCode",
    "Status",
    "TwoSpeedIdleResult",
    "ValueBlock",
    "WarmupTime",
    "encode_command",
    "encode_gas_block",
    "encode_reply",
    "encode_value_block",
]


class Command(enum.IntEnum):
    """Command bytes (protocols.md §1.1 command set; decimal function numbers in S1)."""

    READ_DATA_OLD = 0x01  # main data, old firmware
    READ_AMBIENT = 0x02
    AMBIENT_AIR = 0x03  # pump on, draw ambient air through the zero port
    PUMP_ON = 0x04  # pump on, sample from the probe
    BACKFLUSH = 0x05
    PUMP_OFF = 0x06  # stop back-flush and pump
    LEAK_CHECK = 0x07
    ZERO = 0x08
    WRITE_SPAN_GAS = 0x09
    SPAN_CALIBRATE = 0x0A
    WRITE_CHECK_GAS = 0x0B
    GAS_CHECK = 0x0C
    READ_PEF = 0x0D
    CLEAR_NO_AGED = 0x0E
    ZERO_GAS_AIR = 0x0F
    ZERO_GAS_CYLINDER = 0x10
    FOUR_STROKE = 0x11
    TWO_STROKE = 0x12
    SINGLE_IGNITION = 0x13
    DOUBLE_IGNITION = 0x14
    AUTO_ZERO_ON = 0x15
    AUTO_ZERO_OFF = 0x16
    KEYBOARD_ON = 0x17
    KEYBOARD_OFF = 0x18
    LCD_ON = 0x19
    LCD_OFF = 0x1A
    CAL_AMBIENT_TEMP = 0x1B
    CAL_OIL_TEMP = 0x1D
    CAL_HUMIDITY = 0x1E
    CAL_BAROMETER = 0x1F
    CHECK_GAS_OPEN = 0x20
    CHECK_GAS_CLOSE = 0x21
    READ_STATUS = 0x26
    READ_WARMUP = 0x27
    FUEL_PETROL = 0x28
    FUEL_LPG = 0x29
    FUEL_NG = 0x2A
    FUEL_ETHANOL = 0x2B
    READ_DATA_NEW = 0x2C  # main data + extended status word (water trap)
    READ_DATA = 0x81
    READ_TSI_RESULT = 0x88  # two-speed-idle result stored in the analyser


class ReplyKind(enum.Enum):
    """Shape of a reply (see the module docstring)."""

    ACK = "ack"
    RESULT = "result"
    STATUS = "status"
    WORD = "word"
    RECORD = "record"
    PROGRESS = "progress"


class ParameterKind(enum.Enum):
    """Parameter block sent after the 0x06 of a two-phase command (value = its length)."""

    NONE = 0
    GAS = GAS_BLOCK_LEN  # C3H8, CO, CO2, NO (uint16) + sum8
    VALUE = 2  # int16 value x10, no checksum


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What a command's reply looks like, and its parameter block if two-phase."""

    reply: ReplyKind
    length: int = 1
    parse: Callable[[bytes], Reply] | None = None
    parameters: ParameterKind = ParameterKind.NONE


_ACK_SPEC: Final = CommandSpec(ReplyKind.ACK)
_MAIN_SPEC: Final = CommandSpec(ReplyKind.RECORD, MAIN_LEN, parse_main)

#: The command table (protocols.md §1.1); commands not listed otherwise answer 0x06.
COMMANDS: Final[dict[Command, CommandSpec]] = {command: _ACK_SPEC for command in Command} | {
    Command.READ_DATA_OLD: _MAIN_SPEC,
    Command.READ_DATA: _MAIN_SPEC,
    Command.READ_DATA_NEW: CommandSpec(ReplyKind.RECORD, MAIN_NEW_LEN, parse_main),
    Command.READ_AMBIENT: CommandSpec(ReplyKind.RECORD, AMBIENT_LEN, parse_ambient),
    Command.READ_TSI_RESULT: CommandSpec(ReplyKind.RECORD, TSI_LEN, parse_tsi),
    Command.READ_STATUS: CommandSpec(ReplyKind.STATUS),
    Command.READ_WARMUP: CommandSpec(ReplyKind.WORD, 2, parse_warmup),
    Command.READ_PEF: CommandSpec(ReplyKind.WORD, 2, parse_pef),
    Command.LEAK_CHECK: CommandSpec(ReplyKind.RESULT),
    Command.ZERO: CommandSpec(ReplyKind.RESULT),
    Command.SPAN_CALIBRATE: CommandSpec(ReplyKind.PROGRESS, PROGRESS_LEN, parse_progress),
    Command.GAS_CHECK: CommandSpec(ReplyKind.PROGRESS, PROGRESS_LEN, parse_progress),
    Command.WRITE_SPAN_GAS: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.GAS),
    Command.WRITE_CHECK_GAS: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.GAS),
    Command.CAL_AMBIENT_TEMP: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.VALUE),
    Command.CAL_OIL_TEMP: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.VALUE),
    Command.CAL_HUMIDITY: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.VALUE),
    Command.CAL_BAROMETER: CommandSpec(ReplyKind.ACK, parameters=ParameterKind.VALUE),
}


_RESULT_CODES: Final = frozenset(ResultCode)
_COMMAND_CODES: Final = frozenset(Command)


def _single(kind: ReplyKind, byte: int) -> Reply | None:
    """The one-byte reply ``byte`` means for ``kind``, or None if it cannot be one."""
    if byte == NAK:
        return Nak()
    if kind is ReplyKind.ACK:
        return Ack() if byte == ACK else None
    if kind is ReplyKind.STATUS:
        return Status(byte)
    if byte in _RESULT_CODES:
        return Result(ResultCode(byte))
    return None


class ReplyDecoder(FrameDecoder[Reply]):
    """Host side: decodes the reply to one command (or to its parameter block)."""

    def __init__(
        self, command: Command, *, parameters: bool = False, header: int | None = None
    ) -> None:
        super().__init__()
        spec = COMMANDS[command]
        if parameters and spec.parameters is ParameterKind.NONE:
            raise LocalProtocolError(f"{command.name} takes no parameter block")
        self.command = command
        self.kind = ReplyKind.RESULT if parameters else spec.reply
        self._spec = spec
        self._header = header
        self._tainted = False  # a record failed its checksum: its bytes are still around

    def next_message(self) -> Reply | NeedData:
        """Return the next reply, ``NEED_DATA``, or raise after dropping bad bytes."""
        if not self._buf:
            return NEED_DATA
        kind = self.kind
        if kind in (ReplyKind.ACK, ReplyKind.RESULT, ReplyKind.STATUS):
            return self._unchecked(1)
        if kind is ReplyKind.WORD:
            return self._unchecked(2)
        if kind is ReplyKind.PROGRESS and self._buf[0] != IN_PROGRESS:
            return self._progress_result()
        return self._record(self._header if kind is ReplyKind.RECORD else IN_PROGRESS)

    def _unchecked(self, size: int) -> Reply | NeedData:
        buf = self._buf
        if size > 1 and len(buf) == 1 and buf[0] == NAK:
            buf.clear()
            return Nak()
        if len(buf) > size:
            raise self._drop(len(buf) - size, "stale bytes or noise before an unchecked reply")
        if len(buf) < size:
            return NEED_DATA
        frame = bytes(buf)
        message = _single(self.kind, frame[0]) if size == 1 else self._parse(frame)
        if message is None:
            raise self._drop(1, f"byte 0x{frame[0]:02X} is no {self.kind.value} reply")
        buf.clear()
        return message

    def _progress_result(self) -> Reply | NeedData:
        buf = self._buf
        message = _single(ReplyKind.RESULT, buf[0])
        if message is None or len(buf) > 1:
            raise self._drop(1, f"byte 0x{buf[0]:02X} is not the last byte of a reply")
        if self._tainted:
            return NEED_DATA  # likely the tail of a corrupted progress record: not trusted
        buf.clear()
        return message

    def _record(self, header: int | None) -> Reply | NeedData:
        buf, size = self._buf, self._spec.length
        if buf[0] == NAK and (len(buf) == 1 or header not in (None, NAK)):
            del buf[0]
            return Nak()
        if header is not None and buf[0] != header:
            skip = buf.find(bytes((header,)), 1)
            raise self._drop(skip if skip > 0 else len(buf), "not a record header")
        if len(buf) < size:
            return NEED_DATA
        frame = bytes(buf[:size])
        if sum8(frame[:-1]) != frame[-1]:
            self._tainted = True
            raise self._drop(1, "record checksum mismatch", ChecksumError)
        del buf[:size]
        return self._parse(frame)

    def _parse(self, frame: bytes) -> Reply:
        assert self._spec.parse is not None  # every WORD/RECORD/PROGRESS spec has one
        return self._spec.parse(frame)


# --- requests (device side) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandRequest:
    """One command byte."""

    command: Command


Request = CommandRequest | GasBlock | ValueBlock


class RequestDecoder(FrameDecoder[Request]):
    """Device side: command bytes, and the parameter block the device has asked for.

    After acknowledging a two-phase command the device calls ``expect_parameters``; the
    next bytes are then read as that block (a gas block with a bad checksum raises
    ``ChecksumError``, to be answered with 0x01). Unknown command bytes raise
    ``FrameError`` (the device answers NAK).
    """

    def __init__(self) -> None:
        super().__init__()
        self._pending = ParameterKind.NONE

    @property
    def awaiting_parameters(self) -> bool:
        """Whether the next bytes are read as a parameter block."""
        return self._pending is not ParameterKind.NONE

    def expect_parameters(self, command: Command) -> None:
        """Read the next bytes as ``command``'s parameter block."""
        self._pending = COMMANDS[command].parameters

    def cancel_parameters(self) -> None:
        """Give up waiting for a parameter block (the host went quiet)."""
        self._pending = ParameterKind.NONE
        self.clear()

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if self._pending is not ParameterKind.NONE:
            return self._parameters()
        if not buf:
            return NEED_DATA
        if buf[0] not in _COMMAND_CODES:
            raise self._drop(1, f"unknown command 0x{buf[0]:02X}")
        command = Command(buf[0])
        del buf[0]
        return CommandRequest(command)

    def _parameters(self) -> Request | NeedData:
        kind, buf = self._pending, self._buf
        if len(buf) < kind.value:
            return NEED_DATA
        block = bytes(buf[: kind.value])
        self._pending = ParameterKind.NONE
        if kind is ParameterKind.VALUE:
            del buf[: len(block)]
            return parse_value_block(block)
        if sum8(block[:-1]) != block[-1]:
            raise self._drop(len(block), "gas block checksum mismatch", ChecksumError)
        del buf[: len(block)]
        return parse_gas_block(block)


def encode_command(command: Command) -> bytes:
    """The request for ``command``: its single byte."""
    return bytes((command,))
