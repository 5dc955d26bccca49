"""TLCH-10 speedometer tester driver against its simulator over TCP and a PTY, with faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext, NoOptions
from drivers.devices.jxgt2_brake import Jxgt2BrakeTester
from drivers.devices.tlch10_speed import SpeedReading, Tlch10Options, Tlch10SpeedTester
from drivers.errors import (
    ChecksumError,
    ConnectionLost,
    DeviceRefused,
    DriverError,
    ResponseTimeout,
)
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.tlch10 import Tlch10Sim
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import Recorder, stream_bus

ACTUAL_AT_40 = 37.6  # roller speed when this vehicle's dashboard shows 40 km/h


def make_scenario(time_scale: float = 0.03) -> Scenario:
    return Scenario.model_validate(
        {
            "vehicle": {
                "axles": [
                    {
                        "load_left_kg": 480,
                        "load_right_kg": 470,
                        "brake_left": {"max_force_dan": 420},
                        "brake_right": {"max_force_dan": 405},
                    }
                ],
                "speedometer": {"actual_at_indicated_40_kmh": ACTUAL_AT_40, "ramp_kmh_per_s": 8},
            },
            # at 0.03 a whole run (reaction, ramp to 37.6 km/h, hold, braking) takes ~0.27 s
            "timing": {"time_scale": time_scale, "seed": 9, "noise": 0.01},
        }
    )


@dataclass
class Rig:
    driver: Tlch10SpeedTester
    sim: Tlch10Sim
    faults: FaultPlan
    observer: Recorder
    bus: StreamBus


@contextlib.asynccontextmanager
async def rig(
    pty_link: Path | None = None, time_scale: float = 0.03, **options: Any
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    faults = FaultPlan(seed=4)
    sim = Tlch10Sim(SimContext(make_scenario(time_scale), faults, LanePosition()))
    served = stream_bus(sim, faults, "speed-bus", response_timeout=0.2, pty_link=pty_link)
    async with served as (bus, observer, _):
        options.setdefault("poll_interval_s", 0.02)
        driver = Tlch10SpeedTester("speed", bus, Tlch10Options(**options))
        yield Rig(driver, sim, faults, observer, bus)


async def test_registered_in_both_registries() -> None:
    spec = get_spec("tlch10")
    assert spec.default_line.describe() == "9600 8N1"
    assert "tlch10" in sim_specs()
    bus = StreamBus("unused", "socket://127.0.0.1:9")
    device = spec.factory(DriverContext("s1", bus, None, NoOptions()))
    assert isinstance(device, Tlch10SpeedTester)
    assert device.options == Tlch10Options()


async def test_latch_at_the_speed_the_dashboard_shows_as_40() -> None:
    async with rig() as r:
        await r.driver.start()  # S4 clears while the lift is still up
        await r.driver.lift_down()
        reading = await r.driver.wait_for_latch(timeout=3.0)
        assert reading.latched
        assert reading.latched_speed_kmh == pytest.approx(ACTUAL_AT_40, abs=0.5)
        # the rollers hold only briefly after the latch, then brake: how far they have
        # slowed by this read depends on scheduling, but they never speed up again
        assert 0.0 <= reading.speed_kmh <= ACTUAL_AT_40 + 2.0
        stopped = await r.driver.wait_for_latch(timeout=3.0, until_stopped=True)
        assert stopped.speed_kmh == 0.0
        assert stopped.latched_speed_kmh == reading.latched_speed_kmh
        await r.driver.lift_up()
        assert (await r.driver.read_speed()).latched_speed_kmh == reading.latched_speed_kmh


async def test_speed_ramps_up_before_the_latch() -> None:
    async with rig() as r:
        await r.driver.start()
        await r.driver.lift_down()
        readings: list[SpeedReading] = []
        while not (reading := await r.driver.read_speed()).latched:
            readings.append(reading)
            await asyncio.sleep(0.02)  # the device's own poll period, scaled
        speeds = [reading.speed_kmh for reading in readings]
        assert max(speeds) < ACTUAL_AT_40 + 1
        assert speeds[-1] > speeds[len(speeds) // 2] > 0  # it accelerated
        assert all(reading.latched_speed_kmh == 0.0 for reading in readings)


async def test_nothing_moves_while_the_lift_is_up() -> None:
    async with rig() as r:
        assert await r.driver.poll() == SpeedReading(0.0, 0.0, False)
        await r.driver.start()
        with pytest.raises(ResponseTimeout):
            await r.driver.wait_for_latch(timeout=0.1)
        assert await r.driver.read_speed() == SpeedReading(0.0, 0.0, False)


async def test_start_clears_the_previous_latch() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        await r.driver.start()
        await r.driver.wait_for_latch(timeout=3.0)
        await r.driver.lift_up()
        await r.driver.start()
        assert await r.driver.read_speed() == SpeedReading(0.0, 0.0, False)


async def test_commands_the_speed_tester_lacks_are_refused() -> None:
    async with rig() as r:
        brake_driver_on_wrong_port = Jxgt2BrakeTester("wrong", r.bus)
        with pytest.raises(DeviceRefused):
            await brake_driver_on_wrong_port.zero()
        assert await r.driver.read_speed() == SpeedReading(0.0, 0.0, False)


FAULT_OUTCOMES: list[tuple[Fault, type[DriverError] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.SLOW_REPLY, ResponseTimeout),
    (Fault.BAD_CHECKSUM, ChecksumError),
    (Fault.NAK, DeviceRefused),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
]


@pytest.mark.parametrize(("fault", "error"), FAULT_OUTCOMES)
async def test_fault_is_reported_and_the_next_request_recovers(
    fault: Fault, error: type[DriverError] | None
) -> None:
    async with rig(time_scale=0.005) as r:
        await r.driver.lift_down()
        await r.driver.start()
        latched = await r.driver.wait_for_latch(timeout=3.0, until_stopped=True)
        r.faults.inject(fault, delay_s=0.3)
        if error is None:
            assert await r.driver.read_speed() == latched
        else:
            with pytest.raises(error):
                await r.driver.read_speed()
        assert await r.driver.read_speed() == latched  # never a corrupted value
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames


async def test_disconnect_is_reported_and_the_bus_reconnects() -> None:
    async with rig() as r:
        r.faults.inject(Fault.DISCONNECT, delay_s=0.1)
        with pytest.raises(ConnectionLost):
            await r.driver.lift_down()
        await asyncio.wait_for(r.observer.opened.wait(), 5)
        await r.driver.lift_down()
        assert not r.sim.lift_up


async def test_over_a_pty(tmp_path: Path) -> None:
    async with rig(pty_link=tmp_path / "ttySPEED") as r:
        await r.driver.start()
        await r.driver.lift_down()
        reading = await r.driver.wait_for_latch(timeout=3.0)
        assert reading.latched_speed_kmh == pytest.approx(ACTUAL_AT_40, abs=0.5)
