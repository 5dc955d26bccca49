"""The device supervisor keeps polling whatever goes wrong around a poll: a driver bug,
or a bug in what the gateway does with a good reading (publishing telemetry)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import ClassVar

from drivers.devices.base import DeviceClass, Reading
from gateway.metrics import Metrics
from gateway.records import Availability, DeviceStatus
from gateway.supervisor import DeviceSupervisor


@dataclass(frozen=True, slots=True)
class Weight(Reading):
    weight_kg: float


class CountingDevice:
    """A device that always answers (the supervisor's contract, not a driver's)."""

    device_class: ClassVar[DeviceClass] = DeviceClass.AXLE_WEIGHER

    def __init__(self) -> None:
        self.device_id = "weigher"
        self.polls = 0

    async def poll(self) -> Reading:
        self.polls += 1
        return Weight(500.0 + self.polls)


async def test_a_reading_callback_that_raises_does_not_end_polling() -> None:
    device = CountingDevice()
    metrics = Metrics()
    statuses: list[DeviceStatus] = []

    def broken_publisher(device_id: str, reading: Reading) -> None:
        raise TypeError("telemetry model rejected a field")

    supervisor = DeviceSupervisor(device, 0.01, metrics, statuses.append, broken_publisher)
    task = asyncio.create_task(supervisor.run())
    try:
        async with asyncio.timeout(10):
            while device.polls < 5:
                await asyncio.sleep(0.01)
        assert not task.done(), "the poll loop ended"
    finally:
        task.cancel()
    assert supervisor.availability is Availability.ONLINE  # the device itself is fine
    assert [s.availability for s in statuses] == [Availability.ONLINE]
    restarts = metrics.task_restarts.labels("reading:weigher")._value.get()
    assert restarts >= 4
