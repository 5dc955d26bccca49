"""A simulator, a Modbus bus to it and the driver, for the Modbus driver tests.

Modbus instruments are read by polling, so tests observe a running test the way the
gateway does: poll until the status word says so (bounded by a timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drivers.devices.base import DriverContext
from drivers.devices.modbus_generic import ModbusDevice, ModbusReading
from drivers.errors import DriverError, FrameError
from drivers.modbus.bus import ModbusBus
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.faults import FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario

TIMEOUT = 0.2  # response timeout of the test buses, s
SLOW = 0.5  # a slow reply arrives after the timeout


def scenario(time_scale: float = 0.05, **vehicle: Any) -> Scenario:
    """A two-axle car; ``vehicle`` replaces parts of it."""
    brake = {"max_force_dan": 420, "drag_force_dan": 6, "rise_time_s": 1.2}
    data: dict[str, Any] = {
        "axles": [
            {"load_left_kg": 480, "load_right_kg": 470, "brake_left": brake, "brake_right": brake},
            {"load_left_kg": 330, "load_right_kg": 340, "brake_left": brake, "brake_right": brake},
        ],
        "lamps": {
            "system": 2,
            "left_outer": {"high_intensity_cd": 21500, "height_mm": 710},
            "right_outer": {"high_intensity_cd": 20800, "height_mm": 705},
        },
        "speedometer": {"actual_at_indicated_40_kmh": 37.6},
    }
    data.update(vehicle)
    return Scenario.model_validate(
        {"vehicle": data, "timing": {"time_scale": time_scale, "seed": 11, "noise": 0.01}}
    )


@dataclass
class Recorder:
    """Bus observer that remembers what it saw."""

    errors: list[DriverError] = field(default_factory=list)
    requests: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)
    lost: asyncio.Event = field(default_factory=asyncio.Event)

    def request_done(self, device: str, seconds: float, error: Exception | None) -> None:
        self.requests += 1
        if error is not None:
            self.errors.append(error)

    def bad_frame(self, device: str, error: FrameError) -> None:
        self.errors.append(error)

    def busy(self, seconds: float) -> None:
        pass

    def port_state(self, is_open: bool, reason: str) -> None:
        (self.opened if is_open else self.lost).set()


@dataclass
class Rig:
    """A simulator, a bus to it, and the driver built through the registry."""

    sim: Any
    bus: ModbusBus
    device: ModbusDevice
    faults: FaultPlan
    observer: Recorder
    position: LanePosition


@asynccontextmanager
async def rig(
    protocol: str,
    scn: Scenario | None = None,
    *,
    unit: int = 1,
    pty: Path | None = None,
    framing: str | None = None,
    driver_options: dict[str, Any] | None = None,
    driver_protocol: str | None = None,
    inter_request_delay: float = 0.0,
) -> AsyncIterator[Rig]:
    scn = scn or scenario()
    faults = FaultPlan(seed=3)
    position = LanePosition(axle_count=len(scn.vehicle.axles))
    sim_options = {"framing": framing} if framing else {}
    sim = sim_specs()[protocol].factory(SimContext(scn, faults, position, 1, sim_options))
    async with asyncio.TaskGroup() as group:
        serving = group.create_task(sim.serve_rtu_pty(pty) if pty else sim.serve("127.0.0.1", 0))
        await sim.ready.wait()
        observer = Recorder()
        bus = ModbusBus(
            "bus",
            sim.url,
            response_timeout=TIMEOUT,
            inter_request_delay=inter_request_delay,
            reopen_min=0.05,
            reopen_max=0.1,
            observer=observer,
        )
        owner = group.create_task(bus.run())
        spec = get_spec(driver_protocol or protocol)
        options = spec.options.model_validate(driver_options or {})
        device = spec.factory(DriverContext("dut", bus, unit, options))
        assert isinstance(device, ModbusDevice)
        try:
            yield Rig(sim, bus, device, faults, observer, position)
        finally:
            serving.cancel()
            owner.cancel()


async def until(
    device: ModbusDevice, ready: Callable[[ModbusReading], bool], timeout: float = 5.0
) -> list[ModbusReading]:
    """Poll every 10 ms until ``ready``; returns every reading taken."""
    seen: list[ModbusReading] = []
    async with asyncio.timeout(timeout):
        while not seen or not ready(seen[-1]):
            if seen:
                await asyncio.sleep(0.01)
            seen.append(await device.poll())
    return seen


async def recovered(device: ModbusDevice, timeout: float = 5.0) -> ModbusReading:
    """The first successful poll; every failure on the way must be a DriverError."""
    async with asyncio.timeout(timeout):
        while True:
            try:
                return await device.poll()
            except DriverError:
                await asyncio.sleep(0.02)
