"""The generic Modbus driver against the simulators' real pymodbus server, for all three maps.

Faults, unit ids, link drops and implausible values: test_modbus_faults.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from drivers.devices.base import DeviceClass
from drivers.devices.modbus_generic import map_device_class
from drivers.errors import DeviceRefused, LocalProtocolError, PortUnavailable
from drivers.modbus.adapter import LinkKind, ModbusTarget, parse_url
from drivers.modbus.planner import Table
from drivers.registry import driver_specs
from simulators.registry import sim_specs
from tests.drivers.modbus_rig import rig, scenario, until


# registry --------------------------------------------------------------------------------
def test_protocols_are_registered() -> None:
    specs = driver_specs()
    for name, device_class in [
        ("modbus-brake", DeviceClass.BRAKE_TESTER),
        ("modbus-headlamp", DeviceClass.HEADLAMP_TESTER),
        ("modbus-speedometer", DeviceClass.SPEEDOMETER_TESTER),
        ("modbus-weigher", DeviceClass.AXLE_WEIGHER),
    ]:
        assert specs[name].device_class is device_class
        assert specs[name].bus_kind == "modbus"
    assert {"modbus-brake", "modbus-headlamp", "modbus-speedometer"} <= set(sim_specs())
    assert map_device_class({"map": "headlamp_tester"}) is DeviceClass.HEADLAMP_TESTER
    with pytest.raises(ValueError, match=r"options\.map is required"):
        specs["modbus-weigher"].options.model_validate({})
    with pytest.raises(ValueError, match="is for a headlamp_tester, not a brake_tester"):
        specs["modbus-brake"].options.model_validate({"map": "headlamp_tester"})


# brake tester ----------------------------------------------------------------------------
async def test_brake_test_runs_through_its_states() -> None:
    async with rig("modbus-brake", scenario(time_scale=0.1)) as r:
        idle = await r.device.poll()
        assert type(r.device).device_class is DeviceClass.BRAKE_TESTER
        assert idle["state"] == 0 and idle["lift_raised"] is True
        assert (idle["load_left_kg"], idle["load_right_kg"], idle["axle_number"]) == (480, 470, 1)
        await r.device.command("start_test")
        seen = await until(r.device, lambda reading: reading["state"] == 6)
        states = [reading["state"] for reading in seen]
        counters = [reading["sample_counter"] for reading in seen]
        assert states == sorted(states) and 5 in states
        assert counters == sorted(counters)
        done = seen[-1].as_dict()
        # 100 Hz over 1.5 s spin-up and drag, 1.2 s rise, 0.3 s tail
        assert 300 <= done["sample_counter"] <= 310
        assert done["max_force_left_dan"] == pytest.approx(420, rel=0.05)
        assert done["drag_right_dan"] == pytest.approx(6, abs=1)
        assert 0 < done["max_diff_dan"] < 50
        assert (done["load_left_kg"], done["roller_speed_kmh"]) == (480, 0.0)
        assert done["lift_raised"] is False
        assert r.position.axle_index == 1  # result read: the car drove on
        assert (await r.device.read("load_left_kg", "axle_number")).as_dict() == {
            "load_left_kg": 480,
            "axle_number": 2,
        }


async def test_brake_refuses_actions_during_a_test_and_stops() -> None:
    async with rig("modbus-brake") as r:
        await r.device.command("start_test")
        with pytest.raises(DeviceRefused) as refused:
            await r.device.command("zero")
        assert refused.value.code == 6
        await r.device.command("stop")
        assert await r.device.read_value("state") == 0
        await r.device.command("lift_up")
        assert await r.device.read_value("lift_raised") is True


async def test_brake_settings_are_written_in_engineering_units() -> None:
    async with rig("modbus-brake") as r:
        await r.device.write("test_timeout_s", 12.5)
        await r.device.write("test_mode", 1)
        await r.device.write("axle_number", 2)
        reading = await r.device.poll()
        assert (reading["test_timeout_s"], reading["test_mode"], reading["load_right_kg"]) == (
            12.5,
            1,
            340,
        )
        with pytest.raises(DeviceRefused) as refused:
            await r.device.write("axle_number", 3)  # plausible for the map, but the car has 2
        assert refused.value.code == 3
        sent = r.observer.requests
        for name, value in [("axle_number", 7), ("state", 1), ("no_such_point", 1)]:
            with pytest.raises(LocalProtocolError):
                await r.device.write(name, value)
        with pytest.raises(LocalProtocolError, match="no command 'fly'"):
            await r.device.command("fly")
        assert r.observer.requests == sent  # refused locally, nothing sent


async def test_raw_writes_are_checked_by_the_instrument() -> None:
    async with rig("modbus-brake") as r:
        hr = Table.HOLDING_REGISTER
        await r.bus.write("dut", 1, hr, 0, [2, 1, 150])  # FC16 over three settings at once
        reading = await r.device.read("axle_number", "test_mode", "test_timeout_s")
        assert reading.as_dict() == {"axle_number": 2, "test_mode": 1, "test_timeout_s": 15.0}
        for address, words, code in [
            (0, [9], 3),  # beyond the map's range: illegal data value
            (1, [0, 0, 0], 2),  # runs past the last register: illegal data address
            (40, [1], 2),  # nothing there
        ]:
            with pytest.raises(DeviceRefused) as refused:
                await r.bus.write("dut", 1, hr, address, words)
            assert refused.value.code == code
        with pytest.raises(DeviceRefused) as refused:
            await r.bus.write("dut", 1, Table.COIL, 9, [1])
        assert refused.value.code == 2
        assert await r.device.read_value("axle_number") == 2


async def test_locked_wheel_sets_its_flag() -> None:
    locking = {"max_force_dan": 300, "rise_time_s": 0.8, "locks": True}
    steady = {"max_force_dan": 420, "rise_time_s": 1.2}
    axle = {"load_left_kg": 480, "load_right_kg": 470, "brake_left": locking, "brake_right": steady}
    async with rig("modbus-brake", scenario(axles=[axle])) as r:
        await r.device.command("start_test")
        done = (await until(r.device, lambda reading: reading["state"] == 6))[-1]
        assert (done["left_locked"], done["right_locked"]) == (True, False)


# headlamp tester -------------------------------------------------------------------------
async def test_headlamp_measures_every_lamp() -> None:
    lamp = {"high_intensity_cd": 16000, "height_mm": 650, "low_vertical_offset": -0.8}
    lamps = {
        "system": 4,
        "left_outer": {"high_intensity_cd": 21500, "height_mm": 710},
        "right_outer": {"high_intensity_cd": 20800, "height_mm": 705},
        "left_inner": lamp,
        "right_inner": lamp,
    }
    async with rig("modbus-headlamp", scenario(lamps=lamps)) as r:
        assert (await r.device.poll())["at_home"] is True
        await r.device.command("start_test")
        seen = await until(r.device, lambda reading: reading["state"] == 3)
        assert [x["lamps_measured"] for x in seen] == sorted(x["lamps_measured"] for x in seen)
        done = seen[-1]
        intensities = [
            done[f"{s}_high_intensity_cd"]
            for s in ("left_outer", "right_outer", "left_inner", "right_inner")
        ]
        assert intensities == pytest.approx([21500, 20800, 16000, 16000], rel=0.05)
        assert all(value % 100 == 0 for value in intensities)
        assert done["total_high_intensity_cd"] == sum(intensities)
        assert (done["left_outer_height_mm"], done["right_inner_height_mm"]) == (710, 650)
        assert done["left_inner_low_v_offset_pct"] == pytest.approx(-0.8, abs=0.05)
        assert (done["lamps_measured"], done["lamp_found"], done["at_home"]) == (4, True, False)
        await r.device.command("home")
        assert await r.device.read_value("at_home") is True


async def test_one_poll_is_one_job_paced_by_the_inter_request_delay() -> None:
    async with rig("modbus-headlamp", inter_request_delay=0.05) as r:
        assert len(r.device.plan) == 3  # DI, IR (gaps read across), HR
        loop = asyncio.get_running_loop()
        started = loop.time()
        reading = await r.device.poll()
        assert loop.time() - started >= 0.1  # two pauses inside the job
        assert r.observer.requests == 1  # one bus job for the whole snapshot
        assert len(reading.values) == len(r.device.regmap.points)


async def test_headlamp_settings_by_command_and_write() -> None:
    async with rig("modbus-headlamp") as r:
        assert await r.device.read_value("lamp_system") == 2
        await r.device.command("system_4_lamp")
        assert await r.device.read_value("lamp_system") == 4
        await r.device.write("beam_mode", 1)
        assert await r.device.read_value("beam_mode") == 1
        with pytest.raises(DeviceRefused) as refused:
            await r.device.write("lamp_system", 3)  # in the map's range, refused by the tester
        assert refused.value.code == 3
        with pytest.raises(LocalProtocolError, match="cannot be written"):
            await r.device.write("beam_mode", 5)


async def test_headlamp_without_lamps_reports_a_fault() -> None:
    async with rig("modbus-headlamp", scenario(lamps=None)) as r:
        await r.device.command("start_test")
        done = (await until(r.device, lambda reading: reading["state"] in (3, 9)))[-1]
        assert (done["state"], done["lamp_found"], done["lamps_measured"]) == (9, False, 0)


# speedometer tester (RTU on a PTY) -----------------------------------------------------------
async def test_speedometer_over_rtu_on_a_pty(tmp_path: Path) -> None:
    async with rig("modbus-speedometer", pty=tmp_path / "ttySPEED") as r:
        assert r.bus.target.kind.value == "rtu"
        assert (await r.device.poll())["state"] == 0
        await r.device.command("start_test")
        seen = await until(r.device, lambda reading: reading["latched"] is True)
        speeds = [reading["speed_kmh"] for reading in seen]
        assert max(speeds) == pytest.approx(37.6, rel=0.05)
        latched = seen[-1]
        assert latched["state"] == 3 and latched["rollers_turning"] is True
        assert latched["latched_speed_kmh"] == pytest.approx(37.6, rel=0.05)
        expected = (40 - latched["latched_speed_kmh"]) / latched["latched_speed_kmh"] * 100
        assert latched["indicated_error_pct"] == pytest.approx(expected, abs=0.2)  # float32, CDAB
        assert latched["distance_m"] > 0
        await r.device.command("stop")
        assert await r.device.read_value("rollers_turning") is False


async def test_rtu_framing_through_a_serial_device_server() -> None:
    async with rig("modbus-brake", framing="rtu") as r:
        assert r.sim.url.startswith("rtu+tcp://")
        reading = await r.device.poll()
        assert (reading["load_left_kg"], reading["state"]) == (480, 0)


# URLs --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("tcp://10.0.0.5:1502", ModbusTarget(LinkKind.TCP, "10.0.0.5", 1502)),
        ("tcp://10.0.0.5", ModbusTarget(LinkKind.TCP, "10.0.0.5", 502)),
        ("10.0.0.5:502", ModbusTarget(LinkKind.TCP, "10.0.0.5", 502)),
        ("rtu+tcp://10.0.0.6:4001", ModbusTarget(LinkKind.RTU_OVER_TCP, "10.0.0.6", 4001)),
        ("socket://10.0.0.6:4001", ModbusTarget(LinkKind.RTU_OVER_TCP, "10.0.0.6", 4001)),
        ("rtu:///dev/ttyUSB0", ModbusTarget(LinkKind.RTU, path="/dev/ttyUSB0")),
        (
            "/dev/serial/by-id/usb-FTDI-if00",
            ModbusTarget(LinkKind.RTU, path="/dev/serial/by-id/usb-FTDI-if00"),
        ),
    ],
)
def test_url_forms(url: str, target: ModbusTarget) -> None:
    assert parse_url(url) == target


@pytest.mark.parametrize("url", ["tcp://:502", "rtu+tcp://10.0.0.6"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(PortUnavailable):
        parse_url(url)
