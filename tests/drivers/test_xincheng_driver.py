"""XinCheng dyno driver against its simulator over TCP and a PTY: load control on the
roller physics, streams, refusals, faults and a drop-out."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from drivers.devices.base import DeviceClass, DriverContext
from drivers.devices.dyno_api import Ambient, Dynamometer, RoadLoad
from drivers.devices.xincheng_dyno import XinChengDyno, XinChengOptions
from drivers.errors import DeviceRefused, LocalProtocolError, ResponseTimeout
from drivers.registry import get_spec
from simulators.devices.xincheng import XinChengSim
from simulators.faults import Fault
from simulators.registry import sim_specs
from tests.drivers.dyno_rig import Clock, make_scenario, rig

ASM = {"program": "asm", "reaction_s": 0.5}
P5025 = round(1470 / 148, 2)


def dyno_rig(scenario=None, *, clock=None, options=None, driver_options=None, pty_link=None):
    scenario = scenario or make_scenario(ASM)

    def make_sim(ctx):
        return XinChengSim(ctx, clock) if clock is not None else XinChengSim(ctx)

    def make_driver(bus):
        return XinChengDyno("dyno", bus, XinChengOptions(**(driver_options or {})))

    return rig(make_sim, make_driver, scenario, options=options, pty_link=pty_link)


async def test_registered_with_its_simulator() -> None:
    spec = get_spec("xincheng")
    assert spec.default_line.describe() == "38400 8N1"
    assert spec.device_class is DeviceClass.CHASSIS_DYNAMOMETER
    assert "xincheng" in sim_specs()
    async with dyno_rig() as r:
        driver = spec.factory(DriverContext("dyno2", r.bus, None, spec.options()))
        assert isinstance(driver, XinChengDyno)
        dyno: Dynamometer = driver
        state = await dyno.poll()
        assert (state.speed_kmh, state.force_n, state.lifted, state.control_mode) == (
            0.0,
            0.0,
            True,
            "off",
        )


async def test_asm_5025_load_holds_the_commanded_power() -> None:
    clock = Clock()
    async with dyno_rig(clock=clock) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_power(P5025)
        clock.advance(40)  # scenario seconds: the driver reached 25 km/h long ago
        state = await r.driver.read_state()
        assert state.control_mode == "power" and state.target == P5025
        assert state.lifted is False
        assert state.speed_kmh == pytest.approx(25.0, abs=0.3)
        assert state.power_kw == pytest.approx(P5025, rel=0.01)
        # the car stands on the rollers: photocell 1
        assert (state.photocell_1, state.photocell_2, state.photocell_3) == (True, False, False)
        assert r.sim.commands[:3] == ["JD", "SP", "BP"]


async def test_stream_pushes_frames_and_commands_interleave() -> None:
    async with dyno_rig(make_scenario(ASM, time_scale=0.05)) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_force(500)
        seen = 0
        async with contextlib.aclosing(r.driver.stream()) as frames:
            async with asyncio.timeout(10):
                async for reading in frames:
                    seen += 1
                    assert reading.control_mode == "force" and reading.received_s is not None
                    if seen == 3:
                        await r.driver.set_constant_force(800)  # between two chunks
                    if seen > 3 and reading.target == 800 and reading.force_n > 700:
                        break
        assert r.sim.commands.count("II") <= 1  # frames were pushed, not polled


async def test_road_load_is_kept_by_constant_force_updates() -> None:
    clock = Clock()
    scenario = make_scenario({"program": "asm", "reaction_s": 0})
    async with dyno_rig(scenario, clock=clock, driver_options={"road_load_period_s": 0.001}) as r:
        await r.driver.lift(False)
        await r.driver.set_road_load(RoadLoad(100.0, 2.0, 0.05, inertia_kg=1470))
        clock.advance(30)
        state = await r.driver.read_state()
        assert state.control_mode == "road_load"
        assert state.speed_kmh == pytest.approx(25.0, abs=0.3)
        # the follower asked for A + B·v + C·v² at 25 km/h (steady: no inertia term)
        assert state.target == pytest.approx(100 + 50 + 31.25, abs=6)
        assert r.sim.commands.count("SF") >= 2 and r.sim.commands.count("BF") == 1


async def test_lift_refused_while_rollers_turn_and_motor_debug_text() -> None:
    clock = Clock()
    async with dyno_rig(clock=clock) as r:
        await r.driver.lift(False)
        clock.advance(10)
        with pytest.raises(DeviceRefused, match="can`t up"):
            await r.driver.lift(True)
        assert (await r.driver.read_state()).lifted is False
        await r.driver.motor(True)
        assert "motor on" in r.driver.debug_texts
        assert (await r.driver.read_state()).motor_on


async def test_ambient_roller_setup_and_both_byte_orders() -> None:
    async with dyno_rig() as r:
        assert await r.driver.read_ambient() == Ambient(25.0, 55.0, pytest.approx(101.3))
        setup = await r.driver.read_roller_setup()
        assert (setup.byte_order, round(setup.diameter_cm, 1), setup.pulses_per_rev) == (
            "little",
            21.6,
            3600,
        )
    async with dyno_rig(options={"ars_big_endian": True}) as r:
        setup = await r.driver.read_roller_setup()
        assert (setup.byte_order, round(setup.diameter_cm, 1)) == ("big", 21.6)


async def test_nanhua_placement_and_layout() -> None:
    clock = Clock()
    driver_options = {"placement": "nanhua", "coverage": "body", "idle_layout": "nanhua"}
    async with dyno_rig(
        clock=clock, options={"idle_layout": "nanhua"}, driver_options=driver_options
    ) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_power(P5025)
        clock.advance(40)
        state = await r.driver.read_state()
        assert state.power_kw == pytest.approx(P5025, rel=0.01) and state.duty_pct is None
        assert r.sim.checksum_mismatches == 0


async def test_set_points_out_of_range_are_refused_locally() -> None:
    async with dyno_rig() as r:
        with pytest.raises(LocalProtocolError):
            await r.driver.set_constant_power(-1)
        with pytest.raises(LocalProtocolError):
            await r.driver.set_constant_speed(500)
        assert r.sim.commands == []


async def test_faults_garbage_and_a_lost_reply() -> None:
    async with dyno_rig() as r:
        r.faults.inject(Fault.GARBAGE)
        assert (await r.driver.read_state()).speed_kmh == 0.0
        r.faults.inject(Fault.NO_REPLY)
        with pytest.raises(ResponseTimeout):
            await r.driver.read_state()
        assert (await r.driver.read_state()).control_mode == "off"


async def test_a_dyno_dropping_out_mid_mode_stops_the_stream() -> None:
    scenario = make_scenario(ASM, time_scale=0.05, dyno={"drop_out_after_s": 10.0})
    async with dyno_rig(scenario, driver_options={"stream_silence_s": 0.3}) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_power(P5025)
        got: list[float] = []

        async def follow() -> None:
            async with contextlib.aclosing(r.driver.stream()) as frames, asyncio.timeout(10):
                async for reading in frames:
                    got.append(reading.speed_kmh)

        with pytest.raises(ResponseTimeout):
            await follow()
        assert got
        with pytest.raises(ResponseTimeout):
            await r.driver.read_state()


async def test_over_a_pty(tmp_path: Path) -> None:
    async with dyno_rig(pty_link=tmp_path / "tty-dyno") as r:
        await r.driver.lift(False)
        await r.driver.control_off()
        assert (await r.driver.read_state()).lifted is False


async def test_split_and_glued_replies_while_frames_are_pushed() -> None:
    async with dyno_rig(make_scenario(ASM, time_scale=0.05)) as r:
        await r.driver.lift(False)
        await r.driver.set_constant_force(300)  # frames are pushed from now on
        r.faults.inject(Fault.SPLIT)
        await r.driver.set_constant_force(400)
        r.faults.inject(Fault.GLUE)
        await r.driver.set_constant_force(450)  # its echo comes glued to the next frame
        state = await r.driver.read_state()
        assert state.target == 450 and r.sim.targets["force"] == 450
        assert r.observer.bad_frames == []
