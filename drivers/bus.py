"""One owner task per physical bus; devices queue their requests to it.

A bus is a serial port, a serial device server connection or a Modbus link. Its owner
task (``BusOwner.run``) is the only code that touches the port: devices call ``submit``
(or ``StreamBus.transact``), which queues a job and waits for its result. The owner

- opens the port, and reopens it by path with exponential backoff when it disappears
  (USB adapter unplugged, device server rebooted); while it is closed, queued requests
  fail at once with ``PortUnavailable`` so no device waits on a dead port;
- runs one job at a time, then pauses ``inter_request_delay`` (RS-485 turnaround, and
  instruments that need a gap between commands);
- never ends on an error: a job's exception goes back to the device that asked, a dead
  link sends the owner back to reopening. That holds for any exception, not only the
  driver's own kinds: a bug in a codec, in a transaction's callbacks or in an observer
  hook fails the one job (the caller gets the exception, the observer logs it with its
  traceback and counts it) and the owner serves the next one.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from drivers.backoff import Backoff
from drivers.errors import (
    DriverError,
    FrameError,
    PortUnavailable,
    ResponseTimeout,
    TransportError,
)
from drivers.framing import FrameDecoder, iter_messages
from drivers.transport import ByteLink, LineSettings, open_link

L = TypeVar("L")
R = TypeVar("R")
M = TypeVar("M")

#: First wait before reopening a lost port, doubled at each failure up to the maximum.
REOPEN_MIN_S: Final = 0.5
REOPEN_MAX_S: Final = 30.0


class BusObserver(Protocol):
    """Receives what a bus owner sees; the gateway turns it into metrics and logs."""

    def request_done(self, device: str, seconds: float, error: Exception | None) -> None:
        """One request finished (``error`` is None on success)."""

    def job_crashed(self, device: str, error: Exception) -> None:
        """A job raised something other than a ``DriverError``: a bug, to be logged."""

    def bad_frame(self, device: str, error: FrameError) -> None:
        """A malformed or corrupted frame was skipped."""

    def busy(self, seconds: float) -> None:
        """The bus was busy for ``seconds`` (utilisation = busy / wall time)."""

    def port_state(self, is_open: bool, reason: str) -> None:
        """The port was opened or lost."""

    def frame(self, device: str, outgoing: bool, data: bytes) -> None:
        """Raw bytes written for, or received for, ``device`` (evidence capture)."""


class NullObserver:
    """Observer that ignores everything (tools, tests)."""

    def request_done(self, device: str, seconds: float, error: Exception | None) -> None:
        """Ignore."""

    def job_crashed(self, device: str, error: Exception) -> None:
        """Ignore."""

    def bad_frame(self, device: str, error: FrameError) -> None:
        """Ignore."""

    def busy(self, seconds: float) -> None:
        """Ignore."""

    def port_state(self, is_open: bool, reason: str) -> None:
        """Ignore."""

    def frame(self, device: str, outgoing: bool, data: bytes) -> None:
        """Ignore."""


@dataclass(slots=True)
class _Job(Generic[L, R]):
    device: str
    run: Callable[[L], Awaitable[R]]
    future: asyncio.Future[R]


class BusOwner(ABC, Generic[L]):
    """The single task that drives one port; subclasses say how to open and close it."""

    def __init__(
        self,
        name: str,
        *,
        inter_request_delay: float = 0.0,
        observer: BusObserver | None = None,
        reopen_min: float = REOPEN_MIN_S,
        reopen_max: float = REOPEN_MAX_S,
    ) -> None:
        self.name = name
        self.inter_request_delay = inter_request_delay
        self.observer: BusObserver = observer or NullObserver()
        self._reopen_min = reopen_min
        self._reopen_max = reopen_max
        self._queue: asyncio.Queue[_Job[L, Any]] = asyncio.Queue()
        self.is_open = False
        self.last_error: str | None = None
        #: jobs that raised something other than a DriverError (bugs), since start
        self.crashed_jobs = 0
        #: observer calls that raised (counted here: the observer is what would count them)
        self.crashed_observer_calls = 0

    @abstractmethod
    async def _open(self) -> L:
        """Open the port; raise ``TransportError`` on failure."""

    @abstractmethod
    def _close(self, link: L) -> None:
        """Close the port."""

    def _link_alive(self, link: L) -> bool:
        """Whether an open link is still usable between jobs."""
        return True

    async def submit(self, device: str, run: Callable[[L], Awaitable[R]]) -> R:
        """Queue ``run(link)`` for the owner task and wait for its result."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(device, run, future))
        return await future

    async def run(self) -> None:
        """Own the port forever: open, serve jobs, reopen with backoff when it goes."""
        # jitter: the USB hub that lost four adapters does not get four opens in step
        backoff = Backoff(self._reopen_min, self._reopen_max, jitter=0.25)
        while True:
            try:
                link = await self._open()
            except TransportError as exc:
                self._set_state(False, str(exc))
                await self._refuse_jobs_for(backoff.next(), exc)
                continue
            backoff.reset()
            self._set_state(True, "opened")
            try:
                await self._serve(link)
            finally:
                self._close(link)

    def _set_state(self, is_open: bool, reason: str) -> None:
        changed = is_open != self.is_open or (not is_open and reason != self.last_error)
        self.is_open = is_open
        self.last_error = None if is_open else reason
        if changed:
            self.observer.port_state(is_open, reason)

    async def _refuse_jobs_for(self, seconds: float, cause: Exception) -> None:
        """While the port is closed, fail every queued job at once, for ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (remaining := deadline - loop.time()) > 0:
            try:
                async with asyncio.timeout(remaining):
                    job = await self._queue.get()
            except TimeoutError:
                return
            if not job.future.done():
                job.future.set_exception(PortUnavailable(f"{self.name}: port closed ({cause})"))

    async def _serve(self, link: L) -> None:
        """Run queued jobs until the link dies."""
        while True:
            job = await self._queue.get()
            if job.future.done():  # the asking device gave up (cancelled)
                continue
            if not self._link_alive(link):
                self._queue.put_nowait(job)  # retried after the reopen
                self._set_state(False, "link lost")
                return
            lost = await self._run_job(link, job)
            if lost is not None:
                self._set_state(False, str(lost))
                return
            if self.inter_request_delay > 0:
                await asyncio.sleep(self.inter_request_delay)

    async def _run_job(self, link: L, job: _Job[L, Any]) -> TransportError | None:
        """Run one job; return the transport error if the link died under it."""
        started = time.perf_counter()
        error: Exception | None = None
        try:
            result = await job.run(link)
            if not job.future.done():
                job.future.set_result(result)
            self._tell_observer(job.device, started, None)
        except DriverError as exc:
            error = exc
            self._tell_observer(job.device, started, exc)
        except Exception as exc:  # noqa: BLE001 (the bus's supervisor: a bug fails one job)
            error = exc
            self.crashed_jobs += 1
            self._tell_observer(job.device, started, exc, crashed=True)
        if error is not None and not job.future.done():
            job.future.set_exception(error)
        return error if isinstance(error, TransportError) else None

    def _tell_observer(
        self, device: str, started: float, error: Exception | None, crashed: bool = False
    ) -> None:
        """Tell the observer; its own failure must not end the owner either."""
        elapsed = time.perf_counter() - started
        try:
            self.observer.busy(elapsed)
            self.observer.request_done(device, elapsed, error)
            if crashed and error is not None:
                self.observer.job_crashed(device, error)
        except Exception:  # noqa: BLE001 (metrics and logs are never worth the bus)
            self.crashed_observer_calls += 1


@dataclass(slots=True)
class Transaction(Generic[M]):
    """One request and the reply (or stream of replies) it expects, on a byte bus.

    ``decoder`` is a fresh decoder for the reply; ``is_final`` says which message ends the
    transaction (the first one, by default); ``on_message`` sees every message as it is
    decoded (for streams at the device's rate); ``silence_timeout`` bounds the wait for
    each next chunk of bytes, ``total_timeout`` the whole exchange. A transaction with an
    empty ``request`` listens to a device that talks by itself; there a frame broken by
    joining the stream mid-frame is expected and not counted as a bad frame.
    """

    request: bytes
    decoder: FrameDecoder[M]
    is_final: Callable[[M], bool] = field(default=lambda _message: True)
    on_message: Callable[[M], None] | None = None
    silence_timeout: float | None = None
    total_timeout: float | None = None
    expect_reply: bool = True
    purge: bool = True


class StreamBus(BusOwner[ByteLink]):
    """A byte-stream bus: serial port, PTY or serial device server."""

    def __init__(
        self,
        name: str,
        url: str,
        line: LineSettings | None = None,
        *,
        response_timeout: float = 1.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, **kwargs)
        self.url = url
        self.line = line or LineSettings()
        self.response_timeout = response_timeout

    async def _open(self) -> ByteLink:
        return await open_link(self.url, self.line)

    def _close(self, link: ByteLink) -> None:
        link.close()

    def _link_alive(self, link: ByteLink) -> bool:
        return link.is_open

    async def transact(self, device: str, tx: Transaction[M]) -> list[M]:
        """Run ``tx`` on this bus for ``device``; returns the messages it collected."""

        async def run(link: ByteLink) -> list[M]:
            return await self._exchange(device, link, tx)

        return await self.submit(device, run)

    async def _exchange(self, device: str, link: ByteLink, tx: Transaction[M]) -> list[M]:
        if tx.purge:
            link.purge()
        if tx.request:
            link.write(tx.request)
            self.observer.frame(device, True, tx.request)
        if not tx.expect_reply:
            return []
        silence = tx.silence_timeout or self.response_timeout
        if tx.total_timeout is None:
            return await self._collect(device, link, tx, silence)
        try:
            async with asyncio.timeout(tx.total_timeout):
                return await self._collect(device, link, tx, silence)
        except TimeoutError:
            raise ResponseTimeout(f"{device}: exchange exceeded {tx.total_timeout} s") from None

    async def _collect(
        self, device: str, link: ByteLink, tx: Transaction[M], silence: float
    ) -> list[M]:
        messages: list[M] = []
        errors: list[FrameError] = []
        last_error: FrameError | None = None
        listening = not tx.request
        while True:
            for message in iter_messages(tx.decoder, errors):
                messages.append(message)
                if tx.on_message is not None:
                    tx.on_message(message)
                if tx.is_final(message):
                    self._report(device, errors, listening and len(messages) == 1)
                    return messages
            last_error = self._report(device, errors, listening and not messages) or last_error
            try:
                data = await link.read(silence)
            except ResponseTimeout:
                if last_error is not None:
                    raise last_error from None
                raise ResponseTimeout(f"{device}: no valid reply within {silence} s") from None
            self.observer.frame(device, False, data)
            tx.decoder.feed(data)

    def _report(
        self, device: str, errors: list[FrameError], before_first: bool
    ) -> FrameError | None:
        """Count skipped frames (not those cut by joining a stream mid-frame)."""
        if not errors:
            return None
        last = errors[-1]
        if not before_first:
            for error in errors:
                self.observer.bad_frame(device, error)
        errors.clear()
        return None if before_first else last
