"""The thin async runner of the sans-I/O machines (``sansio.drive``): actions executed in
order, replies and device errors fed back as events, the clock's reads, procedure time
scaled, and the safe-state commands sent on every way out (also on cancellation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from drivers.errors import ResponseTimeout
from gateway.inspection.sansio import (
    Action,
    Command,
    DeviceFailed,
    Event,
    Finish,
    ProcedureMachine,
    Read,
    Reply,
    Sample,
    Say,
    SetClock,
    drive,
)
from gateway.records import Verdict


class Counter:
    """A device: counts reads, fails when told."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail_after: int | None = None

    async def read(self) -> int:
        self.calls.append("read")
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise ResponseTimeout("no answer within 0.5 s")
        return len(self.calls)

    async def hello(self, name: str) -> str:
        self.calls.append(f"hello {name}")
        return f"hi {name}"

    async def off(self) -> None:
        self.calls.append("off")


class Three(ProcedureMachine):
    """Greets, then takes three samples, then finishes."""

    name = "T"

    def __init__(self, samples: int = 3) -> None:
        super().__init__()
        self.events: list[Event] = []
        self.samples = samples

    def start(self, t_s: float) -> list[Action]:
        return [Command("dev", "hello", ("lane",), reply=True)]

    def handle(self, event: Event) -> list[Action]:
        self.events.append(event)
        if isinstance(event, Reply):
            return [Say("greeted", str(event.value)), SetClock(1.0, (Read("dev", "read"),))]
        if isinstance(event, DeviceFailed):
            return self.done(Finish(Verdict.ABORTED, reason=event.error))
        assert isinstance(event, Sample)
        if len([e for e in self.events if isinstance(e, Sample)]) == self.samples:
            return self.done(Finish(Verdict.PASS))
        return []

    def evidence(self) -> dict[str, Any]:
        return {}

    def safe_state(self) -> list[Command]:
        return [Command("dev", "off")]


async def test_drive_runs_actions_samples_and_finishes() -> None:
    device, said = Counter(), list[Say]()
    machine = Three()
    finish = await drive(machine, {"dev": device}, said.append, time_scale=0.01)
    assert finish.verdict is Verdict.PASS
    assert device.calls == ["hello lane", "read", "read", "read", "off"]
    assert [s.step for s in said] == ["greeted"]
    samples = [e for e in machine.events if isinstance(e, Sample)]
    assert [s.readings["dev"] for s in samples] == [2, 3, 4]
    times = [s.t_s for s in samples]  # procedure seconds: wall time / time scale
    assert times == sorted(times) and times[0] >= 1.0 - 1e-6


async def test_a_device_error_becomes_an_event_and_safe_state_runs() -> None:
    device = Counter()
    device.fail_after = 2
    finish = await drive(Three(samples=10), {"dev": device}, lambda s: None, time_scale=0.01)
    assert finish.verdict is Verdict.ABORTED and finish.reason == "no answer within 0.5 s"
    assert device.calls[-1] == "off"


async def test_cancellation_still_sends_the_safe_state() -> None:
    device = Counter()
    task = asyncio.create_task(drive(Three(samples=10**6), {"dev": device}, lambda s: None, 0.01))
    while device.calls.count("read") < 2:
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert device.calls[-1] == "off"


async def test_a_machine_that_waits_for_nothing_is_a_bug() -> None:
    class Stuck(Three):
        def start(self, t_s: float) -> list[Action]:
            return [Say("hello", "and then nothing")]

    with pytest.raises(RuntimeError, match="waits for nothing"):
        await drive(Stuck(), {"dev": Counter()}, lambda s: None)
