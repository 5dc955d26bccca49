"""The bus owner outlives its jobs' bugs: whatever a job raises (a codec bug, a
transaction's callback, an observer hook), that one job fails, its caller gets the
exception, it is counted and reported, and the owner serves the next job."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.bus import StreamBus, Transaction
from drivers.errors import PortUnavailable
from drivers.protocols.xk3190 import ReplyDecoder
from drivers.transport import ByteLink, LineSettings, open_link
from simulators.base import LanePosition, SimContext
from simulators.devices.xk3190 import Xk3190Sim
from simulators.faults import FaultPlan
from simulators.scenario import Scenario
from tests.drivers.stream_rig import Recorder, stream_bus


class CrashRecorder(Recorder):
    """Remembers the crashes the owner reports."""

    def __init__(self) -> None:
        super().__init__()
        self.crashes: list[tuple[str, Exception]] = []

    def job_crashed(self, device: str, error: Exception) -> None:
        self.crashes.append((device, error))


def weigher_sim(faults: FaultPlan) -> Xk3190Sim:
    brake = {"max_force_dan": 300}
    axle = {"load_left_kg": 500, "load_right_kg": 500, "brake_left": brake, "brake_right": brake}
    scenario = Scenario.model_validate(
        {"vehicle": {"axles": [axle, axle]}, "timing": {"time_scale": 0.05, "seed": 1}}
    )
    position = LanePosition(axle_count=2)
    return Xk3190Sim(SimContext(scenario, faults, position, options={"mode": "continuous"}))


async def one_frame(bus: StreamBus, device: str = "weigher") -> list[Any]:
    """A real exchange: listen for one streamed weight frame."""
    return await bus.transact(device, Transaction(b"", ReplyDecoder(), total_timeout=5.0))


async def test_a_job_that_raises_fails_alone_and_the_bus_goes_on() -> None:
    faults = FaultPlan(seed=1)
    async with stream_bus(weigher_sim(faults), faults, "rs232", response_timeout=1.0) as (
        bus,
        _,
        _,
    ):
        observer = CrashRecorder()
        bus.observer = observer

        async def buggy(link: ByteLink) -> None:
            raise KeyError("a codec bug")

        with pytest.raises(KeyError, match="a codec bug"):
            await bus.submit("weigher", buggy)

        def crashing_callback(message: Any) -> None:
            raise ZeroDivisionError("on_message bug")

        tx = Transaction(b"", ReplyDecoder(), on_message=crashing_callback, total_timeout=5.0)
        with pytest.raises(ZeroDivisionError):
            await bus.transact("weigher", tx)

        assert len(await one_frame(bus)) == 1, "the owner still serves the bus"
        assert bus.crashed_jobs == 2
        assert [(d, type(e)) for d, e in observer.crashes] == [
            ("weigher", KeyError),
            ("weigher", ZeroDivisionError),
        ]


async def test_an_observer_that_raises_does_not_end_the_owner() -> None:
    faults = FaultPlan(seed=2)

    class BrokenMetrics(Recorder):
        def request_done(self, device: str, seconds: float, error: Exception | None) -> None:
            raise RuntimeError("metrics bug")

        def frame(self, device: str, outgoing: bool, data: bytes) -> None:
            raise ValueError("evidence hook bug")

    async with stream_bus(weigher_sim(faults), faults, "rs232", response_timeout=1.0) as (
        bus,
        _,
        _,
    ):
        bus.observer = BrokenMetrics()
        with pytest.raises(ValueError, match="evidence hook bug"):
            await one_frame(bus)  # the frame hook runs inside the job: that job fails
        bus.observer = Recorder()
        assert len(await one_frame(bus)) == 1
        assert bus.crashed_jobs == 1 and bus.crashed_observer_calls == 1
        assert not asyncio.current_task().cancelling()  # type: ignore[union-attr]


async def test_a_pyserial_url_handler_is_refused_without_blocking() -> None:
    """rfc2217:// (and loop://, spy://) would open in pyserial's own thread and block the
    loop: refused at once with the reason, like any port that cannot be opened."""
    for url in ("rfc2217://127.0.0.1:1", "loop://", "spy:///dev/ttyS0"):
        with pytest.raises(PortUnavailable, match="not supported"):
            await open_link(url, LineSettings())
