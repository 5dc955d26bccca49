"""FLV-1000 flowmeter driver against its simulator over TCP: readings consistent with the
car on the dyno, status flags, checksums that break the rule kept and counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.devices.base import DeviceClass, DriverContext
from drivers.devices.dyno_api import Flowmeter, FlowStatus
from drivers.devices.flv1000_flowmeter import Flv1000Flowmeter, Flv1000Options
from drivers.errors import ChecksumError, DeviceRefused
from drivers.protocols.flv1000 import Command
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.dyno_physics import plant_for
from simulators.devices.flv1000 import Flv1000Sim
from simulators.devices.xincheng import XinChengSim
from simulators.faults import FaultPlan
from simulators.registry import sim_specs
from tests.drivers.dyno_rig import Clock, make_scenario, rig

LOADED = {"vmas": {"o2_pct": 0.5}, "asm5025": {"o2_pct": 0.5}, "asm2540": {"o2_pct": 0.5}}


def flow_rig(
    scenario=None, *, options=None, driver_options=None, position=None, clock=None, pty_link=None
):
    scenario = scenario or make_scenario(vehicle={"petrol": {"o2_pct": 0.4}})

    def make_sim(ctx):
        return Flv1000Sim(ctx, clock) if clock is not None else Flv1000Sim(ctx)

    def make_driver(bus):
        return Flv1000Flowmeter("flow", bus, Flv1000Options(**(driver_options or {})))

    return rig(
        make_sim, make_driver, scenario, options=options, position=position, pty_link=pty_link
    )


async def test_registered_and_idle_values() -> None:
    spec = get_spec("flv1000")
    assert spec.default_line.describe() == "9600 8N1" and spec.device_class is DeviceClass.FLOWMETER
    assert "flv1000" in sim_specs()
    async with flow_rig() as r:
        meter: Flowmeter = spec.factory(DriverContext("f2", r.bus, None, spec.options()))  # type: ignore[assignment]
        reading = await meter.read_all()
        # idling engine: 2.5 L/s of exhaust at 0.4 % O2 in 110 L/s
        assert reading.o2_diluted_pct_vol == pytest.approx(20.9 - 20.5 * 2.5 / 110, abs=0.01)
        assert (reading.flow_actual_l_s, reading.pressure_kpa, reading.temperature_c) == (
            110.0,
            101.0,
            38.0,
        )
        assert reading.flow_standard_l_s == pytest.approx(
            110 * 101 / 101.325 * 273.15 / 311.15, abs=0.1
        )
        assert await meter.read_status() == FlowStatus(False, False, False, False, "00 00 00")
        assert await r.driver.read_version() == "FLV1000 V2.1"


async def test_diluted_o2_follows_the_load_on_the_dyno() -> None:
    clock = Clock()
    scenario = make_scenario(
        {"program": "asm", "reaction_s": 0}, vehicle={"petrol": {"loaded": LOADED}}
    )
    position = LanePosition()
    XinChengSim(SimContext(scenario, FaultPlan(), position), clock)  # the lane's dyno
    plant = plant_for(position, scenario, clock)
    async with flow_rig(scenario, position=position, clock=clock) as r:
        idle = await r.driver.read_all()
        plant.lift(False)
        plant.command("power", 10.0)
        clock.advance(30)
        loaded = await r.driver.read_all()
        exhaust = 2.5 + 1.1 * plant.engine().wheel_power_kw
        assert loaded.o2_diluted_pct_vol == pytest.approx(20.9 - 20.4 * exhaust / 110, abs=0.01)
        assert loaded.o2_diluted_pct_vol < idle.o2_diluted_pct_vol - 1.5


async def test_status_flags_from_the_scenario() -> None:
    scenario = make_scenario(
        vehicle={"petrol": {}},
        flowmeter={"total_flow_l_s": 60, "pressure_kpa": 70, "warmup_s": 600},
    )
    async with flow_rig(scenario) as r:
        status = await r.driver.read_status()
        assert status.flow_out_of_range and status.pressure_abnormal and status.o2_warming
        assert not status.temperature_abnormal and not status.ready


async def test_checksums_against_the_rule_are_kept_logged_or_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with flow_rig(options={"checksum_offset": 3}) as r:
        reading = await r.driver.read_all()
        assert reading.flow_actual_l_s == 110.0
        assert r.driver.checksum_mismatches == 2
        assert "checksum breaks the stated rule" in caplog.text
    async with flow_rig(
        options={"checksum_offset": 3}, driver_options={"strict_checksum": True}
    ) as r:
        with pytest.raises(ChecksumError):
            await r.driver.read_status()


async def test_calibration_and_a_nak() -> None:
    async with flow_rig() as r:
        await r.driver.calibrate_o2_span(20.9)
        await r.driver.calibrate(Command.CAL_FLOW_ZERO)
        assert r.sim.calibrations == [(0xA1, bytes.fromhex("08 2A")), (0xA4, b"")]
        assert r.sim.checksum_mismatches == 0
        r.faults.inject("nak")
        with pytest.raises(DeviceRefused):
            await r.driver.read_all()


async def test_over_a_pty(tmp_path: Path) -> None:
    async with flow_rig(pty_link=tmp_path / "tty-flow") as r:
        assert (await r.driver.read_all()).flow_actual_l_s == 110.0
