"""FuLi FLB-100 opacimeter codec (福立, RS-232 appendix of the user manual), sans-I/O.

Theory of operation (protocols.md §2.1, source S3 pp. 16-22, driver S1; docs/protocols/flb100.md)
------------------------------------------------------------------------------------------------
Every frame, both directions::

    request:   DID (0x02) · LB · CMD · [data] · CS
    response:  ACK (0x06) or NAK (0x15) · LB · CMD · [data] · CS

LB is the total frame length including CS; CS is the two's complement of the 8-bit sum
of all preceding bytes (``neg_sum8``): ``02 04 01 F9`` (status), ``02 04 02 F8`` (real
time), ack ``06 04 05 F1``. On a bad command or parameter the instrument answers a bare
0x15; on a wrong DID or checksum, or in an abnormal state, it stays silent.
Multi-byte numbers are big-endian unsigned. Reply data by command (``COMMANDS``):

- 0x01 status, 3 bytes: byte 1 and byte 2 as ``StatusFlags`` (byte 1 low), byte 3 kept
  raw. Byte 2 bit 0 = linearity-check mode is our choice (the manual names only bit 3).
- 0x02 real time, 9 bytes (our layout, matching S1's offsets): K u16 ÷100 m⁻¹, N u16 ÷10
  %, gas temperature u8 °C, oil temperature u16 °C, engine speed u16 r/min.
- 0x03 steady state, 8 bytes: Km ÷100, Nm ÷10, Tm °C, oil °C (u16 each).
- 0x04 free acceleration, by LB: 7 = no result yet (``06 07 04 00 00 00 EF``), 5 =
  running (``06 05 04 0F E2``), 14 = done: K average then the last four K (u16 ÷100,
  oldest first).
- 0x0D check value: N u16 ÷10. 0x0E: K ÷100, r/min. 0x0F: 100 × N (÷10 %) and the maximum
  r/min, LB 0xCE. All other commands: ack (LB 4).

Resync rule (responses): bytes before a start byte (0x06, 0x15) go as one ``FrameError``.
A start byte whose LB is not a length the table allows for its CMD is dropped (so one
noise byte rarely makes the decoder wait for a long phantom frame); a complete frame whose
checksum fails is dropped whole, as its LB says (``ChecksumError``: its header agreed with
the table, and no leftover byte can then pass for a NAK); a frame still incomplete is
abandoned as cut short when a complete, checksum-valid frame starts inside it. A 0x15
alone in the buffer, or one not followed by a plausible frame, is the bare NAK, unless
the decoder has already dropped bytes (then it is likely the tail of a broken frame); a
framed NAK whose 0x15 arrives alone reads as the bare one, the same refusal to a driver.
Requests (device side) resync on the DID byte the same way, with LB 4..206, and lose one
byte on a checksum failure. Messages and byte layouts: ``drivers.protocols.flb100_records``
(re-exported here).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Container
from typing import Final, TypeVar

from drivers.checksums import neg_sum8
from drivers.errors import ChecksumError, FrameError
from drivers.framing import NEED_DATA, FrameDecoder, NeedData
from drivers.protocols.flb100_records import (
    ACK,
    COMMANDS,
    CURVE_POINTS,
    DID,
    MAX_LEN,
    MIN_LEN,
    NAK,
    RESULT_K_COUNT,
    Ack,
    CheckValue,
    Command,
    FreeAccelCurve,
    FreeAccelReply,
    FreeAccelState,
    LastFreeAccel,
    Nak,
    Realtime,
    Request,
    Response,
    StatusFlags,
    StatusReply,
    SteadyResult,
    build_frame,
    encode_response,
    parse_response,
)

__all__ = [
    "ACK",
    "COMMANDS",
    "CURVE_POINTS",
    "DID",
    "MAX_LEN",
    "MIN_LEN",
    "NAK",
    "RESULT_K_COUNT",
    "Ack",
    "CheckValue",
    "Command",
    "FreeAccelCurve",
    "FreeAccelReply",
    "FreeAccelState",
    "LastFreeAccel",
    "Nak",
    "Realtime",
    "Request",
    "RequestDecoder",
    "Response",
    "ResponseDecoder",
    "StatusFlags",
    "StatusReply",
    "SteadyResult",
    "encode_request",
    "encode_response",
]

T = TypeVar("T")
_COMMAND_CODES: Final = frozenset(Command)


def encode_request(command: Command | int, data: bytes = b"", did: int = DID) -> bytes:
    """A request frame, e.g. ``encode_request(Command.STATUS)`` = ``02 04 01 F9``."""
    return build_frame(did, command, data)


def _allowed_lengths(start: int, cmd: int) -> frozenset[int]:
    if cmd not in _COMMAND_CODES:
        return frozenset()
    return COMMANDS[Command(cmd)] if start == ACK else frozenset({MIN_LEN})


class _FrameHunter(FrameDecoder[T]):
    """Start byte · LB · CMD · ... · CS framing shared by both directions."""

    starts: frozenset[int]
    #: drop a frame that fails its checksum whole (LB checked against the table), else 1 byte
    trust_length = False

    @abstractmethod
    def _lengths(self, start: int, cmd: int) -> Container[int]:
        """The LB values a frame may have with this start byte and command."""

    @abstractmethod
    def _parse(self, frame: bytes) -> T:
        """The message of a checked frame."""

    def _plausible_at(self, i: int) -> bool:
        buf = self._buf
        return (
            i + 2 < len(buf)
            and buf[i] in self.starts
            and buf[i + 1] in self._lengths(buf[i], buf[i + 2])
        )

    def _complete_at(self, i: int) -> bool:
        buf, end = self._buf, i + self._buf[i + 1]
        return end <= len(buf) and neg_sum8(bytes(buf[i : end - 1])) == buf[end - 1]

    def _next_frame(self) -> T | NeedData:
        buf = self._buf
        if buf[0] not in self.starts:
            start = next((i for i, byte in enumerate(buf) if byte in self.starts), len(buf))
            raise self._drop(start, "bytes before a frame start")
        if len(buf) < 3:
            return NEED_DATA
        if not self._plausible_at(0):
            raise self._drop(1, "start byte without a plausible LB/CMD")
        length = buf[1]
        complete = len(buf) >= length
        if not (complete and self._complete_at(0)):
            # a good frame starting inside this one means it was cut short: resync on that
            inside = range(1, min(len(buf), length))
            later = next((i for i in inside if self._plausible_at(i) and self._complete_at(i)), 0)
            if later:
                raise self._drop(later, "truncated frame")
            if not complete:
                return NEED_DATA
            count = length if self.trust_length else 1
            raise self._drop(count, "frame checksum mismatch", ChecksumError)
        frame = bytes(buf[:length])
        del buf[:length]
        return self._parse(frame)


class ResponseDecoder(_FrameHunter[Response]):
    """Host side: decodes instrument responses (see the resync rule above)."""

    starts = frozenset({ACK, NAK})
    trust_length = True  # three header bytes agree with the table: noise is unlikely

    def __init__(self) -> None:
        super().__init__()
        self._clean = True  # no byte dropped yet: a stray 0x15 is trusted as the bare NAK

    def _drop(self, count: int, reason: str, error: type[FrameError] = FrameError) -> FrameError:
        self._clean = False
        return super()._drop(count, reason, error)

    def _lengths(self, start: int, cmd: int) -> Container[int]:
        return _allowed_lengths(start, cmd)

    def _parse(self, frame: bytes) -> Response:
        return parse_response(frame)

    def next_message(self) -> Response | NeedData:
        """Return the next response, ``NEED_DATA``, or raise after dropping bad bytes."""
        buf = self._buf
        if not buf:
            return NEED_DATA
        bare = len(buf) == 1 or (len(buf) >= 3 and not self._plausible_at(0))
        if buf[0] == NAK and bare and self._clean:
            del buf[0]
            return Nak()
        return self._next_frame()


class RequestDecoder(_FrameHunter[Request]):
    """Device side: decodes host requests addressed to ``did``."""

    def __init__(self, did: int = DID) -> None:
        super().__init__()
        self.starts = frozenset({did})

    def _lengths(self, start: int, cmd: int) -> Container[int]:
        return range(MIN_LEN, MAX_LEN + 1)

    def _parse(self, frame: bytes) -> Request:
        return Request(frame[2], frame[3:-1], frame[0])

    def next_message(self) -> Request | NeedData:
        """Return the next request, ``NEED_DATA``, or raise after dropping bad bytes."""
        return self._next_frame() if self._buf else NEED_DATA
