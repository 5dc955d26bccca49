"""A simulated lane for the live page test: brake tester, axle weigher and headlamp tester
over real sockets, the daemon as a subprocess, a short passenger-car order."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from simulators.lane import SimDevice, SimLane
from tests.harness import Daemon, Station, order, running_lane, scenario_at_speed

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"
DEVICES = {
    "brake": ("brake_tester", "jxgt2"),
    "weigher": ("axle_weigher", "xk3190"),
    "headlamp": ("headlamp_tester", "mqd6a"),
}
ITEMS = ["B1", "B2", "B0", "H1", "H4"]
#: procedure and simulator timing sped up: the whole order takes a few seconds
TIME_SCALE = 0.2


def lane_config(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One bus per simulated device, as in the item tests."""
    buses, devices = [], []
    for device_id, running in lane.running.items():
        device_class, protocol = DEVICES[device_id]
        bus = f"bus-{device_id}"
        buses.append({"id": bus, "url": running.url, "response_timeout_s": 1.0})
        device: dict[str, Any] = {
            "id": device_id,
            "class": device_class,
            "protocol": protocol,
            "bus": bus,
            "poll_period_s": 0.5,
        }
        if device_id == "headlamp":
            device["options"] = {"command_gap_s": 0.01, "beam_timeout_s": 3, "home_timeout_s": 3}
        devices.append(device)
    return buses, devices


@contextlib.asynccontextmanager
async def simulated_lane(tmp_path: Path, mqtt_port: int) -> AsyncIterator[tuple[Daemon, Station]]:
    """The lane running and announced (birth seen by the harness's station subscriber)."""
    devices = [SimDevice(device_id, protocol) for device_id, (_, protocol) in DEVICES.items()]
    sims = SimLane(scenario_at_speed(SCENARIO, TIME_SCALE), devices)
    extra = {"procedure_time_scale": TIME_SCALE}
    async with running_lane(tmp_path, mqtt_port, sims, lane_config, extra) as (daemon, station):
        yield daemon, station


def passenger_car_order(number: int) -> dict[str, Any]:
    """An in-use passenger car: both axles, the parking brake, both headlamps."""
    return {**order(number, ITEMS), "curb_mass_kg": 1300, "gross_mass_kg": 1700}
