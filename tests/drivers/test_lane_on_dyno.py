"""The lane's simulators share the car on the dyno: the analyser's engine speed and gases
(NO included) and the opacimeter's smoke follow the dyno's load, through real drivers
over TCP (one manual clock for the physics)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from drivers.bus import StreamBus
from drivers.devices.elm327_obd import Elm327Obd
from drivers.devices.flb100_opacimeter import Flb100Opacimeter
from drivers.devices.flv1000_flowmeter import Flv1000Flowmeter
from drivers.devices.nha503_analyser import Nha503Analyser
from drivers.devices.xincheng_dyno import XinChengDyno
from simulators.base import LanePosition, SimContext
from simulators.devices.dyno_physics import plant_of
from simulators.devices.flb100 import Flb100Sim
from simulators.devices.nha503 import Nha503Sim
from simulators.devices.xincheng import XinChengSim
from simulators.faults import FaultPlan
from simulators.lane import DEFAULT_LANE, SimDevice, SimLane
from simulators.scenario import Scenario
from tests.drivers.dyno_rig import Clock, make_scenario
from tests.drivers.stream_rig import stream_bus
from tests.harness import serving

DIRTY_5025 = {"hc_ppm": 150, "co_pct": 0.8, "no_ppm": 900}
CLEAN_2540 = {"hc_ppm": 20, "co_pct": 0.05, "no_ppm": 100}
LUG = {"k_100_m1": 1.5, "k_80_m1": 2.0, "nox_100_ppm": 900, "nox_80_ppm": 1200}


@contextlib.asynccontextmanager
async def lane(scenario: Scenario, clock: Clock) -> AsyncIterator[dict[str, Any]]:
    position = LanePosition()

    def ctx() -> SimContext:
        return SimContext(scenario, FaultPlan(), position)

    dyno_sim = XinChengSim(ctx(), clock)
    gas_sim = Nha503Sim(ctx(), clock)
    smoke_sim = Flb100Sim(ctx(), clock)
    async with (
        stream_bus(dyno_sim, FaultPlan(), "dyno", response_timeout=0.5) as (dyno_bus, _, _),
        stream_bus(gas_sim, FaultPlan(), "gas", response_timeout=0.5) as (gas_bus, _, _),
        stream_bus(smoke_sim, FaultPlan(), "smoke", response_timeout=0.5) as (smoke_bus, _, _),
    ):
        yield {
            "dyno": XinChengDyno("dyno", dyno_bus),
            "gas": Nha503Analyser("gas", gas_bus),
            "smoke": Flb100Opacimeter("smoke", smoke_bus),
        }


def test_the_default_lane_has_the_new_devices() -> None:
    assert {("dyno", "xincheng"), ("flowmeter", "flv1000"), ("obd", "elm327")} <= set(DEFAULT_LANE)


async def test_petrol_gases_follow_the_asm_mode() -> None:
    clock = Clock()
    petrol = {"loaded": {"asm5025": DIRTY_5025, "asm2540": CLEAN_2540}, "response_delay_s": 1}
    scenario = make_scenario({"program": "asm", "reaction_s": 0}, vehicle={"petrol": petrol})
    async with lane(scenario, clock) as devices:
        dyno, gas = devices["dyno"], devices["gas"]
        await gas.pump_on()
        idle = await gas.read_gases()
        assert idle.engine_speed_rpm == 800  # not on the rollers yet: the scenario's idle
        await dyno.lift(False)
        await dyno.set_constant_power(1470 / 148)
        clock.advance(40)
        at_5025 = await gas.read_gases()
        assert at_5025.co_pct_vol == pytest.approx(0.8, abs=0.01)
        assert (at_5025.hc_ppm, at_5025.nox_ppm) == (150, 900)
        assert at_5025.engine_speed_rpm == 1000  # 25 km/h × 40 r/min per km/h
        await dyno.set_constant_power(1470 / 185)  # ASM 2540: the driver speeds up
        clock.advance(40)
        at_2540 = await gas.read_gases()
        assert at_2540.nox_ppm == 100 and at_2540.engine_speed_rpm == 1600


async def test_diesel_smoke_and_nox_at_the_lug_down_points() -> None:
    clock = Clock()
    vehicle = {"diesel": {"lug_down": LUG}}
    scenario = make_scenario({"program": "lug_down", "reaction_s": 0}, vehicle=vehicle)
    async with lane(scenario, clock) as devices:
        dyno, gas, smoke = devices["dyno"], devices["gas"], devices["smoke"]
        await gas.pump_on()
        await dyno.lift(False)
        await dyno.set_constant_speed(60.0)  # 100 % VelMaxHP
        clock.advance(20)
        at_100 = await smoke.read_realtime()
        assert at_100.k_m1 == pytest.approx(1.5, abs=0.02) and at_100.engine_speed_rpm == 2400
        await dyno.set_constant_speed(48.0)  # 80 %
        clock.advance(20)
        at_80 = await smoke.read_realtime()
        assert at_80.k_m1 == pytest.approx(2.0, abs=0.02)
        assert (await gas.read_gases()).nox_ppm == pytest.approx(1200, abs=15)
        await dyno.control_off()  # the host unloads: the driver lets go
        clock.advance(20)
        assert (await smoke.read_realtime()).k_m1 < 0.5


async def test_the_lane_launcher_shares_one_car_between_its_simulators() -> None:
    """SimLane (what ``python -m simulators`` runs): real time, sped up 20 times."""
    scenario = make_scenario(
        {"program": "asm", "reaction_s": 0}, vehicle={"petrol": {}, "obd": {}}, time_scale=0.05
    )
    devices = [SimDevice(d, p) for d, p in DEFAULT_LANE if p in ("xincheng", "flv1000", "elm327")]
    async with serving(SimLane(scenario, devices)) as sims, contextlib.AsyncExitStack() as stack:
        buses = {}
        for name, sim in sims.running.items():
            served = stream_bus_to(sim.url, name)
            buses[name] = await stack.enter_async_context(served)
        dyno = XinChengDyno("dyno", buses["dyno"])
        obd, flow = (
            Elm327Obd("obd", buses["obd"]),
            Flv1000Flowmeter("flowmeter", buses["flowmeter"]),
        )
        assert plant_of(sims.position) is sims.running["dyno"].sim.plant
        idle_o2 = (await flow.read_all()).o2_diluted_pct_vol
        await obd.connect()
        await dyno.lift(False)
        await dyno.set_constant_power(1470 / 148)
        async with contextlib.aclosing(dyno.stream()) as frames, asyncio.timeout(20):
            async for reading in frames:
                if abs(reading.speed_kmh - 25) < 0.5 and abs(reading.power_kw - 9.93) < 0.3:
                    break
        live = await obd.read_live()
        assert live.vehicle_speed_kmh == pytest.approx(25, abs=1)
        assert live.engine_speed_rpm == pytest.approx(1000, abs=40)
        assert (await flow.read_all()).o2_diluted_pct_vol < idle_o2 - 1


@contextlib.asynccontextmanager
async def stream_bus_to(url: str, name: str) -> AsyncIterator[StreamBus]:
    """A bus owner task for ``url`` while the block runs."""
    bus = StreamBus(name, url, response_timeout=0.5)
    task = asyncio.create_task(bus.run())
    try:
        yield bus
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
