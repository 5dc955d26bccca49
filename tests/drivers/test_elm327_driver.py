"""ELM327 OBD driver against its simulator over TCP and a PTY: set-up, protocol search,
VIN (multi-frame), MIL, DTCs, readiness, CALID/CVN, live data, legacy protocols, faults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from drivers.devices.base import DeviceClass, DriverContext
from drivers.devices.dyno_api import ObdReader
from drivers.devices.elm327_obd import Elm327Obd, Elm327Options
from drivers.errors import DeviceFault, ResponseTimeout, UnexpectedResponse
from drivers.registry import get_spec
from simulators.devices.elm327 import Elm327Sim
from simulators.faults import Fault
from simulators.registry import sim_specs
from tests.drivers.dyno_rig import make_scenario, rig

VIN = "LSVAU2180N2183294"


def obd_rig(
    obd: dict[str, Any] | None = None,
    *,
    options: dict[str, Any] | None = None,
    pty_link=None,
    **vehicle,
):
    scenario = make_scenario(
        vehicle={"obd": obd if obd is not None else {}, "petrol": {}, **vehicle}
    )
    return rig(
        Elm327Sim,
        lambda bus: Elm327Obd("obd", bus, Elm327Options(**(options or {}))),
        scenario,
        pty_link=pty_link,
    )


async def test_registered_and_a_clean_car() -> None:
    spec = get_spec("elm327")
    assert (
        spec.default_line.describe() == "38400 8N1" and spec.device_class is DeviceClass.OBD_READER
    )
    assert "elm327" in sim_specs()
    async with obd_rig() as r:
        reader: ObdReader = spec.factory(DriverContext("obd2", r.bus, None, spec.options()))  # type: ignore[assignment]
        assert await reader.connect() == "ISO 15765-4 (CAN 11/500)"
        assert reader.protocol == "ISO 15765-4 (CAN 11/500)"
        assert r.sim.commands[:7] == ["ATZ", "ATE0", "ATL0", "ATS0", "ATH1", "ATSP0", "0100"]
        assert await reader.read_vin() == VIN
        mil = await reader.read_mil()
        assert (mil.mil_on, mil.dtc_count, mil.compression_ignition) == (False, 0, False)
        assert await reader.read_dtcs() == []
        readiness = await reader.read_readiness()
        assert readiness["catalyst"] == "complete" and readiness["misfire"] == "complete"
        assert readiness["egr_system"] == "not_supported"
        assert await reader.read_calibration_ids() == ["JMB*36761500"]
        assert await reader.read_cvns() == ["1791BC82"]
        live = await reader.read_live()
        assert (
            live.engine_speed_rpm == 800
            and live.vehicle_speed_kmh == 0
            and live.coolant_temp_c == 88
        )
        state = await reader.poll()
        assert state.battery_v == 13.8 and state.protocol == reader.protocol


async def test_mil_on_with_dtcs_incomplete_monitors_and_another_vin() -> None:
    obd = {
        "mil_on": True,
        "dtcs": ["P0301", "P0420", "U0100"],
        "vin": "LFV2A21K6A3000001",
        "readiness": {"misfire": "complete", "catalyst": "incomplete", "oxygen_sensor": "complete"},
    }
    async with obd_rig(obd) as r:
        await r.driver.connect()
        assert await r.driver.read_vin() == "LFV2A21K6A3000001"
        mil = await r.driver.read_mil()
        assert mil.mil_on and mil.dtc_count == 3
        assert await r.driver.read_dtcs() == ["P0301", "P0420", "U0100"]
        readiness = await r.driver.read_readiness()
        assert readiness["catalyst"] == "incomplete" and readiness["fuel_system"] == "not_supported"


@pytest.mark.parametrize("protocol", ["3", "5", "7", "8"])
async def test_other_protocols_and_headers_off(protocol: str) -> None:
    obd = {"protocol": protocol, "dtcs": ["P0133"], "cvns": ["1791BC82", "16E062BE"]}
    for options in ({}, {"init_commands": ["ATZ", "ATE0", "ATH0", "ATS1"]}):
        async with obd_rig(obd, options=options) as r:
            await r.driver.connect()
            assert r.driver.protocol_number == protocol
            assert await r.driver.read_vin() == VIN
            assert await r.driver.read_dtcs() == ["P0133"]
            assert await r.driver.read_cvns() == ["1791BC82", "16E062BE"]


async def test_diesel_monitors() -> None:
    obd = {
        "readiness": {
            "misfire": "complete",
            "pm_filter": "incomplete",
            "nox_scr_monitor": "complete",
        }
    }
    scenario_vehicle = {"diesel": {}}
    async with rig(
        Elm327Sim,
        lambda bus: Elm327Obd("obd", bus),
        make_scenario(vehicle={"obd": obd, **scenario_vehicle}),
    ) as r:
        await r.driver.connect()
        assert (await r.driver.read_mil()).compression_ignition
        readiness = await r.driver.read_readiness()
        assert readiness["pm_filter"] == "incomplete" and readiness["nox_scr_monitor"] == "complete"
        assert "catalyst" not in readiness


async def test_no_vin_ignition_off_and_no_obd() -> None:
    async with obd_rig({"vin": ""}) as r:
        await r.driver.connect()
        assert await r.driver.read_vin() is None
    async with obd_rig({"ignition_on": False}) as r:
        with pytest.raises(DeviceFault, match="UNABLE TO CONNECT"):
            await r.driver.connect()
    async with obd_rig({"protocol": "3"}, options={"protocol": "6"}) as r:
        with pytest.raises(DeviceFault):
            await r.driver.connect()
    async with obd_rig() as r:
        with pytest.raises(UnexpectedResponse, match="not connected"):
            await r.driver.read_vin()


async def test_faults_and_a_pty(tmp_path: Path) -> None:
    async with obd_rig(pty_link=tmp_path / "tty-obd") as r:
        await r.driver.connect()
        r.faults.inject(Fault.NO_REPLY)
        with pytest.raises(ResponseTimeout):
            await r.driver.read_mil()
        r.faults.inject(Fault.SPLIT)
        assert await r.driver.read_vin() == VIN
        # ELM text carries no checksum: noise that leaves text behind ("F_" here, with
        # this seed) spoils the reply, which is refused, never misread
        r.faults.inject(Fault.GARBAGE)
        with pytest.raises(UnexpectedResponse, match="not a data line"):
            await r.driver.read_mil()
        assert (await r.driver.read_mil()).dtc_count == 0
