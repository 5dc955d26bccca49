"""NHC-03 dyno driver against its simulator over TCP: variables, control words, the
status word, lug-down speed control on the physics, NotSupported ambient, refusals."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from drivers.devices.base import DriverContext
from drivers.devices.dyno_api import Dynamometer, RoadLoad
from drivers.devices.nhc03_dyno import Nhc03Dyno, Nhc03Options
from drivers.errors import DeviceRefused, NotSupported
from drivers.registry import get_spec
from simulators.devices.dyno_physics import full_throttle_power_kw
from simulators.devices.nhc03 import Nhc03Sim
from simulators.faults import Fault
from simulators.registry import sim_specs
from simulators.scenario import Powertrain
from tests.drivers.dyno_rig import Clock, make_scenario, rig


def nhc_rig(scenario=None, *, clock=None, pty_link=None):
    scenario = scenario or make_scenario({"program": "lug_down", "reaction_s": 0.5})

    def make_sim(ctx):
        return Nhc03Sim(ctx, clock) if clock is not None else Nhc03Sim(ctx)

    return rig(make_sim, lambda bus: Nhc03Dyno("dyno", bus), scenario, pty_link=pty_link)


async def test_registered_with_its_simulator() -> None:
    spec = get_spec("nhc03")
    assert spec.default_line.describe() == "9600 8N1"
    assert "nhc03" in sim_specs()
    async with nhc_rig() as r:
        dyno: Dynamometer = spec.factory(DriverContext("d2", r.bus, None, spec.options()))  # type: ignore[assignment]
        state = await dyno.read_state()
        assert (state.speed_kmh, state.lifted, state.motor_on, state.control_mode) == (
            0.0,
            True,
            False,
            "off",
        )


async def test_lug_down_speed_control_absorbs_the_engine_power() -> None:
    clock = Clock()
    async with nhc_rig(clock=clock) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_speed(60.0)  # VelMaxHP of the default powertrain
        clock.advance(20)
        state = await r.driver.read_state()
        assert state.control_mode == "speed" and state.target == 60.0 and not state.lifted
        assert state.speed_kmh == pytest.approx(60.0, abs=0.3)
        peak = full_throttle_power_kw(Powertrain(), 60.0)
        # what the PAU absorbs: the wheel power less the dyno's and tyres' losses
        assert 0.9 * peak < state.power_kw < peak
        assert await r.driver.read_variable(200) == 6000
        await r.driver.set_constant_speed(48.0)  # 80 % VelMaxHP
        clock.advance(20)
        low = await r.driver.read_state()
        assert low.speed_kmh == pytest.approx(48.0, abs=0.3) and low.power_kw < state.power_kw


async def test_status_word_is_the_truth_and_constant_force() -> None:
    clock = Clock()
    async with nhc_rig(clock=clock) as r:
        await r.driver.motor(True)
        await r.driver.set_constant_force(123.4)
        assert await r.driver.read_variable(201) == 123 and await r.driver.read_variable(202) == 4
        state = await r.driver.read_state()
        assert state.motor_on and state.control_mode == "force" and state.target == 123.4
        r.sim.control_word = "0"  # somebody stopped it at the controller's keypad
        assert (await r.driver.read_state()).control_mode == "off"


async def test_ambient_not_supported_and_lift_refused_while_rolling() -> None:
    clock = Clock()
    async with nhc_rig(clock=clock) as r:
        with pytest.raises(NotSupported):
            await r.driver.read_ambient()
        await r.driver.lift(False)
        clock.advance(10)
        with pytest.raises(DeviceRefused):
            await r.driver.lift(True)


async def test_stream_polls_and_survives_a_bad_checksum() -> None:
    async with nhc_rig(make_scenario({"program": "lug_down"}, time_scale=0.05)) as r:
        await r.driver.lift(False)
        r.faults.inject(Fault.BAD_CHECKSUM)
        readings = []
        async with contextlib.aclosing(r.driver.stream(rate_hz=50)) as frames, asyncio.timeout(10):
            async for reading in frames:
                readings.append(reading)
                if reading.speed_kmh > 10:
                    break
        assert readings[-1].speed_kmh > 10 and r.observer.bad_frames


async def test_over_a_pty(tmp_path: Path) -> None:
    async with nhc_rig(pty_link=tmp_path / "tty-nhc") as r:
        await r.driver.lift(False)
        assert (await r.driver.read_state()).lifted is False


async def test_device_side_road_load() -> None:
    clock = Clock()
    scenario = make_scenario({"program": [{"hold_kmh": 30, "for_s": 100}], "reaction_s": 0})

    def make_sim(ctx):
        return Nhc03Sim(ctx, clock)

    def make_driver(bus):
        return Nhc03Dyno("dyno", bus, Nhc03Options(device_road_load=True))

    async with rig(make_sim, make_driver, scenario) as r:
        await r.driver.lift(False)
        await r.driver.set_road_load(RoadLoad(120.0, 1.5, 0.04, inertia_kg=1470))
        assert [await r.driver.read_variable(n) for n in (240, 241, 242, 243)] == [
            1200,
            150,
            40,
            1470,
        ]
        clock.advance(30)
        state = await r.driver.read_state()
        assert state.control_mode == "road_load" and r.sim.control_word == "Q"
        assert state.speed_kmh == pytest.approx(30.0, abs=0.3)
        assert state.force_n == pytest.approx(120 + 45 + 36, abs=2)
        # four variables and one 'Q': no constant-force updates from the driver
        assert r.sim.requests.count("F") == 4 and r.sim.requests.count("Q") == 1
