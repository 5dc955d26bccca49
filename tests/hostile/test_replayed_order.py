"""A finished order replayed is refused (also after a restart), a new attempt runs.

Through the real daemon: a speedometer lane, one S1 order run to its summary, then the
very same order again (the replay), the daemon restarted and the replay again, then the
retest as attempt 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from simulators.lane import SimDevice, SimLane
from tests.harness import Station, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


def speedometer(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 1.0}
    device = {"id": "speedometer", "class": "speedometer_tester", "protocol": "tlch10",
              "bus": "com1", "options": {"poll_interval_s": 0.02}}  # fmt: skip
    return [bus], [device]


def summaries(station: Station, attempt: int) -> int:
    return sum(r["kind"] == "summary" and r["attempt"] == attempt for r in station.unique_results())


def births(station: Station) -> int:
    return sum(m["online"] for m in station.messages.get("state", []))


@pytest.mark.mqtt
async def test_a_finished_order_replayed_is_refused_a_new_attempt_runs(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    body = order(1)
    async with running_lane(tmp_path, mosquitto.port, sims, speedometer) as (daemon, station):
        assert (await send_command(mosquitto.port, "inspect", body))["ok"]
        await station.wait_for(lambda: summaries(station, 1) == 1)
        replay = await send_command(mosquitto.port, "inspect", body)
        assert not replay["ok"] and "already been run" in replay["error"], replay
        assert "a retest is attempt 2" in replay["error"]
        await daemon.stop()
        born = births(station)
        await daemon.start()
        await station.wait_for(lambda: births(station) > born)
        after_restart = await send_command(mosquitto.port, "inspect", body)
        assert not after_restart["ok"] and "already been run" in after_restart["error"]
        retest = await send_command(mosquitto.port, "inspect", {**body, "attempt": 2})
        assert retest["ok"], retest
        await station.wait_for(lambda: summaries(station, 2) == 1)
        older = await send_command(mosquitto.port, "inspect", {**body, "attempt": 1})
        assert not older["ok"]  # an older attempt is a replay too
    assert summaries(station, 1) == 1  # attempt 1 ran once
    refused = [e for e in daemon.log_events("command_refused") if "already been run" in e["error"]]
    assert len(refused) == 3
