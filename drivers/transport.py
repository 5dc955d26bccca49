"""Open a byte pipe to a tester: a serial device path, or a pyserial URL.

One function, ``open_link``, knows every way a lane reaches its testers:

- ``/dev/ttyUSB0``, ``/dev/serial/by-id/...``, a PTY such as ``/dev/pts/7``: a local
  serial port through pyserial-asyncio-fast (event-loop driven, no thread);
- ``socket://host:port`` (or ``tcp://``): a serial device server in raw TCP mode, opened
  with asyncio's own TCP transport.

pyserial's other URL handlers (``rfc2217://``, ``loop://``, ``spy://``...) are refused
with ``PortUnavailable``: they open synchronously and run a thread of their own, which
would block the event loop on open and break the one-owner-per-bus model. A device
server that speaks RFC 2217 can be switched to raw TCP mode (every one we met can).

The link knows nothing of frames: it buffers what arrives and lets its single owner (the
bus task) wait for more with a timeout, purge stale input, and write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import serial
import serial_asyncio_fast

from drivers.errors import ConnectionLost, PortUnavailable, ResponseTimeout

Parity = Literal["N", "E", "O", "M", "S"]


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Serial line parameters; ignored for raw TCP links."""

    baudrate: int = 9600
    bytesize: int = 8
    parity: Parity = "N"
    stopbits: float = 1

    def describe(self) -> str:
        """The usual short form, e.g. ``9600 8N1``."""
        stop = int(self.stopbits) if self.stopbits in (1, 2) else self.stopbits
        return f"{self.baudrate} {self.bytesize}{self.parity}{stop}"


class ByteLink(asyncio.Protocol):
    """Receive buffer plus writer for one open port; driven by exactly one owner task."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._transport: asyncio.BaseTransport | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._lost: Exception | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        # serial transports call connection_made on the next loop turn, after the
        # opener has returned: open_link waits for this before handing the link out
        self.made: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # asyncio.Protocol callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport
        if not self.made.done():
            self.made.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self.bytes_in += len(data)
        self._wake()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = exc or ConnectionLost("peer closed the connection")
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # owner API --------------------------------------------------------------------------
    @property
    def is_open(self) -> bool:
        """False once the port or connection went away."""
        return self._transport is not None and self._lost is None

    def purge(self) -> bytes:
        """Drop and return whatever arrived unasked (stale replies, line noise)."""
        stale = bytes(self._buf)
        self._buf.clear()
        return stale

    def write(self, data: bytes) -> None:
        """Queue bytes for sending; raises ``ConnectionLost`` on a dead link."""
        if not self.is_open or self._transport is None:
            raise ConnectionLost(f"link is closed ({self._lost})")
        self._transport.write(data)  # type: ignore[attr-defined]
        self.bytes_out += len(data)

    async def read(self, timeout: float) -> bytes:
        """Return the bytes buffered now, or wait up to ``timeout`` s for some."""
        if not self._buf:
            if self._lost is not None:
                raise ConnectionLost(str(self._lost))
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                async with asyncio.timeout(timeout):
                    await self._waiter
            except TimeoutError:
                raise ResponseTimeout(f"no data within {timeout:.3f} s") from None
            finally:
                self._waiter = None
            if not self._buf and self._lost is not None:
                raise ConnectionLost(str(self._lost))
        data = bytes(self._buf)
        self._buf.clear()
        return data

    def close(self) -> None:
        """Close the port; idempotent."""
        if self._transport is not None:
            self._transport.close()


#: the URL schemes ``open_link`` takes; anything else with a scheme is refused
TCP_SCHEMES = ("socket", "tcp")


def url_problem(url: str) -> str | None:
    """Why ``open_link`` would refuse ``url`` outright (None: a path or a TCP URL)."""
    scheme = urlsplit(url).scheme
    if "://" in url and scheme not in TCP_SCHEMES:
        return (
            f"{scheme}:// is not supported (pyserial's handler blocks the event loop); "
            "use a device path or socket://host:port (the device server's raw TCP mode)"
        )
    return None


def _tcp_target(url: str) -> tuple[str, int] | None:
    if (problem := url_problem(url)) is not None:
        raise PortUnavailable(f"{url}: {problem}")
    parts = urlsplit(url)
    if parts.scheme not in TCP_SCHEMES:
        return None
    if parts.hostname is None or parts.port is None:
        raise PortUnavailable(f"{url}: expected socket://host:port")
    return parts.hostname, parts.port


async def open_link(url: str, line: LineSettings, timeout: float = 5.0) -> ByteLink:
    """Open ``url`` and return its ``ByteLink``; raises ``PortUnavailable`` on failure."""
    loop = asyncio.get_running_loop()
    protocol: asyncio.BaseProtocol
    try:
        async with asyncio.timeout(timeout):
            target = _tcp_target(url)
            if target is not None:
                _, protocol = await loop.create_connection(ByteLink, *target)
            else:
                _, protocol = await serial_asyncio_fast.create_serial_connection(
                    loop,
                    ByteLink,
                    url,
                    baudrate=line.baudrate,
                    bytesize=line.bytesize,
                    parity=line.parity,
                    stopbits=line.stopbits,
                )
            assert isinstance(protocol, ByteLink)
            await protocol.made
    except (OSError, serial.SerialException, ValueError) as exc:
        raise PortUnavailable(f"{url}: {exc}") from exc
    except TimeoutError:
        raise PortUnavailable(f"{url}: open timed out after {timeout} s") from None
    return protocol
