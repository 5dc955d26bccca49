"""``lanegw inspect start/abort`` against a running daemon: an invalid order changes
nothing, an aborted inspection ends with aborted records, and the lane then goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from simulators.lane import SimDevice, SimLane
from simulators.scenario import Scenario
from tests.harness import run_cli, running_lane, scenario_at_speed
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"
VIN = "LSVAU2180N2183294"


async def lanegw(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args)


PRIMED = (
    "import sys\n"
    "from gateway.cli.main import app\n"
    "sys.stdin.readline()\n"  # imported and ready: run when told (no start-up delay)
    "sys.argv = ['lanegw', *sys.argv[1:]]\n"
    "app()\n"
)


async def primed(*args: str) -> asyncio.subprocess.Process:
    """``lanegw ARGS`` started and waiting for a line on stdin to run: a loaded machine's
    start-up time does not decide whether it comes in time."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", PRIMED, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


def speedometer_lane(lane: SimLane) -> Any:
    bus = {"id": "com1", "url": lane.running["speedometer"].url}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
        "options": {"poll_interval_s": 0.05},
    }
    return [bus], [device]


def slow_ramp() -> Scenario:
    """A driver who takes about a minute to reach the dashboard's 40 km/h: the item waits
    in ``speedometer_spinning`` until the abort, however long the CLI takes to start."""
    scenario = scenario_at_speed(SCENARIO, 1.0)
    assert scenario.vehicle.speedometer is not None
    slow = scenario.vehicle.speedometer.model_copy(update={"ramp_kmh_per_s": 0.7})
    vehicle = scenario.vehicle.model_copy(update={"speedometer": slow})
    return scenario.model_copy(update={"vehicle": vehicle})


def start_args(config: str, inspection_id: str, vin: str = VIN) -> list[str]:
    return [
        "inspect",
        "start",
        "-c",
        config,
        "--inspection-id",
        inspection_id,
        "--plate",
        "粤A12345",
        "--vin",
        vin,
        "--items",
        "S1",
    ]


async def test_abort_ends_the_inspection_and_the_lane_goes_on(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sims = SimLane(slow_ramp(), [SimDevice("speedometer", "tlch10")])
    config = str(tmp_path / "lane.yaml")
    async with running_lane(tmp_path, mosquitto.port, sims, speedometer_lane) as (_, station):
        code, _, err = await lanegw(*start_args(config, "44010012026112901", vin="BAD"))
        assert code == 1 and "vin" in err

        # this vehicle never reaches 40 km/h (a slow ramp): it is still running when the
        # abort comes, however loaded the machine
        meter = sims.running["speedometer"].sim
        normal = meter.run
        meter.run = dataclasses.replace(normal, ramp_kmh_per_s=0.1)
        abort = await primed("inspect", "abort", "44010012026112902", "-c", config)
        code, out, err = await lanegw(*start_args(config, "44010012026112902"))
        assert code == 0, err
        assert "inspection 44010012026112902 queued for 粤A12345 (S1): starts now" in out, out
        await station.wait_for(
            lambda: any(
                p["step"] == "speedometer_spinning" for p in station.messages.get("progress", [])
            )
        )
        async with asyncio.timeout(60):
            raw_out, raw_err = await abort.communicate(b"go\n")
        out, err = raw_out.decode(), raw_err.decode()
        assert abort.returncode == 0, err
        assert "aborted: its current item ends as aborted" in " ".join(out.split()), out
        meter.run = normal
        await station.wait_for(lambda: len(station.unique_results()) >= 2)
        item, summary = station.unique_results()[:2]
        assert item["verdict"] == "aborted" and item["reason"] == "aborted by command"
        assert summary["verdict"] == "aborted" and summary["inspection_id"] == "44010012026112902"

        code, _, err = await lanegw("inspect", "abort", "44010012026112902", "-c", config)
        assert code == 1 and "no inspection" in err

        second = await primed(*start_args(config, "44010012026112904"), "--json")
        code, _, err = await lanegw(*start_args(config, "44010012026112903"))
        assert code == 0, err

        def spinning(iid: str) -> bool:
            progress = station.messages.get("progress", [])
            return any(p["step"] == "speedometer_spinning" and p["inspection_id"] == iid
                       for p in progress)  # fmt: skip

        # a second order while the first runs: one inspection ahead of it (not "position 1")
        await station.wait_for(lambda: spinning("44010012026112903"))
        async with asyncio.timeout(60):
            raw, err_raw = await second.communicate(b"go\n")
        assert second.returncode == 0, err_raw
        assert json.loads(raw)["ahead"] == 1 and json.loads(raw)["plate"] == "粤A12345"
        # the drivers speed up now (a slow ramp takes about a minute a car)
        meter.run = dataclasses.replace(normal, ramp_kmh_per_s=16.0)
        await station.wait_for(lambda: len(station.unique_results()) >= 6, timeout=90)
        assert station.unique_results()[2]["verdict"] == "pass"
