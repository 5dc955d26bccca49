"""XK3190 weigher driver against its simulator over TCP and a PTY, both modes, with faults."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from drivers.bus import StreamBus
from drivers.devices.base import DriverContext
from drivers.devices.xk3190_weigher import (
    StabilityWindow,
    WeightReading,
    Xk3190Options,
    Xk3190Weigher,
)
from drivers.errors import (
    ConnectionLost,
    DeviceRefused,
    DriverError,
    FrameError,
    LocalProtocolError,
    ResponseTimeout,
)
from drivers.protocols.xk3190 import Command
from drivers.registry import get_spec
from simulators.base import LanePosition, SimContext
from simulators.devices.xk3190 import Xk3190Sim
from simulators.faults import Fault, FaultPlan
from simulators.registry import sim_specs
from simulators.scenario import Scenario
from tests.drivers.stream_rig import Recorder, stream_bus

FAST = 0.03  # time_scale: a frame every 3 ms, an axle settles ~0.1 s after driving on
FRONT = (480.0, 470.0)  # left, right wheel loads of the front axle, kg
REAR = (330.0, 340.0)


def make_scenario() -> Scenario:
    def axle(left: float, right: float) -> dict[str, Any]:
        brake = {"max_force_dan": 300}
        return {
            "load_left_kg": left,
            "load_right_kg": right,
            "brake_left": brake,
            "brake_right": brake,
        }

    return Scenario.model_validate(
        {
            "vehicle": {"axles": [axle(*FRONT), axle(*REAR)]},
            "timing": {"time_scale": FAST, "seed": 3, "noise": 0.01},
        }
    )


@dataclass
class Rig:
    driver: Xk3190Weigher
    sim: Xk3190Sim
    faults: FaultPlan
    observer: Recorder
    position: LanePosition
    bus: StreamBus


@contextlib.asynccontextmanager
async def rig(
    pty_link: Path | None = None, sim_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[Rig]:
    """Simulator on an endpoint, a bus and the driver, all inside one TaskGroup."""
    faults = FaultPlan(seed=4)
    position = LanePosition(axle_count=2)
    sim_opts = {"mode": options.get("mode", "continuous"), "side": options.get("side", "axle")}
    context = SimContext(make_scenario(), faults, position, options=sim_opts | (sim_options or {}))
    sim = Xk3190Sim(context)
    served = stream_bus(sim, faults, "weigh-bus", response_timeout=0.15, pty_link=pty_link)
    async with served as (bus, observer, _):
        driver = Xk3190Weigher("weigher", bus, Xk3190Options(**options))
        yield Rig(driver, sim, faults, observer, position, bus)


def near(load_kg: float) -> Any:
    """The settled reading: static error (1 % sigma) plus a division or two."""
    return pytest.approx(load_kg, abs=0.04 * load_kg + 10)


async def test_registered_in_both_registries() -> None:
    spec = get_spec("xk3190")
    assert spec.default_line.describe() == "9600 8N1"
    assert spec.device_class == "axle_weigher"
    assert "xk3190" in sim_specs()
    bus = StreamBus("unused", "socket://127.0.0.1:9")
    options = Xk3190Options(mode="command")
    device = spec.factory(DriverContext("w1", bus, 3, options))
    assert isinstance(device, Xk3190Weigher)
    assert device.options.address == "C"  # indicator address 3 is 'C' on the wire
    with pytest.raises(ValueError, match=r"options\.address"):
        spec.factory(DriverContext("w1", bus, 3, Xk3190Options(address="A")))


def test_stability_window() -> None:
    window = StabilityWindow(3, 10.0, min_kg=100)
    assert [window.push(v) for v in (0, 500, 940, 945, 950)] == [False] * 4 + [True]
    assert window.reading("axle") == WeightReading(950, "axle", True, 10.0)
    assert not window.push(970)  # spread 25 kg
    assert not window.reading("left").stable
    low = StabilityWindow(2, 10.0, min_kg=100)
    assert not low.push(0) and not low.push(0)  # stable, but an empty plate


async def test_continuous_weigh_settles_on_the_axle_load() -> None:
    async with rig() as r:
        seen: list[float] = []
        reading = await r.driver.weigh(timeout=3.0, min_kg=100, on_weight=seen.append)
        assert reading.stable and reading.side == "axle"
        assert reading.weight_kg == near(sum(FRONT))
        assert reading.spread_kg <= 10
        assert min(seen) < 100 < reading.weight_kg  # the axle drove on while we listened
        assert all(value % 5 == 0 for value in seen)  # the display rounds to 5 kg
        again = await r.driver.read_weight()
        assert again.stable and again.weight_kg == pytest.approx(reading.weight_kg, abs=10)
        polled = await r.driver.poll()
        assert polled.stable and polled.weight_kg == pytest.approx(reading.weight_kg, abs=10)


async def test_the_plate_follows_the_vehicle_along_the_lane() -> None:
    async with rig(side="left") as r:
        front = await r.driver.weigh(timeout=3.0, min_kg=100)
        assert front.side == "left" and front.weight_kg == near(FRONT[0])
        r.position.advance()  # what the brake tester does after its result is read
        rear = await r.driver.weigh(timeout=3.0, min_kg=100)
        assert rear.weight_kg == near(REAR[0])


async def test_tonnes_with_decimals_are_converted_to_kg() -> None:
    sim_options = {"unit": "t", "decimals": 3, "division_kg": 1.0, "side": "right"}
    async with rig(sim_options=sim_options, unit="t", side="right") as r:
        reading = await r.driver.weigh(timeout=3.0, min_kg=100)
        assert reading.weight_kg == near(FRONT[1])
        assert reading.weight_kg == round(reading.weight_kg)  # 1 kg division survived


async def test_command_mode_reads_gross_tare_and_net() -> None:
    async with rig(mode="command", command_poll_s=0.005) as r:
        await r.driver.handshake()
        settled = await r.driver.weigh(timeout=3.0, min_kg=100)
        assert settled.weight_kg == near(sum(FRONT))
        assert await r.driver.read_tare_kg() == 0.0
        assert await r.driver.read_net_kg() == pytest.approx(settled.weight_kg, abs=10)
        assert (await r.driver.poll()).weight_kg == pytest.approx(settled.weight_kg, abs=10)


async def test_command_mode_wrong_address_is_silent_and_unknown_command_refused() -> None:
    async with rig(mode="command") as r:
        other = Xk3190Weigher("other", r.bus, Xk3190Options(mode="command", address="B"))
        with pytest.raises(ResponseTimeout):
            await other.handshake()
        with pytest.raises(DeviceRefused):
            await r.driver._ask(Command.MODEL_E)  # our simulated model has A-D only
        await r.driver.handshake()


async def test_command_reads_need_command_mode() -> None:
    async with rig() as r:
        with pytest.raises(LocalProtocolError):
            await r.driver.read_tare_kg()


COMMAND_FAULTS: list[tuple[Fault, type[DriverError] | None]] = [
    (Fault.NO_REPLY, ResponseTimeout),
    (Fault.SLOW_REPLY, ResponseTimeout),
    (Fault.BAD_CHECKSUM, FrameError),  # the flipped last byte is the ETX
    (Fault.NAK, DeviceRefused),
    (Fault.GLUE, ResponseTimeout),
    (Fault.SPLIT, None),
    (Fault.GARBAGE, None),
]


@pytest.mark.parametrize(("fault", "error"), COMMAND_FAULTS)
async def test_command_mode_fault_is_reported_and_the_next_request_recovers(
    fault: Fault, error: type[DriverError] | None
) -> None:
    async with rig(mode="command", command_poll_s=0.005) as r:
        settled = (await r.driver.weigh(timeout=3.0, min_kg=100)).weight_kg
        r.faults.inject(fault, delay_s=0.25)
        if error is None:
            assert await r.driver.read_gross_kg() == pytest.approx(settled, abs=10)
        else:
            with pytest.raises(error):
                await r.driver.read_gross_kg()
        assert await r.driver.read_gross_kg() == pytest.approx(settled, abs=10)
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames


STREAM_FAULTS: list[tuple[Fault, float, type[DriverError] | None]] = [
    (Fault.BAD_CHECKSUM, 0.5, None),  # skipped and counted, the stream goes on
    (Fault.GARBAGE, 0.5, None),
    (Fault.NAK, 0.5, None),  # a NAK means nothing in a stream: ignored
    (Fault.SPLIT, 0.5, None),
    (Fault.GLUE, 0.5, None),
    (Fault.SLOW_REPLY, 0.05, None),  # a hiccup shorter than the silence timeout
    (Fault.SLOW_REPLY, 0.25, ResponseTimeout),  # the stream stalls longer
]


@pytest.mark.parametrize(("fault", "delay", "error"), STREAM_FAULTS)
async def test_stream_fault_mid_weighing(
    fault: Fault, delay: float, error: type[DriverError] | None
) -> None:
    async with rig() as r:
        settled = (await r.driver.weigh(timeout=3.0, min_kg=100)).weight_kg
        seen: list[float] = []

        def inject_once(value: float) -> None:
            if not seen:  # one stall, or a burst of three damaged frames
                r.faults.inject(fault, count=1 if fault == Fault.SLOW_REPLY else 3, delay_s=delay)
            seen.append(value)

        if error is None:
            reading = await r.driver.weigh(timeout=3.0, min_kg=100, on_weight=inject_once)
            assert reading.weight_kg == pytest.approx(settled, abs=10)
        else:
            with pytest.raises(error):
                await r.driver.weigh(timeout=3.0, min_kg=100, on_weight=inject_once)
        assert all(value == pytest.approx(settled, abs=10) for value in seen)  # never corrupted
        assert (await r.driver.read_weight()).weight_kg == pytest.approx(settled, abs=10)
        if fault in (Fault.BAD_CHECKSUM, Fault.GARBAGE):
            assert r.observer.bad_frames


async def test_a_silent_indicator_times_out_and_recovers() -> None:
    async with rig() as r:
        await r.driver.weigh(timeout=3.0, min_kg=100)
        r.faults.inject(Fault.NO_REPLY, count=100_000)  # the indicator stops streaming
        with pytest.raises(ResponseTimeout):
            await r.driver.read_weight()
        r.faults.clear()
        assert (await r.driver.read_weight()).weight_kg == near(sum(FRONT))


@pytest.mark.parametrize("mode", ["continuous", "command"])
async def test_disconnect_is_reported_and_the_bus_reconnects(mode: str) -> None:
    async with rig(mode=mode) as r:
        await r.driver.weigh(timeout=3.0, min_kg=100)
        r.faults.inject(Fault.DISCONNECT, delay_s=0.05)
        with pytest.raises((ConnectionLost, ResponseTimeout)):
            await r.driver.read_weight()
        await asyncio.wait_for(r.observer.opened.wait(), 5)
        assert (await r.driver.read_weight()).weight_kg == near(sum(FRONT))


@pytest.mark.parametrize("mode", ["continuous", "command"])
async def test_over_a_pty(tmp_path: Path, mode: str) -> None:
    async with rig(pty_link=tmp_path / "ttyWEIGH", mode=mode, command_poll_s=0.005) as r:
        reading = await r.driver.weigh(timeout=3.0, min_kg=100)
        assert reading.stable and reading.weight_kg == near(sum(FRONT))
