"""NHA-503 gas analyser driver against its simulator over TCP and a PTY, with faults."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from drivers.bus import StreamBus, Transaction
from drivers.devices.base import DriverContext
from drivers.devices.nha503_analyser import (
    AmbientReading,
    CalibrationReading,
    GasReading,
    IdleValues,
    Nha503Analyser,
    Nha503Options,
    Sensor,
)
from drivers.errors import (
    ChecksumError,
    DeviceBusy,
    DeviceFault,
    DeviceRefused,
    LocalProtocolError,
    ResponseTimeout,
    TransportError,
)
from drivers.protocols.nha503 import (
    AnalyserStatus,
    Command,
    Nak,
    ReplyDecoder,
    Result,
    ResultCode,
    encode_command,
)
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.nha503 import RISE_TAU_S, EngineRegime, Nha503Sim, brettschneider, exhaust
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import ManualClock, Recorder, stream_bus

FAST = 0.02  # time_scale: a zero takes 0.1 s, a span calibration 0.2 s
AXLES = [
    {
        "load_left_kg": 450,
        "load_right_kg": 450,
        "brake_left": {"max_force_dan": 300},
        "brake_right": {"max_force_dan": 300},
    }
]


def make_scenario(
    petrol: dict[str, Any] | None = None, *, noise: float = 0.0, warmup_s: float = 0.0
) -> Scenario:
    """A petrol car (defaults of the scenario model unless overridden); no noise by default."""
    vehicle: dict[str, Any] = {"axles": AXLES}
    if petrol is not None:
        vehicle["petrol"] = petrol
    timing = {"time_scale": FAST, "seed": 7, "noise": noise, "analyser_warmup_s": warmup_s}
    return Scenario.model_validate({"vehicle": vehicle, "timing": timing})


PETROL = make_scenario({}).vehicle.petrol
assert PETROL is not None
#: what the bench shows before the pump ever ran: ambient air, engine idling
AIR_READING = GasReading(0, 0.0, 0.04, 20.9, 0, 800, 85.0, 9.99, 0, False, False)


class FakeClock(ManualClock):
    """A clock the test moves by hand."""

    start = 1000.0


@dataclass
class Rig:
    driver: Nha503Analyser
    sim: Nha503Sim
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
    **options: Any,
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    scenario = scenario or make_scenario({})
    faults = FaultPlan(seed=3)
    ctx = SimContext(scenario, faults, LanePosition(), options=sim_options or {})
    sim = Nha503Sim(ctx, clock) if clock is not None else Nha503Sim(ctx)
    served = stream_bus(sim, faults, "gas-bus", response_timeout=0.3, pty_link=pty_link)
    async with served as (bus, observer, _):
        driver_options = Nha503Options(**{"action_poll_s": 0.02, **options})
        yield Rig(Nha503Analyser("gas", bus, driver_options), sim, faults, observer, bus)


async def test_registered_with_its_simulator() -> None:
    spec = get_spec("nha503")
    assert spec.default_line.describe() == "9600 8N1"
    assert spec.options is Nha503Options
    assert "nha503" in sim_specs()
    with pytest.raises(ValidationError):
        Nha503Options(new_format=True, old_firmware=True)
    async with rig() as r:
        ctx = DriverContext("gas2", r.bus, None, Nha503Options(settle_s=0.1))
        driver = spec.factory(ctx)
        assert isinstance(driver, Nha503Analyser)
        assert await driver.poll() == AIR_READING


async def test_ambient_air_before_the_pump_runs() -> None:
    async with rig() as r:
        assert await r.driver.read_gases() == AIR_READING
        assert await r.driver.read_status() is AnalyserStatus.READY
        assert await r.driver.read_ambient() == AmbientReading(20.0, 101.3, 50.0)
        assert await r.driver.read_pef() == 0.52
        assert await r.driver.warmup_remaining_s() == 0


async def test_probe_gas_arrives_after_the_delay_and_rises_first_order() -> None:
    clock = FakeClock()
    async with rig(clock=clock) as r:
        await r.driver.pump_on()
        assert await r.driver.read_status() is AnalyserStatus.MEASURING
        delay = PETROL.response_delay_s * FAST
        clock.advance(delay * 0.9)
        before = await r.driver.read_gases()
        assert (before.co2_pct_vol, before.o2_pct_vol, before.flow_raw) == (0.04, 20.9, 100)
        clock.advance(delay * 0.1 + RISE_TAU_S * FAST)  # one time constant into the rise
        rising = await r.driver.read_gases()
        expected_co2 = 0.04 + (PETROL.co2_pct - 0.04) * (1 - math.exp(-1))
        assert rising.co2_pct_vol == pytest.approx(expected_co2, abs=0.011)
        clock.advance(RISE_TAU_S * FAST * 12)
        idle = await r.driver.read_gases()
        lam = round(brettschneider(exhaust(PETROL, EngineRegime.IDLE)), 2)
        assert idle == GasReading(80, 0.3, 14.5, 0.4, 150, 800, 85.0, lam, 100, False, False)
        r.sim.set_regime(EngineRegime.HIGH_IDLE)
        assert (await r.driver.read_gases()).engine_speed_rpm == 2500  # rpm pickup: at once
        clock.advance(delay + RISE_TAU_S * FAST * 12)
        high = await r.driver.read_gases()
        assert (high.hc_ppm, high.co_pct_vol, high.lambda_) == (50, 0.2, 1.0)


async def test_regime_option_and_noise_stay_plausible() -> None:
    scenario = make_scenario({"idle_rpm": 750, "high_idle_rpm": 2400}, noise=0.02)
    clock = FakeClock()
    async with rig(scenario, sim_options={"regime": "high_idle"}, clock=clock) as r:
        await r.driver.pump_on()
        clock.advance(5.0)
        readings = [await r.driver.read_gases() for _ in range(5)]
    assert all(2200 < g.engine_speed_rpm < 2600 for g in readings)
    assert all(13.0 < g.co2_pct_vol < 16.0 and g.hc_ppm < 60 for g in readings)
    assert len({g.co2_pct_vol for g in readings}) > 1  # noisy, not canned


async def test_without_a_petrol_engine_the_bench_sees_ambient_air() -> None:
    async with rig(make_scenario(None)) as r:
        await r.driver.pump_on()
        reading = await r.driver.read_gases()
        assert (reading.co2_pct_vol, reading.o2_pct_vol, reading.hc_ppm) == (0.04, 20.9, 0)
        assert reading.engine_speed_rpm == 0
        tsi = await r.driver.read_tsi_result()
        assert tsi.high_idle == tsi.low_idle == IdleValues(0, 0.0, 0.0, 0.0, 0, 0, 0.0, 0.0)


async def test_warm_up_refuses_pump_and_actions() -> None:
    clock = FakeClock()
    async with rig(make_scenario({}, warmup_s=600), clock=clock) as r:
        assert await r.driver.read_status() is AnalyserStatus.WARMING_UP
        assert await r.driver.warmup_remaining_s() == 600
        with pytest.raises(DeviceRefused):
            await r.driver.pump_on()
        with pytest.raises(DeviceBusy):
            await r.driver.zero()
        clock.advance(300 * FAST)
        assert await r.driver.warmup_remaining_s() == 300
        clock.advance(300 * FAST)
        assert await r.driver.warmup_remaining_s() == 0
        await r.driver.pump_on()
        assert await r.driver.read_status() is AnalyserStatus.MEASURING


async def test_zero_and_leak_check() -> None:
    async with rig() as r:
        await r.driver.zero()
        assert await r.driver.leak_check() is True
    async with rig(sim_options={"leak": True, "zero_fail": True}) as r:
        assert await r.driver.leak_check() is False
        with pytest.raises(DeviceFault):
            await r.driver.zero()


async def test_action_status_and_busy_refusal() -> None:
    clock = FakeClock()
    async with rig(clock=clock, action_timeout_s=0.1) as r:
        with pytest.raises(DeviceFault, match="still running"):
            await r.driver.leak_check()  # the fake clock never moves: it never ends
        assert await r.driver.read_status() is AnalyserStatus.LEAK_CHECK
        with pytest.raises(DeviceRefused):
            await r.driver.zero()  # another action is running
        clock.advance(10)
        assert await r.driver.leak_check() is True  # polling the same action ends it


async def test_span_calibration_and_gas_check() -> None:
    async with rig() as r:
        with pytest.raises(DeviceFault):
            await r.driver.span_calibrate()  # no span gas written yet
        assert await r.driver.gas_check() is False
        await r.driver.write_span_gas(3000, 3.0, 12.0, 1500)
        await r.driver.write_check_gas(1500, 1.5, 6.0, 800)
        assert r.sim.bottles[Command.SPAN_CALIBRATE].c3h8_ppm == 3000
        progress: list[CalibrationReading] = []
        await r.driver.span_calibrate(progress.append)
        assert progress and progress[-1].pef == 0.52
        assert progress[-1].hc_ppm == pytest.approx(3000 * 0.52, rel=0.05)
        assert progress[-1].co2_pct_vol == pytest.approx(12.0, rel=0.05)
        assert await r.driver.gas_check() is True


async def test_a_corrupted_gas_block_is_answered_with_failure() -> None:
    async with rig() as r:
        ask = Transaction(encode_command(Command.WRITE_SPAN_GAS), ReplyDecoder(Command.PUMP_ON))
        assert [type(m).__name__ for m in await r.bus.transact("raw", ask)] == ["Ack"]
        block = bytes.fromhex("0B B8 01 2C 04 B0 05 DC 00")  # checksum should be 0x85
        bad = Transaction(block, ReplyDecoder(Command.WRITE_SPAN_GAS, parameters=True))
        assert await r.bus.transact("raw", bad) == [Result(ResultCode.FAILED)]
        assert Command.SPAN_CALIBRATE not in r.sim.bottles
        unknown = Transaction(b"\x1c", ReplyDecoder(Command.PUMP_ON))
        assert await r.bus.transact("raw", unknown) == [Nak()]


async def test_settings_sensor_calibration_and_gas_path_commands() -> None:
    async with rig() as r:
        await r.driver.execute(Command.FUEL_LPG)
        await r.driver.calibrate_sensor(Sensor.BAROMETER, 101.5)
        assert r.sim.settings == [Command.FUEL_LPG]
        assert r.sim.sensor_references == {Command.CAL_BAROMETER: 101.5}
        with pytest.raises(LocalProtocolError):
            await r.driver.execute(Command.ZERO)
        await r.driver.backflush()
        assert await r.driver.read_status() is AnalyserStatus.BACKFLUSH
        await r.driver.ambient_air()
        assert await r.driver.read_status() is AnalyserStatus.MEASURING
        await r.driver.pump_off()
        assert await r.driver.read_status() is AnalyserStatus.READY


async def test_two_speed_idle_result_from_the_scenario() -> None:
    async with rig() as r:
        tsi = await r.driver.read_tsi_result()
    lam = round(brettschneider(exhaust(PETROL, EngineRegime.IDLE)), 2)
    assert tsi.high_idle == IdleValues(50, 0.2, 14.5, 0.4, 150, 2500, 85.0, 1.0)
    assert tsi.low_idle == IdleValues(80, 0.3, 14.5, 0.4, 150, 800, 85.0, lam)


@pytest.mark.parametrize(
    ("options", "water_trap"),
    [({"new_format": True}, False), ({"old_firmware": True}, None), ({"record_header": 6}, None)],
)
async def test_main_data_formats(options: dict[str, Any], water_trap: bool | None) -> None:
    async with rig(**options) as r:
        reading = await r.driver.read_gases()
    assert reading.water_trap_full is water_trap
    assert reading.co2_pct_vol == 0.04


async def test_water_trap_flag() -> None:
    async with rig(sim_options={"water_trap_full": True}, new_format=True) as r:
        assert (await r.driver.read_gases()).water_trap_full is True


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
        assert await r.driver.read_gases() == AIR_READING
        r.faults.inject(fault, delay_s=0.1)
        if error is None:
            assert await r.driver.read_gases() == AIR_READING
        else:
            with pytest.raises(error):
                await r.driver.read_gases()
        if fault is Fault.DISCONNECT:
            await asyncio.wait_for(r.observer.opened.wait(), 5)
        assert await r.driver.read_gases() == AIR_READING  # the glued reply is skipped
        assert await r.driver.read_status() is AnalyserStatus.READY
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames  # counted


async def test_a_late_record_is_not_taken_for_the_next_reply() -> None:
    """A reply later than the timeout arrives while nothing is asked: it is discarded,
    not read as the one-byte status that is asked for next."""
    async with rig() as r:
        r.faults.inject(Fault.SLOW_REPLY, delay_s=0.5)
        r.faults.inject(Fault.SLOW_REPLY, delay_s=0.1)  # so the two replies come apart
        with pytest.raises(ResponseTimeout):
            await r.driver.read_gases()
        assert await r.driver.read_status() is AnalyserStatus.READY
        assert await r.driver.read_gases() == AIR_READING


@pytest.mark.parametrize("fault", [Fault.GARBAGE, Fault.GLUE, Fault.SPLIT])
async def test_one_byte_replies_under_noise_and_glue(fault: Fault) -> None:
    async with rig() as r:
        await r.driver.pump_on()
        r.faults.inject(fault)
        if fault is Fault.GLUE:
            with pytest.raises(ResponseTimeout):
                await r.driver.read_status()
        else:
            assert await r.driver.read_status() is AnalyserStatus.MEASURING
        await r.driver.pump_off()
        assert await r.driver.read_status() is AnalyserStatus.READY


async def test_over_a_pty(tmp_path: Path) -> None:
    async with rig(pty_link=tmp_path / "nha503") as r:
        assert await r.driver.read_gases() == AIR_READING
        r.faults.inject(Fault.BAD_CHECKSUM)
        with pytest.raises(ChecksumError):
            await r.driver.read_gases()
        await r.driver.zero()
        assert await r.driver.read_gases() == AIR_READING
