"""Where a simulated tester is reachable: a TCP port (like a serial device server) or a PTY.

An endpoint accepts one peer at a time and hands the simulator a ``SimLink`` to read
requests from and write replies to; replies pass through the simulator's ``FaultPlan``.
A PTY endpoint also keeps a stable symlink to its ``/dev/pts/N`` (as udev does for
``/dev/serial/by-id``), so a driver can reopen "the same port" after it disappears.

Pacing (``byte_time_s``, off by default): a real serial line carries one character per
``bits / baud`` seconds. A paced link hands a request to the simulator only once its
last byte would have arrived, and writes a reply byte by byte as the line would deliver
it, so a driver meets the timing of a real 9600-baud instrument (the benchmark measures
line efficiency with it). ``byte_time(9600)`` is the time of one 8N1 character.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from simulators.faults import Fault, FaultPlan


def byte_time(baudrate: int, bits_per_char: int = 10) -> float:
    """Seconds one character occupies the line (8N1: 1 start + 8 data + 1 stop bit)."""
    return bits_per_char / baudrate


class SimLink:
    """The device side of one connection: read requests, write replies with faults."""

    def __init__(self, faults: FaultPlan, nak: bytes = b"\x15", byte_time_s: float = 0.0) -> None:
        self.faults = faults
        self.nak = nak
        self.byte_time_s = byte_time_s
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._writer: Callable[[bytes], None] = lambda _data: None
        self._held = b""
        self.closed = asyncio.Event()
        self.disconnect_requested: float | None = None

    def attach(self, writer: Callable[[bytes], None]) -> None:
        """Set the raw write function of the connection."""
        self._writer = writer

    def deliver(self, data: bytes) -> None:
        """Bytes received from the peer (called by the endpoint)."""
        self._incoming.put_nowait(data)

    async def read(self) -> bytes:
        """Wait for the next chunk of bytes from the peer (paced: once it has crossed)."""
        data = await self._incoming.get()
        if self.byte_time_s:
            loop = asyncio.get_running_loop()
            await _sleep_until(loop, loop.time() + len(data) * self.byte_time_s)
        return data

    async def _write_paced(self, data: bytes) -> None:
        """Write ``data`` as the line delivers it: each byte once its last bit is through.

        Bytes on the way may come a little late and in twos (the loop's timers have a
        millisecond's grain); the last one, which completes the frame, is on time.
        """
        loop = asyncio.get_running_loop()
        start, sent = loop.time(), 0
        while sent < len(data):
            arrived = min(len(data), int((loop.time() - start) / self.byte_time_s))
            if arrived > sent:
                self._writer(data[sent:arrived])
                sent = arrived
            elif sent == len(data) - 1:
                await _sleep_until(loop, start + len(data) * self.byte_time_s)
            else:
                await asyncio.sleep(start + (sent + 1) * self.byte_time_s - loop.time())

    def write_raw(self, data: bytes) -> None:
        """Write without faults (used by the fault logic itself)."""
        self._writer(data)

    async def send(self, reply: bytes) -> None:
        """Send one reply frame, applying the next pending fault, if any."""
        spec = self.faults.next_fault()
        if spec is None:
            data, self._held = self._held + reply, b""
            if self.byte_time_s:
                await self._write_paced(data)
            else:
                self._writer(data)
            return
        match spec.fault:
            case Fault.NO_REPLY:
                return
            case Fault.SLOW_REPLY:
                await asyncio.sleep(spec.delay_s)
                self._writer(reply)
            case Fault.BAD_CHECKSUM:
                self._writer(reply[:-1] + bytes([reply[-1] ^ 0x5A]))
            case Fault.NAK:
                self._writer(self.nak)
            case Fault.SPLIT:
                cut = max(1, len(reply) // 2)
                self._writer(reply[:cut])
                await asyncio.sleep(0.02)
                self._writer(reply[cut:])
            case Fault.GLUE:
                self._held += reply
            case Fault.GARBAGE:
                self._writer(self.faults.garbage() + reply)
            case Fault.DISCONNECT:
                self.disconnect_requested = spec.delay_s
                self.closed.set()


Handler = Callable[[SimLink], Coroutine[Any, Any, None]]

#: the event loop's selector waits in whole milliseconds: the last stretch is spun
_SPIN_S = 0.0015


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    """Sleep until ``when`` (loop time) within a few microseconds, not a millisecond."""
    while (remaining := when - loop.time()) > 0:  # noqa: ASYNC110 (a timed wait, not a poll)
        await asyncio.sleep(remaining - _SPIN_S if remaining > 2 * _SPIN_S else 0)


class Endpoint(ABC):
    """Hosts one simulator handler; subclasses provide the byte pipe."""

    def __init__(
        self, handler: Handler, faults: FaultPlan, nak: bytes = b"\x15", byte_time_s: float = 0.0
    ) -> None:
        self._handler = handler
        self.faults = faults
        self._nak = nak
        self.byte_time_s = byte_time_s  # > 0: paced like a serial line (see the module doc)

    @property
    @abstractmethod
    def url(self) -> str:
        """What a driver puts in its bus config to reach this endpoint."""

    @abstractmethod
    async def serve(self) -> None:
        """Serve forever (until cancelled)."""

    async def _run_session(self, link: SimLink) -> None:
        """Run the handler until the peer goes or a DISCONNECT fault closes the link."""
        async with asyncio.TaskGroup() as group:
            handler = group.create_task(self._handler(link))
            await link.closed.wait()
            handler.cancel()


class TcpEndpoint(Endpoint):
    """A TCP listener on loopback, one client at a time, like a serial device server."""

    def __init__(
        self,
        handler: Handler,
        faults: FaultPlan,
        host: str = "127.0.0.1",
        port: int = 0,
        nak: bytes = b"\x15",
        byte_time_s: float = 0.0,
    ) -> None:
        super().__init__(handler, faults, nak, byte_time_s)
        self.host = host
        self.port = port
        self.ready = asyncio.Event()

    @property
    def url(self) -> str:
        return f"socket://{self.host}:{self.port}"

    async def serve(self) -> None:
        while True:
            down_for = await self._serve_until_disconnect()
            await asyncio.sleep(down_for)

    async def _serve_until_disconnect(self) -> float:
        disconnect = asyncio.get_running_loop().create_future()
        busy = asyncio.Lock()
        # asyncio.start_server runs each client in a task of its own; we end them by
        # closing their session (never by cancelling them) when this endpoint stops
        sessions: dict[asyncio.Task[None], SimLink] = {}

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if busy.locked():  # a device server port takes one client at a time
                writer.close()
                return
            async with busy:
                link = SimLink(self.faults, self._nak, self.byte_time_s)
                link.attach(writer.write)
                task = asyncio.current_task()
                assert task is not None
                sessions[task] = link
                async with asyncio.TaskGroup() as group:
                    pump = group.create_task(_pump_stream(reader, link))
                    await self._run_session(link)
                    pump.cancel()
                if link.disconnect_requested is not None:
                    # stop listening before the client sees its connection close: else its
                    # reconnect lands in the listen backlog and is reset a moment later (a
                    # second, spurious outage)
                    server.close()
                writer.close()
                sessions.pop(task, None)
                if link.disconnect_requested is not None and not disconnect.done():
                    disconnect.set_result(link.disconnect_requested)

        server = await asyncio.start_server(on_client, self.host, self.port)
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        try:
            down_for: float = await disconnect
        finally:
            server.close()
            self.ready.clear()
            for link in sessions.values():
                link.closed.set()
            if sessions:
                await asyncio.wait(list(sessions))
        return down_for


async def _pump_stream(reader: asyncio.StreamReader, link: SimLink) -> None:
    while data := await reader.read(4096):
        link.deliver(data)
    link.closed.set()


class PtyEndpoint(Endpoint):
    """A pseudo-terminal pair; the driver opens the slave (or the stable symlink)."""

    def __init__(
        self,
        handler: Handler,
        faults: FaultPlan,
        symlink: Path | None = None,
        nak: bytes = b"\x15",
        byte_time_s: float = 0.0,
    ) -> None:
        super().__init__(handler, faults, nak, byte_time_s)
        self.symlink = symlink
        self.slave_path = ""
        self.ready = asyncio.Event()
        self._open_pty()

    @property
    def url(self) -> str:
        return str(self.symlink) if self.symlink else self.slave_path

    def _open_pty(self) -> None:
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self.slave_path = os.ttyname(self._slave)
        if self.symlink is not None:
            tmp = self.symlink.with_suffix(".new")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self.slave_path)
            tmp.replace(self.symlink)

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    async def serve(self) -> None:
        try:
            while True:
                self.ready.set()
                down_for = await self._serve_once()
                self.ready.clear()
                self._close_pty()
                if self.symlink is not None:
                    with contextlib.suppress(FileNotFoundError):
                        self.symlink.unlink()
                await asyncio.sleep(down_for)
                self._open_pty()
        finally:
            self._close_pty()

    async def _serve_once(self) -> float:
        loop = asyncio.get_running_loop()
        link = SimLink(self.faults, self._nak, self.byte_time_s)
        master = self._master

        def write(data: bytes) -> None:
            with contextlib.suppress(BlockingIOError, OSError):
                os.write(master, data)

        def on_readable() -> None:
            try:
                data = os.read(master, 4096)
            except (BlockingIOError, OSError):
                return
            if data:
                link.deliver(data)

        link.attach(write)
        loop.add_reader(master, on_readable)
        try:
            await self._run_session(link)
        finally:
            loop.remove_reader(master)
        return link.disconnect_requested or 0.0
