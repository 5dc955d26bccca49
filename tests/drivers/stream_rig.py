"""A stream simulator on a TCP or PTY endpoint and a StreamBus to it, for the stream driver tests.

Each driver test file builds its own simulator and driver; this module starts the endpoint
and the bus owner inside one TaskGroup and cancels both when the test is done.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from drivers.bus import NullObserver, StreamBus
from drivers.errors import FrameError
from simulators.base import StreamSim
from simulators.endpoint import PtyEndpoint, TcpEndpoint
from simulators.faults import FaultPlan


class ManualClock:
    """A clock the test moves by hand; a subclass sets where it starts."""

    start = 0.0

    def __init__(self) -> None:
        self.now = self.start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Recorder(NullObserver):
    """Bus observer that remembers skipped frames and port openings."""

    def __init__(self) -> None:
        self.bad_frames: list[FrameError] = []
        self.opened = asyncio.Event()

    def bad_frame(self, device: str, error: FrameError) -> None:
        self.bad_frames.append(error)

    def port_state(self, is_open: bool, reason: str) -> None:
        if is_open:
            self.opened.set()
        else:
            self.opened.clear()


@contextlib.asynccontextmanager
async def stream_bus(
    sim: StreamSim,
    faults: FaultPlan,
    name: str,
    *,
    response_timeout: float,
    reopen_min: float = 0.05,
    pty_link: Path | None = None,
) -> AsyncIterator[tuple[StreamBus, Recorder, TcpEndpoint | PtyEndpoint]]:
    """Serve ``sim`` on a PTY (when ``pty_link`` is given) or TCP, with a bus to it.

    Yields the bus, its observer and the endpoint; the endpoint and the bus owner run in
    one TaskGroup and are cancelled on the way out.
    """
    endpoint: TcpEndpoint | PtyEndpoint
    if pty_link is not None:
        endpoint = PtyEndpoint(sim.handle, faults, symlink=pty_link, nak=sim.nak)
    else:
        endpoint = TcpEndpoint(sim.handle, faults, nak=sim.nak)
    observer = Recorder()
    async with asyncio.TaskGroup() as group:
        server = group.create_task(endpoint.serve())
        await endpoint.ready.wait()
        bus = StreamBus(
            name,
            endpoint.url,
            response_timeout=response_timeout,
            reopen_min=reopen_min,
            observer=observer,
        )
        owner = group.create_task(bus.run())
        try:
            yield bus, observer, endpoint
        finally:
            owner.cancel()
            server.cancel()
