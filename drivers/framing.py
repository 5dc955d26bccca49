"""The sans-I/O decoder contract shared by every protocol codec.

A decoder is fed bytes as they arrive (``feed``) and asked for messages one at a time
(``next_message``), which returns a decoded message or ``NEED_DATA``. When the buffer
starts with bytes that cannot form a valid frame, ``next_message`` discards them, up to
the next plausible start of a frame, and raises a ``FrameError`` (or ``ChecksumError``)
naming what was dropped; the caller counts it and simply calls again. So a decoder never
wedges on garbage: every call either returns a message, returns ``NEED_DATA`` or removes
at least one byte from the buffer.

No asyncio, no sockets, no clock here (h11 / zigpy ``frames.py`` style).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Final, Generic, TypeVar

from drivers.errors import FrameError

M = TypeVar("M")


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


#: Returned by ``next_message`` when the buffer holds no complete frame yet.
NEED_DATA: Final = _NeedData.NEED_DATA
NeedData = _NeedData

#: Upper bound on buffered bytes; beyond it the oldest bytes are dropped as garbage so a
#: peer that never sends a valid frame cannot grow memory without bound.
MAX_BUFFER: Final = 64 * 1024


class FrameDecoder(ABC, Generic[M]):
    """Base for stream decoders: owns the receive buffer and the overflow rule."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buf += data
        if len(self._buf) > MAX_BUFFER:
            del self._buf[: len(self._buf) - MAX_BUFFER]

    @property
    def buffered(self) -> int:
        """Number of bytes waiting in the buffer."""
        return len(self._buf)

    def clear(self) -> None:
        """Forget everything buffered (used after a purge of the line)."""
        self._buf.clear()

    @abstractmethod
    def next_message(self) -> M | NeedData:
        """Return a message or ``NEED_DATA``; raise ``FrameError`` after skipping bad bytes."""

    def _drop(self, count: int, reason: str, error: type[FrameError] = FrameError) -> FrameError:
        """Remove ``count`` bytes from the front and build the error that reports them."""
        count = max(1, count)
        raw = bytes(self._buf[:count])
        del self._buf[:count]
        return error(f"{reason}: dropped {raw.hex(' ')}", raw)


def decode_all(decoder: FrameDecoder[M], data: bytes = b"") -> tuple[list[M], list[FrameError]]:
    """Feed ``data`` and pull every complete message, collecting the frame errors met."""
    decoder.feed(data)
    messages: list[M] = []
    errors: list[FrameError] = []
    for item in iter_messages(decoder, errors):
        messages.append(item)
    return messages, errors


def iter_messages(decoder: FrameDecoder[M], errors: list[FrameError]) -> Iterator[M]:
    """Yield messages until ``NEED_DATA``; frame errors are appended to ``errors``."""
    while True:
        try:
            item = decoder.next_message()
        except FrameError as exc:
            errors.append(exc)
            continue
        if item is NEED_DATA:
            return
        yield item
