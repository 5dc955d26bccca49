"""FLB-100 opacimeter driver against its simulator over TCP and a PTY, with faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DriverContext
from drivers.devices.flb100_opacimeter import (
    Flb100Opacimeter,
    FreeAccelResult,
    LastAcceleration,
    Mode,
    OpacityReading,
)
from drivers.errors import (
    ChecksumError,
    DeviceRefused,
    ResponseTimeout,
    TransportError,
)
from drivers.protocols.flb100 import Nak, ResponseDecoder, StatusFlags, encode_request
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.flb100 import ACCEL_S, Flb100Sim, opacity_pct
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import ManualClock, Recorder, stream_bus

FAST = 0.05  # time_scale: one free acceleration lasts 0.1 s
AXLES = [
    {
        "load_left_kg": 900,
        "load_right_kg": 900,
        "brake_left": {"max_force_dan": 600},
        "brake_right": {"max_force_dan": 600},
    }
]
PEAKS = [0.9, 0.85, 0.8, 0.82]


def make_scenario(
    diesel: dict[str, Any] | None = None, *, noise: float = 0.0, warmup_s: float = 0.0
) -> Scenario:
    """A diesel vehicle (scenario defaults: idle 750, max 3800 r/min); no noise by default."""
    vehicle: dict[str, Any] = {"axles": AXLES}
    if diesel is not None:
        vehicle["diesel"] = diesel
    timing = {"time_scale": FAST, "seed": 11, "noise": noise, "analyser_warmup_s": warmup_s}
    return Scenario.model_validate({"vehicle": vehicle, "timing": timing})


IDLE_K = round(0.1 * sum(PEAKS) / len(PEAKS), 2)
IDLE = OpacityReading(IDLE_K, round(opacity_pct(IDLE_K), 1), 60, 80, 750)


class FakeClock(ManualClock):
    """A clock the test moves by hand."""

    start = 500.0


@dataclass
class Rig:
    driver: Flb100Opacimeter
    sim: Flb100Sim
    faults: FaultPlan
    observer: Recorder
    bus: StreamBus


@contextlib.asynccontextmanager
async def rig(
    scenario: Scenario | None = None,
    *,
    sim_options: dict[str, Any] | None = None,
    clock: Callable[[], float] | None = None,
    pty_link: Path | None = None,
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    scenario = scenario or make_scenario({})
    faults = FaultPlan(seed=5)
    ctx = SimContext(scenario, faults, LanePosition(), options=sim_options or {})
    sim = Flb100Sim(ctx, clock) if clock is not None else Flb100Sim(ctx)
    served = stream_bus(sim, faults, "opa-bus", response_timeout=0.3, pty_link=pty_link)
    async with served as (bus, observer, _):
        yield Rig(Flb100Opacimeter("opa", bus), sim, faults, observer, bus)


async def test_registered_with_its_simulator() -> None:
    spec = get_spec("flb100")
    assert spec.default_line.describe() == "9600 8N1"
    assert "flb100" in sim_specs()
    async with rig() as r:
        driver = spec.factory(DriverContext("opa2", r.bus, 0x02, spec.options()))
        assert isinstance(driver, Flb100Opacimeter) and driver.did == 0x02
        assert await driver.poll() == IDLE


async def test_idle_realtime_and_status() -> None:
    async with rig() as r:
        assert await r.driver.read_realtime() == IDLE
        assert await r.driver.read_status() == StatusFlags.DIRECT_MODE
        await r.driver.set_mode(Mode.STEADY)
        assert await r.driver.read_status() == StatusFlags.STEADY_MODE


async def test_free_acceleration_sequence() -> None:
    clock = FakeClock()
    accel = ACCEL_S * FAST
    async with rig(clock=clock) as r:
        await r.driver.linearity_zero()
        await r.driver.set_mode(Mode.FREE_ACCEL)
        assert await r.driver.read_free_acceleration_result() is None  # none yet
        for index, peak in enumerate(PEAKS):
            await r.driver.trigger_free_acceleration()
            assert StatusFlags.ACCELERATING in await r.driver.read_status()
            assert await r.driver.read_free_acceleration_result() is None  # running
            clock.advance(accel / 2)
            top = await r.driver.read_realtime()
            assert top.k_m1 == pytest.approx(peak, abs=0.01)
            assert top.engine_speed_rpm == 3800 and top.gas_temp_c == 90
            clock.advance(accel / 2)
            result = await r.driver.read_free_acceleration_result()
            assert (result is None) == (index < 3)
        assert result == FreeAccelResult(0.84, (0.9, 0.85, 0.8, 0.82))
        assert StatusFlags.FREE_ACCEL_DATA_VALID in await r.driver.read_status()
        assert await r.driver.read_last_acceleration() == LastAcceleration(0.82, 3800)
        curve = await r.driver.read_acceleration_curve()
        assert len(curve.n_pct) == 100 and curve.max_rpm == 3800
        assert max(curve.n_pct) == pytest.approx(opacity_pct(0.82), abs=0.2)
        assert curve.n_pct[0] < 5 and curve.n_pct[-1] < 5
        assert await r.driver.read_realtime() == IDLE  # back at idle


async def test_results_come_from_the_scenario_with_noise() -> None:
    clock = FakeClock()
    scenario = make_scenario({"peak_k_m1": [2.5, 2.4, 2.6, 2.5]}, noise=0.02)
    async with rig(scenario, clock=clock) as r:
        await r.driver.set_mode(Mode.FREE_ACCEL)
        for _ in range(4):
            await r.driver.trigger_free_acceleration()
            clock.advance(ACCEL_S * FAST)
        result = await r.driver.read_free_acceleration_result()
    assert result is not None
    assert all(2.1 < k < 2.9 for k in result.k_values_m1)
    assert result.k_values_m1 != (2.5, 2.4, 2.6, 2.5)  # noisy, not canned
    assert result.k_avg_m1 == pytest.approx(sum(result.k_values_m1) / 4, abs=0.006)


async def test_refusals() -> None:
    async with rig() as r:
        with pytest.raises(DeviceRefused):
            await r.driver.trigger_free_acceleration()  # not in free-acceleration mode
        with pytest.raises(DeviceRefused):
            await r.driver.read_check_value()  # not in linearity-check mode
        with pytest.raises(DeviceRefused):
            await r.driver.start_steady_measurement()  # not in steady-state mode
        await r.driver.set_mode(Mode.FREE_ACCEL)
        await r.driver.trigger_free_acceleration()
        with pytest.raises(DeviceRefused):
            await r.driver.trigger_free_acceleration()  # one is running
        unknown = Transaction(encode_request(0x30), ResponseDecoder())
        assert await r.bus.transact("raw", unknown) == [Nak()]  # bare NAK
        bad = Transaction(bytes.fromhex("02 04 01 00"), ResponseDecoder())
        with pytest.raises(ResponseTimeout):
            await r.bus.transact("raw", bad)  # wrong checksum: silence


async def test_steady_state_measurement() -> None:
    async with rig() as r:
        await r.driver.set_mode(Mode.STEADY)
        await r.driver.start_steady_measurement()
        assert StatusFlags.STEADY_MEASURING in await r.driver.read_status()
        await r.driver.read_realtime()
        await r.driver.stop_steady_measurement()
        result = await r.driver.read_steady_result()
        assert (result.k_m1, result.n_pct, result.gas_temp_c, result.oil_temp_c) == (
            IDLE.k_m1,
            IDLE.n_pct,
            60,
            80,
        )


async def test_linearity_check() -> None:
    async with rig(sim_options={"check_filter_n_pct": 30.0}) as r:
        await r.driver.linearity_check_mode()
        assert StatusFlags.LINEARITY_CHECK_MODE in await r.driver.read_status()
        assert await r.driver.read_check_value() == 30.0


async def test_warm_up() -> None:
    clock = FakeClock()
    async with rig(make_scenario({}, warmup_s=300), clock=clock) as r:
        assert StatusFlags.WARMING_UP in await r.driver.read_status()
        assert (await r.driver.read_realtime()).k_m1 == 0.0
        with pytest.raises(DeviceRefused):
            await r.driver.set_mode(Mode.FREE_ACCEL)
        clock.advance(300 * FAST)
        await r.driver.set_mode(Mode.FREE_ACCEL)
        assert await r.driver.read_status() == StatusFlags.FREE_ACCEL_MODE


async def test_without_a_diesel_engine() -> None:
    async with rig(make_scenario(None)) as r:
        reading = await r.driver.read_realtime()
        await r.driver.set_mode(Mode.FREE_ACCEL)
        await r.driver.trigger_free_acceleration()
    assert (reading.k_m1, reading.n_pct, reading.engine_speed_rpm) == (0.0, 0.0, 0)


FAULT_OUTCOMES: list[tuple[Fault, type[Exception] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.BAD_CHECKSUM, ChecksumError),
    (Fault.NAK, DeviceRefused),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SLOW_REPLY, None),  # 0.1 s late: within the response timeout
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
    (Fault.DISCONNECT, TransportError),
]


@pytest.mark.parametrize(("fault", "error"), FAULT_OUTCOMES)
async def test_fault_is_reported_and_the_next_request_recovers(
    fault: Fault, error: type[Exception] | None
) -> None:
    async with rig() as r:
        assert await r.driver.read_realtime() == IDLE
        r.faults.inject(fault, delay_s=0.1)
        if error is None:
            assert await r.driver.read_realtime() == IDLE
        else:
            with pytest.raises(error):
                await r.driver.read_realtime()
        if fault is Fault.DISCONNECT:
            await asyncio.wait_for(r.observer.opened.wait(), 5)
        assert await r.driver.read_realtime() == IDLE
        assert await r.driver.read_status() == StatusFlags.DIRECT_MODE
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames  # counted


@pytest.mark.parametrize(("fault", "delay"), [(Fault.GLUE, 0.5), (Fault.SLOW_REPLY, 0.5)])
async def test_a_stale_reply_to_another_command_is_skipped(fault: Fault, delay: float) -> None:
    async with rig() as r:
        r.faults.inject(fault, delay_s=delay)
        with pytest.raises(ResponseTimeout):
            await r.driver.read_status()
        assert await r.driver.read_realtime() == IDLE  # the status frame comes first: skipped
        assert await r.driver.read_status() == StatusFlags.DIRECT_MODE


async def test_over_a_pty(tmp_path: Path) -> None:
    async with rig(pty_link=tmp_path / "flb100") as r:
        assert await r.driver.read_realtime() == IDLE
        r.faults.inject(Fault.BAD_CHECKSUM)
        with pytest.raises(ChecksumError):
            await r.driver.read_status()
        await r.driver.set_mode(Mode.FREE_ACCEL)
        assert await r.driver.read_status() == StatusFlags.FREE_ACCEL_MODE
