"""Bus ownership seen from outside the daemon: a silent device on a shared RS-485 line
does not slow its neighbours, and a serial port that disappears is reopened."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from simulators.faults import Fault
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.harness import Station, running_lane
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


def availability(station: Station, device: str) -> list[str]:
    return [m["availability"] for m in station.messages.get(f"devices/{device}/status", [])]


def weigher(device_id: str, address: int, period: float) -> dict[str, Any]:
    return {
        "id": device_id,
        "class": "axle_weigher",
        "protocol": "xk3190",
        "bus": "rs485",
        "address": address,
        "poll_period_s": period,
        "options": {"mode": "command"},
    }


async def test_silent_device_does_not_slow_its_neighbour(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Fault: device B on a shared line stops answering. Must hold: B is marked offline
    and then asked only on its backoff schedule, so it takes little of the line (each of
    its requests costs a response timeout); device A keeps polling and stays online; the
    daemon stays up. Counted in requests, not in wall-clock rates, so a loaded machine
    cannot make it fail."""
    period, timeout = 0.25, 0.5
    devices = [
        SimDevice(name, "xk3190", {"mode": "command"}, address=addr, line="rs485")
        for name, addr in (("weigher-a", 1), ("weigher-b", 2))
    ]
    sims = SimLane(load_scenario(SCENARIO), devices)

    def config(lane: SimLane) -> Any:
        url = lane.running["weigher-a"].url
        bus = {"id": "rs485", "url": url, "response_timeout_s": timeout}
        return [bus], [weigher("weigher-a", 1, period), weigher("weigher-b", 2, period)]

    async with running_lane(tmp_path, mosquitto.port, sims, config) as (daemon, station):
        await station.wait_for(lambda: "online" in availability(station, "weigher-b"), 60)
        silent = sims.running["weigher-b"].faults
        silent.inject(Fault.NO_REPLY, count=100_000)
        await station.wait_for(lambda: "offline" in availability(station, "weigher-b"), 60)
        asked_b = silent.injected[Fault.NO_REPLY]
        polls_a = len(station.messages.get("telemetry/weigher-a", []))
        window = 6.0
        await asyncio.sleep(window)
        asked_b = silent.injected[Fault.NO_REPLY] - asked_b
        # offline, B is asked after 1, 2, 4... poll periods (gateway/supervisor.py): in a
        # window of 24 periods at most about log2(24) + 1 times, whatever the load
        assert asked_b <= 6, f"offline weigher-b was asked {asked_b} times in {window} s"
        assert asked_b * timeout <= 0.5 * window, "the silent device held the line"
        assert len(station.messages.get("telemetry/weigher-a", [])) > polls_a + 1
        assert availability(station, "weigher-a")[-1] == "online"
        assert daemon.proc is not None and daemon.proc.returncode is None


async def test_vanished_serial_port_is_reopened(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """Fault: the PTY behind /dev/serial/by-id-like symlink disappears for 2 s (longer than
    every timeout) and comes back as a new /dev/pts/N. Must hold: the device goes offline,
    then online again without restarting the daemon."""
    sims = SimLane(load_scenario(SCENARIO), [SimDevice("speedometer", "tlch10")], "pty", tmp_path)

    def config(lane: SimLane) -> Any:
        bus = {"id": "usb0", "url": lane.running["speedometer"].url, "response_timeout_s": 0.3}
        device = {
            "id": "speedometer",
            "class": "speedometer_tester",
            "protocol": "tlch10",
            "bus": "usb0",
            "poll_period_s": 0.2,
        }
        return [bus], [device]

    async with running_lane(tmp_path, mosquitto.port, sims, config) as (daemon, station):
        await station.wait_for(lambda: "online" in availability(station, "speedometer"))
        sims.running["speedometer"].faults.inject(Fault.DISCONNECT, delay_s=2.0)
        await station.wait_for(lambda: "offline" in availability(station, "speedometer"))
        await station.wait_for(lambda: availability(station, "speedometer")[-1] == "online")
        assert availability(station, "speedometer")[-2:] == ["offline", "online"]
        assert daemon.proc is not None and daemon.proc.returncode is None
        assert len(daemon.log_events("port_open")) >= 2
        assert len(daemon.log_events("gateway_starting")) == 1


pytestmark = pytest.mark.mqtt
