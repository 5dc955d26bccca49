"""MQD-6A headlamp tester driver against its simulator over TCP and a PTY, with faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext, NoOptions
from drivers.devices.mqd6a_headlamp import (
    OFFSET_TO_MM_AT_10M,
    HeadlampStatus,
    Mqd6aHeadlampTester,
    Mqd6aOptions,
)
from drivers.errors import (
    ChecksumError,
    ConnectionLost,
    DeviceFault,
    DeviceRefused,
    DriverError,
    ResponseTimeout,
)
from drivers.protocols.mqd6a import EventKind, Slot
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.mqd6a import Mqd6aSim
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import Recorder, stream_bus

FAST = 0.015  # time_scale: a side of two beams takes ~0.08 s, homing 0.03 s
LEFT = {"high_intensity_cd": 21500, "high_horizontal_offset": 1.5, "high_vertical_offset": -2.0,
        "low_horizontal_offset": 0.5, "low_vertical_offset": -15.0, "height_mm": 710}  # fmt: skip
RIGHT = {"high_intensity_cd": 18000, "high_horizontal_offset": -3.0, "height_mm": 705}
INNER = {"high_intensity_cd": 16000, "height_mm": 650}


def make_scenario(lamps: dict[str, Any] | None) -> Scenario:
    brake = {"max_force_dan": 300}
    axle = {"load_left_kg": 400, "load_right_kg": 400, "brake_left": brake, "brake_right": brake}
    vehicle: dict[str, Any] = {"axles": [axle]}
    if lamps is not None:
        vehicle["lamps"] = lamps
    timing = {"time_scale": FAST, "seed": 8, "noise": 0.01}
    return Scenario.model_validate({"vehicle": vehicle, "timing": timing})


TWO_LAMPS = {"system": 2, "left_outer": LEFT, "right_outer": RIGHT}
FOUR_LAMPS = TWO_LAMPS | {"system": 4, "left_inner": INNER, "right_inner": INNER}


@dataclass
class Rig:
    driver: Mqd6aHeadlampTester
    sim: Mqd6aSim
    faults: FaultPlan
    observer: Recorder
    bus: StreamBus


@contextlib.asynccontextmanager
async def rig(
    lamps: dict[str, Any] | None = TWO_LAMPS, pty_link: Path | None = None, **options: Any
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    faults = FaultPlan(seed=4)
    sim = Mqd6aSim(SimContext(make_scenario(lamps), faults, LanePosition()))
    served = stream_bus(sim, faults, "lamp-bus", response_timeout=0.15, pty_link=pty_link)
    async with served as (bus, observer, _):
        options = {"command_gap_s": 0.0, "beam_timeout_s": 0.2, "home_timeout_s": 0.2} | options
        driver = Mqd6aHeadlampTester("headlamp", bus, Mqd6aOptions(**options))
        yield Rig(driver, sim, faults, observer, bus)


async def test_registered_in_both_registries() -> None:
    spec = get_spec("mqd6a")
    assert spec.default_line.describe() == "2400 8N1"
    assert spec.device_class == "headlamp_tester"
    assert "mqd6a" in sim_specs()
    bus = StreamBus("unused", "socket://127.0.0.1:9")
    device = spec.factory(DriverContext("h1", bus, None, NoOptions()))
    assert isinstance(device, Mqd6aHeadlampTester)
    assert device.options == Mqd6aOptions()


async def test_a_whole_two_lamp_test() -> None:
    async with rig() as r:
        assert await r.driver.poll() == HeadlampStatus("ready_home", None)
        result = await r.driver.run_test("both")
        assert [lamp.slot for lamp in result.lamps] == [
            "left_main_high",
            "left_low",
            "right_main_high",
            "right_low",
        ]
        high = result.get(Slot.LEFT_MAIN_HIGH)
        assert high is not None and high.side == "left" and high.beam == "high"
        assert high.intensity_cd == pytest.approx(21500, rel=0.05)
        assert high.intensity_cd % 100 == 0
        # the default unit is cm/dam: x10 gives mm at 10 m
        assert high.horizontal_offset_mm_at_10m == pytest.approx(15, abs=5)
        assert high.vertical_offset_mm_at_10m == pytest.approx(-20, abs=5)
        assert high.height_mm == pytest.approx(710, abs=10)
        low = result.get(Slot.LEFT_LOW)
        assert low is not None and low.intensity_cd == 0
        assert low.vertical_offset_mm_at_10m == pytest.approx(-150, abs=5)
        assert low.height_ratio == pytest.approx((710 - 150) / 710, abs=0.02)
        right = result.get(Slot.RIGHT_MAIN_HIGH)
        assert right is not None and right.intensity_cd == pytest.approx(18000, rel=0.05)
        assert result.get(Slot.LEFT_AUX_HIGH) is None
        assert await r.driver.poll() == HeadlampStatus("ready_home", "homed")
        assert result.as_dict()["lamps"][0]["slot"] == "left_main_high"


async def test_four_lamps_measure_the_auxiliary_high_beam() -> None:
    async with rig(FOUR_LAMPS) as r:
        await r.driver.configure(lamp_system=4)
        events = await r.driver.measure("left")
        assert events == (EventKind.MAIN_HIGH_DONE, EventKind.AUX_HIGH_DONE, EventKind.LOW_DONE)
        assert (await r.driver.poll()).state == "ready_away"
        result = await r.driver.read_all()
        aux = result.get(Slot.LEFT_AUX_HIGH)
        assert aux is not None and aux.lamp == "aux" and aux.height_mm == pytest.approx(650, abs=10)
        assert result.get(Slot.RIGHT_MAIN_HIGH) is None  # the right side was not measured


async def test_beam_selection_and_order() -> None:
    async with rig(high_first=False) as r:
        await r.driver.configure()
        assert await r.driver.measure("right") == (EventKind.LOW_DONE, EventKind.MAIN_HIGH_DONE)
        await r.driver.set_beams("high")
        assert await r.driver.measure("left") == (EventKind.MAIN_HIGH_DONE,)
        slots = [lamp.slot for lamp in (await r.driver.read_all()).lamps]
        assert slots == ["left_main_high", "right_main_high", "right_low"]


async def test_offset_unit_is_configurable() -> None:
    async with rig() as r:
        await r.driver.measure("left")
        default = (await r.driver.read_all()).get(Slot.LEFT_LOW)
        for unit in ("mm/10m", "arcmin", "mrad"):
            other = Mqd6aHeadlampTester("h", r.bus, Mqd6aOptions(offset_unit=unit))
            reading = (await other.read_all()).get(Slot.LEFT_LOW)
            assert default is not None and reading is not None
            expected = default.vertical_offset_mm_at_10m / 10 * OFFSET_TO_MM_AT_10M[unit]
            assert reading.vertical_offset_mm_at_10m == pytest.approx(expected, abs=1e-3)


async def test_main_lamp_packet_and_lenient_dump() -> None:
    async with rig(dump_check="lenient") as r:
        await r.driver.measure("right")
        main = await r.driver.read_main_lamp("right")
        assert [lamp.slot for lamp in main.lamps] == ["right_main_high", "right_low"]
        assert main.lamps == (await r.driver.read_all()).lamps


async def test_no_lamp_found_is_a_device_fault() -> None:
    async with rig(lamps=None) as r:
        with pytest.raises(DeviceFault, match="no lamp found"):
            await r.driver.measure("left")
        assert await r.driver.poll() == HeadlampStatus("ready_away", "no_lamp")
        await r.driver.home()
        assert (await r.driver.read_all()).lamps == ()


async def test_missing_inner_lamp_on_a_four_lamp_setting() -> None:
    async with rig(TWO_LAMPS) as r:
        await r.driver.configure(lamp_system=4)
        with pytest.raises(DeviceFault, match="no lamp found"):
            await r.driver.measure("left")
        slots = [lamp.slot for lamp in (await r.driver.read_all()).lamps]
        assert slots == ["left_main_high"]  # measured before the tester gave up


async def test_measurement_error_is_a_device_fault_and_the_next_test_works() -> None:
    async with rig() as r:
        r.sim.fail_next_measure = True
        with pytest.raises(DeviceFault, match="measurement error"):
            await r.driver.measure("both")
        assert len(await r.driver.measure("both")) == 4


async def test_stop_aborts_and_a_busy_tester_refuses() -> None:
    async with rig() as r:
        await r.driver.stop()  # nothing running: accepted silently
        r.driver.options = r.driver.options.model_copy(update={"beam_timeout_s": 0.01})
        with pytest.raises(ResponseTimeout):
            await r.driver.measure("left")  # gave up waiting; the tester carries on
        with pytest.raises(DeviceRefused):
            await r.driver.home()
        await r.driver.stop()
        assert (await r.driver.poll()).state == "ready_away"


async def test_poll_without_status_query_does_no_io() -> None:
    async with rig(status_query=False) as r:
        r.faults.inject(Fault.NO_REPLY, count=10)
        assert await r.driver.poll() == HeadlampStatus("unknown", None)
        assert r.faults.injected == {}


FAULTS: list[tuple[Fault, type[DriverError] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.SLOW_REPLY, ResponseTimeout),
    (Fault.BAD_CHECKSUM, ChecksumError),
    (Fault.NAK, DeviceRefused),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
]


@pytest.mark.parametrize(("fault", "error"), FAULTS)
async def test_data_fault_is_reported_and_the_next_read_recovers(
    fault: Fault, error: type[DriverError] | None
) -> None:
    async with rig() as r:
        await r.driver.measure("left")
        expected = await r.driver.read_all()
        r.faults.inject(fault, delay_s=0.25)
        if error is None:
            assert await r.driver.read_all() == expected
        else:
            with pytest.raises(error):
                await r.driver.read_all()
        assert await r.driver.read_all() == expected  # never a corrupted value
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames


@pytest.mark.parametrize(("fault", "error"), FAULTS)
async def test_status_fault_is_reported_and_the_next_poll_recovers(
    fault: Fault, error: type[DriverError] | None
) -> None:
    async with rig() as r:
        if error is None:
            r.faults.inject(fault)
            assert (await r.driver.poll()).state == "ready_home"
        else:
            r.faults.inject(fault, delay_s=0.25)
            with pytest.raises(error):
                await r.driver.poll()
        assert (await r.driver.poll()).state == "ready_home"


EVENT_FAULTS: list[tuple[Fault, type[DriverError] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),  # a finish event lost: the side never completes
    (Fault.BAD_CHECKSUM, ChecksumError),
    (Fault.NAK, DeviceRefused),
    (Fault.SLOW_REPLY, None),  # events are slow anyway: within the beam timeout
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
    (Fault.GLUE, None),  # the first event arrives glued to the second
]


@pytest.mark.parametrize(("fault", "error"), EVENT_FAULTS)
async def test_event_fault_while_measuring(fault: Fault, error: type[DriverError] | None) -> None:
    async with rig() as r:
        r.faults.inject(fault, delay_s=0.05)
        if error is None:
            assert len(await r.driver.measure("left")) == 2
        else:
            with pytest.raises(error):
                await r.driver.measure("left")
            await r.driver.stop()  # the tester may still be at it (after a NAK): as S4 does
        assert len(await r.driver.measure("left")) == 2


async def test_disconnect_is_reported_and_the_bus_reconnects() -> None:
    async with rig() as r:
        r.faults.inject(Fault.DISCONNECT, delay_s=0.05)
        with pytest.raises(ConnectionLost):
            await r.driver.poll()
        await asyncio.wait_for(r.observer.opened.wait(), 5)
        assert (await r.driver.poll()).state == "ready_home"


async def test_over_a_pty(tmp_path: Path) -> None:
    async with rig(pty_link=tmp_path / "ttyLAMP") as r:
        result = await r.driver.run_test("left")
        assert [lamp.slot for lamp in result.lamps] == ["left_main_high", "left_low"]
