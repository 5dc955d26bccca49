"""S1 speedometer end to end: vehicles just inside and just outside the 32.8-40 km/h band
of actual speed at an indicated 40 km/h (order in -> simulated TLCH-10 -> daemon
subprocess -> record on a real mosquitto). One daemon serves the four vehicles of
tests/scenarios/speed-*.yaml in turn; the simulator's speed run is swapped between orders.

GB 38900-2020 dropped S1 from PSB reporting (standards.md §1.2): the item is optional,
kept for clients (transport 综检) that still report it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulators.devices.tlch10 import SpeedRun
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.harness import order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[1] / "scenarios"
#: scenario -> (actual speed latched, expected verdict)
CASES = {
    "speed-inside-low.yaml": (33.0, "pass"),
    "speed-outside-low.yaml": (32.5, "fail"),
    "speed-inside-high.yaml": (40.0, "pass"),
    "speed-outside-high.yaml": (40.5, "fail"),
}


def speedometer_lane(lane: SimLane) -> Any:
    bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 0.5}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
        "poll_period_s": 0.5,
        "options": {"poll_interval_s": 0.02},
    }
    return [bus], [device]


@pytest.mark.mqtt
async def test_speedometer_band_edges(tmp_path: Path, mosquitto: Mosquitto) -> None:
    first = scenario_at_speed(SCENARIOS / "speed-inside-low.yaml", 0.05)
    sims = SimLane(first, [SimDevice("speedometer", "tlch10")])
    extra = {"procedure_time_scale": 0.02}
    async with running_lane(tmp_path, mosquitto.port, sims, speedometer_lane, extra) as (
        _,
        station,
    ):
        for number, (scenario, (actual, expected)) in enumerate(CASES.items(), start=1):
            meter = load_scenario(SCENARIOS / scenario).vehicle.speedometer
            assert meter is not None and meter.actual_at_indicated_40_kmh == actual
            sim = sims.running["speedometer"].sim
            sim.run = SpeedRun(meter.actual_at_indicated_40_kmh, meter.ramp_kmh_per_s)
            body = order(number, ["S1"])
            answer = await send_command(mosquitto.port, "inspect", body)
            assert answer["ok"], answer

            def records(iid: str = body["inspection_id"]) -> dict[str, Any]:
                return {r["item_code"]: r for r in station.results if r["inspection_id"] == iid}

            await station.wait_for(lambda: "summary" in records(), timeout=20)
            item = records()["S1"]
            (speed,) = item["measurements"]
            assert speed["name"] == "actual_speed_at_indicated_40" and speed["unit"] == "km/h"
            assert speed["value"] == actual, scenario
            assert (speed["limit"]["low"], speed["limit"]["high"]) == (32.8, 40.0)
            assert (speed["verdict"], item["verdict"]) == (expected, expected), scenario
            assert records()["summary"]["verdict"] == expected
