"""Modbus faults against the real pymodbus server: each is reported, counted and recovered from."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from drivers.devices.modbus_generic import modbus_device
from drivers.errors import (
    ConnectionLost,
    DeviceRefused,
    DriverError,
    FrameError,
    PortUnavailable,
    ResponseTimeout,
)
from drivers.modbus.maps import load_map
from drivers.modbus.registers import ImplausibleValue
from simulators.faults import Fault
from tests.drivers.modbus_rig import SLOW, Rig, recovered, rig

TCP_FAULTS = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.SLOW_REPLY, ResponseTimeout),
    (Fault.NAK, DeviceRefused),
    (Fault.BAD_CHECKSUM, FrameError),
    (Fault.GARBAGE, FrameError),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SPLIT, None),  # TCP is a stream: nothing to split
    (Fault.DISCONNECT, ConnectionLost),
]
PTY_FAULTS = [*TCP_FAULTS[:-2], (Fault.SPLIT, None), (Fault.DISCONNECT, ConnectionLost)]


async def check_fault(r: Rig, fault: Fault, expected: type[DriverError] | None) -> None:
    baseline = await r.device.poll()  # idle: every value is deterministic
    r.faults.inject(fault, delay_s=SLOW)
    if expected is None:
        assert await r.device.poll() == baseline
    else:
        with pytest.raises(expected) as raised:
            await r.device.poll()
        assert raised.value in r.observer.errors  # reported to the bus observer
        if isinstance(raised.value, DeviceRefused):
            assert raised.value.code == 6
    assert await recovered(r.device) == baseline  # never a corrupted value
    assert r.faults.injected == {fault: 1}


@pytest.mark.parametrize(("fault", "expected"), TCP_FAULTS, ids=[f.value for f, _ in TCP_FAULTS])
async def test_tcp_faults_are_reported_and_recovered(
    fault: Fault, expected: type[DriverError] | None
) -> None:
    async with rig("modbus-brake") as r:
        await check_fault(r, fault, expected)


@pytest.mark.parametrize(("fault", "expected"), PTY_FAULTS, ids=[f.value for f, _ in PTY_FAULTS])
async def test_rtu_pty_faults_are_reported_and_recovered(
    fault: Fault, expected: type[DriverError] | None, tmp_path: Path
) -> None:
    async with rig("modbus-brake", pty=tmp_path / "ttyBRAKE") as r:
        await check_fault(r, fault, expected)


async def test_link_drop_and_recovery() -> None:
    async with rig("modbus-speedometer") as r:
        await r.device.command("start_test")
        before = await r.device.poll()
        r.faults.inject(Fault.DISCONNECT, delay_s=0.3)
        with pytest.raises(ConnectionLost):
            await r.device.poll()
        await r.observer.lost.wait()
        assert not r.bus.is_open
        with pytest.raises((PortUnavailable, ConnectionLost)):
            await r.device.poll()  # server still down: refused at once, no hang
        r.observer.opened.clear()
        after = await recovered(r.device)
        assert r.observer.opened.is_set() and r.bus.is_open
        assert after["distance_m"] >= before["distance_m"]  # same test, still running


async def test_wrong_unit_id_gets_no_reply_and_changes_nothing() -> None:
    async with rig("modbus-brake", unit=2) as r:
        with pytest.raises(ResponseTimeout):
            await r.device.poll()
        with pytest.raises(ResponseTimeout):
            await r.device.command("start_test")
        right = modbus_device("right", r.bus, r.device.regmap, unit=1)
        assert await right.read_value("state") == 0  # the foreign start did nothing


async def test_implausible_values_are_rejected_and_counted(tmp_path: Path) -> None:
    data = load_map("brake_tester").model_dump(mode="json")
    for point in data["points"]:
        if point["name"] == "load_left_kg":
            point["max"] = 300  # the scenario's 480 kg wheel is "implausible" here
    path = tmp_path / "strict_brake.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    async with rig(
        "modbus-brake", driver_protocol="modbus-brake", driver_options={"map": str(path)}
    ) as r:
        with pytest.raises(ImplausibleValue, match="load_left_kg=480"):
            await r.device.poll()
        assert r.device.rejected == 1
        assert isinstance(r.observer.errors[-1], ImplausibleValue)
        assert await r.device.read_value("load_right_kg") == 470  # other points still readable


async def test_unmapped_address_gets_an_exception_response(tmp_path: Path) -> None:
    data = load_map("brake_tester").model_dump(mode="json")
    data["points"].append(
        {"name": "mystery", "table": "input_register", "address": "30200", "type": "uint16"}
    )
    data["max_gap"] = 0
    path = tmp_path / "bigger_brake.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    async with rig("modbus-brake", driver_options={"map": str(path)}) as r:
        with pytest.raises(DeviceRefused) as refused:
            await r.device.read("mystery")
        assert refused.value.code == 2  # illegal data address
        assert await r.device.read_value("state") == 0
