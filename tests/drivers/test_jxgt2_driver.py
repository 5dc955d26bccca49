"""JXGT2 brake tester driver against its simulator over TCP and a PTY, with faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext
from drivers.devices.jxgt2_brake import (
    BrakeSample,
    BrakeTesterStatus,
    Jxgt2BrakeTester,
    Jxgt2Options,
    WheelLoads,
    growth_phase_summary,
)
from drivers.errors import (
    ChecksumError,
    ConnectionLost,
    DeviceRefused,
    DriverError,
    FrameError,
    ResponseTimeout,
    UnexpectedResponse,
)
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.jxgt2 import ZERO_OFFSET_DAN, Jxgt2Sim, stream_frame_count
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import Recorder, stream_bus

FAST = 0.04  # time_scale of the ordinary tests: a whole brake test takes ~0.17 s


def make_scenario(time_scale: float = FAST, rise_time_s: float = 1.2) -> Scenario:
    """Two axles: a sound front axle, a rear axle whose right wheel locks."""
    rise = {"rise_time_s": rise_time_s}
    front = {
        "load_left_kg": 480,
        "load_right_kg": 470,
        "brake_left": {"max_force_dan": 420, "drag_force_dan": 6, **rise},
        "brake_right": {"max_force_dan": 405, "drag_force_dan": 5, **rise},
    }
    rear = {
        "load_left_kg": 330,
        "load_right_kg": 340,
        "brake_left": {"max_force_dan": 260, "drag_force_dan": 4},
        "brake_right": {"max_force_dan": 250, "drag_force_dan": 4, "locks": True},
    }
    timing = {"time_scale": time_scale, "seed": 5, "noise": 0.01}
    return Scenario.model_validate({"vehicle": {"axles": [front, rear]}, "timing": timing})


FAST_T = make_scenario().timing
FRONT = make_scenario().vehicle.axles[0]


@dataclass
class Rig:
    driver: Jxgt2BrakeTester
    sim: Jxgt2Sim
    faults: FaultPlan
    position: LanePosition
    observer: Recorder
    samples: list[BrakeSample] = field(default_factory=list)


@contextlib.asynccontextmanager
async def rig(
    scenario: Scenario | None = None,
    *,
    pty_link: Path | None = None,
    sim_options: dict[str, Any] | None = None,
    **options: Any,
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    scenario = scenario or make_scenario()
    faults = FaultPlan(seed=3)
    position = LanePosition(axle_count=len(scenario.vehicle.axles))
    sim = Jxgt2Sim(SimContext(scenario, faults, position, options=sim_options or {}))
    served = stream_bus(sim, faults, "brake-bus", response_timeout=0.2, pty_link=pty_link)
    async with served as (bus, observer, _):
        driver = Jxgt2BrakeTester("brake", bus, Jxgt2Options(**options))
        yield Rig(driver, sim, faults, position, observer)


def assert_stream_intact(rig: Rig, samples: tuple[BrakeSample, ...], scale: float = 1.0) -> None:
    """Every frame the simulator streamed arrived, in order, with its exact values."""
    sent = rig.sim.last_stream
    assert [s.index for s in samples] == list(range(len(sent)))
    received = [v for s in samples for v in (s.force_left_dan, s.force_right_dan)]
    assert received == pytest.approx(
        [v * scale for f in sent for v in (f.force_left, f.force_right)]
    )


async def test_registered_in_both_registries() -> None:
    spec = get_spec("jxgt2")
    assert spec.default_line.describe() == "9600 8N1"
    assert spec.options is Jxgt2Options
    assert "jxgt2" in sim_specs()
    bus = StreamBus("unused", "socket://127.0.0.1:9")
    device = spec.factory(DriverContext("b1", bus, None, Jxgt2Options(force_unit="N")))
    assert isinstance(device, Jxgt2BrakeTester)
    assert device.options.force_unit == "N"


async def test_weigh_then_brake_test_over_tcp() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        await r.driver.zero()
        loads = await r.driver.read_wheel_loads()
        assert loads.load_left_kg == pytest.approx(480, rel=0.05)
        assert loads.load_right_kg == pytest.approx(470, rel=0.05)
        result = await r.driver.run_brake_test(on_sample=r.samples.append)

        assert len(result.samples) == stream_frame_count(FRONT, FAST_T)
        assert_stream_intact(r, result.samples)
        assert list(result.samples) == r.samples  # on_sample saw each sample, live, in order
        assert result.maxima_source == "device"
        assert result.max_force_left_dan == r.sim.result.max_force_left
        assert result.max_force_left_dan == pytest.approx(420, rel=0.05)
        assert result.max_force_right_dan == pytest.approx(405, rel=0.05)
        assert result.drag_force_left_dan == pytest.approx(6, abs=1.5)
        assert result.drag_force_right_dan == pytest.approx(5, abs=1.5)
        onset = result.braking_onset_index
        assert onset is not None
        assert onset == pytest.approx(2.0 * FAST * 100, abs=2)  # pedal after the drag phase
        assert not any(s.braking for s in result.samples[:onset])
        assert all(s.braking for s in result.samples[onset:])
        assert not result.locked_left
        assert not result.locked_right
        assert result.max_difference_dan < 60
        assert r.position.axle_index == 1  # result read: the vehicle moved on


async def test_locked_wheel_on_second_axle() -> None:
    async with rig(make_scenario(time_scale=0.1)) as r:
        r.position.axle_index = 1
        await r.driver.lift_down()
        result = await r.driver.run_brake_test()
        assert result.locked_right
        assert not result.locked_left
        assert result.max_force_right_dan == pytest.approx(250, rel=0.06)
        assert r.position.axle_index == 0  # last axle read: next vehicle


async def test_newton_device_is_converted_to_dan() -> None:
    async with rig(sim_options={"force_unit": "N"}, force_unit="N") as r:
        await r.driver.lift_down()
        result = await r.driver.run_brake_test()
        assert r.sim.last_stream[-1].force_left > 3000  # the wire carries newtons
        assert_stream_intact(r, result.samples, scale=0.1)
        assert result.max_force_left_dan == pytest.approx(r.sim.result.max_force_left / 10)
        assert result.max_force_left_dan == pytest.approx(420 + ZERO_OFFSET_DAN, rel=0.05)


async def test_stream_only_maxima_leave_the_vehicle_in_place() -> None:
    async with rig(fetch_result=False, lift_after_test=True) as r:
        await r.driver.lift_down()
        result = await r.driver.run_brake_test()
        assert result.maxima_source == "stream"
        device = r.sim.result  # what the tester computed from the same frames
        assert (result.max_force_left_dan, result.max_force_right_dan) == (
            device.max_force_left,
            device.max_force_right,
        )
        assert (result.diff_force_left_dan, result.diff_force_right_dan) == (
            device.diff_force_left,
            device.diff_force_right,
        )
        assert r.position.axle_index == 0
        assert r.sim.lift_up  # lift_after_test raised it


async def test_zero_removes_the_force_offset() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        before = await r.driver.run_brake_test()
        r.position.axle_index = 0  # the same axle again
        await r.driver.zero()
        after = await r.driver.run_brake_test()
        drift = before.drag_force_left_dan - after.drag_force_left_dan
        assert drift == pytest.approx(ZERO_OFFSET_DAN, abs=1.0)
        assert after.drag_force_left_dan == pytest.approx(6, abs=1.0)


async def test_start_is_refused_while_the_lift_is_up() -> None:
    async with rig() as r:
        with pytest.raises(DeviceRefused):
            await r.driver.run_brake_test()
        assert r.sim.last_stream == []
        await r.driver.lift_down()
        result = await r.driver.run_brake_test()
        assert result.samples


async def test_poll_weighs_and_starts_nothing() -> None:
    async with rig() as r:
        status = await r.driver.poll()
        assert status == BrakeTesterStatus(0, 0, None)  # wheels on the raised lift
        await r.driver.lift_down()
        status = await r.driver.poll()
        assert status.lift_up is False
        assert status.load_left_kg == pytest.approx(480, rel=0.05)
        assert r.sim.last_stream == []
        assert not r.sim.streaming


async def test_whole_tester_raise_and_lower() -> None:
    async with rig() as r:
        await r.driver.raise_tester()
        await r.driver.lower_tester()
        assert not r.observer.bad_frames


FAULT_OUTCOMES: list[tuple[Fault, type[DriverError] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.SLOW_REPLY, ResponseTimeout),
    (Fault.BAD_CHECKSUM, ChecksumError),
    (Fault.NAK, DeviceRefused),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
]


def plausible(loads: WheelLoads) -> bool:
    return abs(loads.load_left_kg - 480) < 30 and abs(loads.load_right_kg - 470) < 30


@pytest.mark.parametrize(("fault", "error"), FAULT_OUTCOMES)
async def test_fault_is_reported_and_the_next_request_recovers(
    fault: Fault, error: type[DriverError] | None
) -> None:
    async with rig() as r:
        await r.driver.lift_down()
        r.faults.inject(fault, delay_s=0.3)
        if error is None:
            assert plausible(await r.driver.read_wheel_loads())
        else:
            with pytest.raises(error):
                await r.driver.read_wheel_loads()
        assert plausible(await r.driver.read_wheel_loads())
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames  # counted by the bus


async def test_disconnect_is_reported_and_the_bus_reconnects() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        r.faults.inject(Fault.DISCONNECT, delay_s=0.1)
        with pytest.raises(ConnectionLost):
            await r.driver.read_wheel_loads()
        await asyncio.wait_for(r.observer.opened.wait(), 5)
        assert plausible(await r.driver.read_wheel_loads())


def inject_at(r: Rig, index: int, fault: Fault) -> Callable[[BrakeSample], None]:
    """An ``on_sample`` that injects ``fault`` into the frame after sample ``index``."""

    def on_sample(sample: BrakeSample) -> None:
        r.samples.append(sample)
        if sample.index == index:
            r.faults.inject(fault)

    return on_sample


async def test_corrupted_stream_frame_fails_the_test_and_the_result_stays_readable() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        on_sample = inject_at(r, 8, Fault.BAD_CHECKSUM)
        with pytest.raises(FrameError, match="gaps"):
            await r.driver.run_brake_test(on_sample=on_sample)
        assert len(r.samples) == len(r.sim.last_stream) - 1
        maxima = await r.driver.read_result()
        assert maxima.max_force_left_dan == r.sim.result.max_force_left
        result = await r.driver.run_brake_test()  # and the next test is whole again
        assert_stream_intact(r, result.samples)


@pytest.mark.parametrize("fault", [Fault.SPLIT, Fault.GLUE, Fault.GARBAGE])
async def test_split_glued_or_noisy_stream_loses_nothing(fault: Fault) -> None:
    async with rig() as r:
        await r.driver.lift_down()
        on_sample = inject_at(r, 5, fault)
        result = await r.driver.run_brake_test(on_sample=on_sample)
        assert_stream_intact(r, result.samples)


async def test_missing_end_frame_times_out() -> None:
    async with rig(stream_silence_s=0.2) as r:
        await r.driver.lift_down()
        last = stream_frame_count(FRONT, FAST_T) - 1
        on_sample = inject_at(r, last, Fault.NO_REPLY)
        with pytest.raises(ResponseTimeout):
            await r.driver.run_brake_test(on_sample=on_sample)
        assert len(r.samples) == last + 1
        await r.driver.lift_up()  # the tester is listening again


async def test_lost_start_acknowledgement_is_reported() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        r.faults.inject(Fault.NO_REPLY)
        with pytest.raises(UnexpectedResponse, match="acknowledgement"):
            await r.driver.run_brake_test()
        assert (await r.driver.read_result()).max_force_left_dan > 0


async def test_disconnect_during_the_stream() -> None:
    async with rig() as r:
        await r.driver.lift_down()
        on_sample = inject_at(r, 3, Fault.DISCONNECT)
        with pytest.raises(ConnectionLost):
            await r.driver.run_brake_test(on_sample=on_sample)


async def test_over_a_pty(tmp_path: Path) -> None:
    async with rig(pty_link=tmp_path / "ttyBRAKE") as r:
        await r.driver.lift_down()
        assert plausible(await r.driver.read_wheel_loads())
        result = await r.driver.run_brake_test()
        assert_stream_intact(r, result.samples)
        assert result.max_force_left_dan == r.sim.result.max_force_left


async def test_ten_seconds_of_stream_at_100_hz_without_loss() -> None:
    """The one slow test: a real-time test of 10 s, every one of its 1000 frames kept.

    The wire has no sample counter, so "no gap" means: the simulator streams exactly N
    frames at 100 Hz and the driver numbers N samples 0..N-1 with the same values, and
    they arrived at the device rate (not in a burst at the end).
    """
    scenario = make_scenario(time_scale=1.0, rise_time_s=7.0)
    expected = stream_frame_count(scenario.vehicle.axles[0], scenario.timing)
    assert expected >= 1000
    async with rig(scenario) as r:
        await r.driver.lift_down()
        result = await r.driver.run_brake_test()
        assert len(result.samples) == expected
        assert_stream_intact(r, result.samples)
        assert len(result.samples) / 100 >= 10.0  # seconds of stream at the device rate
        span = result.samples[-1].received_s - result.samples[0].received_s
        assert (expected - 1) / span == pytest.approx(100, rel=0.05)


def test_a_wheel_locking_early_ends_the_growth_phase() -> None:
    """The process difference (过程差) is taken while forces build up: the right wheel
    locks at 300 daN and slides at 210 while the left one keeps rising to 400; the pair
    at the largest difference is the one just before the lock-up, not a sliding one."""
    left = [5, 50, 100, 150, 200, 250, 290, 320, 350, 380, 400, 400]
    right = [5, 60, 120, 180, 240, 300, 240, 210, 210, 210, 210, 210]
    assert growth_phase_summary(left, right) == (400, 300, 250, 300)
    # noise on the drag before braking is not a lock-up
    left = [6, 4, 6, 3, 50, 100, 150, 200]
    right = [5, 5, 2, 5, 40, 90, 120, 150]
    assert growth_phase_summary(left, right) == (200, 150, 200, 150)
    # without a lock-up, the phase runs to the later peak
    assert growth_phase_summary([0, 100, 200], [0, 150, 160]) == (200, 160, 100, 150)
