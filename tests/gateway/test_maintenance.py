"""Daily checks and lockouts against a running daemon: a failed leak check locks the
analyser, a passing one unlocks it; an expired certificate locks its device and an order
that needs it is refused with the reason; check records are published."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from simulators.lane import SimDevice, SimLane
from tests.harness import order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


async def lanegw(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lane_config(lane: SimLane) -> Any:
    buses = [
        {"id": "com1", "url": lane.running["speedometer"].url},
        {"id": "com2", "url": lane.running["analyser"].url},
    ]
    devices = [
        {
            "id": "speedometer",
            "class": "speedometer_tester",
            "protocol": "tlch10",
            "bus": "com1",
            "identity": {"certificate": {"number": "JL-2024-001", "expires": "2025-01-31"}},
        },
        {
            "id": "analyser",
            "class": "gas_analyser",
            "protocol": "nha503",
            "bus": "com2",
            "identity": {"certificate": {"number": "JL-2026-777", "expires": "2099-12-31"}},
        },
    ]
    return buses, devices


async def test_checks_drive_lockouts(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.02),
        [SimDevice("speedometer", "tlch10"), SimDevice("analyser", "nha503", {"leak": True})],
    )
    extra = {"lockouts": {"daily_checks": {"gas_analyser": ["leak"]}}}
    config = str(tmp_path / "lane.yaml")
    async with running_lane(tmp_path, mosquitto.port, sims, lane_config, extra) as (_, station):
        code, out, _ = await lanegw("lockouts", "-c", config, "--json")
        locked = json.loads(out)
        assert code == 0
        assert locked["speedometer"] == ["certificate JL-2024-001 expired on 2025-01-31"]
        assert locked["analyser"] == ["daily leak check missing"]

        refused = await send_command(mosquitto.port, "inspect", order(1))
        assert not refused["ok"] and "expired on 2025-01-31" in refused["error"]

        code, out, err = await lanegw(
            "check", "analyser", "leak", "-c", config, "--yes", "--technician", "T042", "--json"
        )
        failed = json.loads(out)
        assert code == 3, err
        assert not failed["passed"] and failed["locked"][0].startswith("leak check failed at")

        sims.running["analyser"].sim.leak = False  # the technician fixed the probe seal
        code, out, err = await lanegw("check", "analyser", "leak", "-c", config, "--yes", "--json")
        assert code == 0, err
        passed = json.loads(out)
        assert passed["passed"] and passed["locked"] == []

        code, out, _ = await lanegw("status", "-c", config, "--json")
        assert set(json.loads(out)["lockouts"]) == {"speedometer"}

        await station.wait_for(lambda: len(station.unique_results()) >= 2)
        checks = [r for r in station.unique_results() if r["kind"] == "check"]
        assert [(r["item_code"], r["verdict"]) for r in checks] == [
            ("check:leak", "fail"),
            ("check:leak", "pass"),
        ]
        assert checks[0]["devices"][0]["certificate"] == "JL-2026-777"

        code, _, err = await lanegw("check", "analyser", "filter", "-c", config, "--yes")
        assert code == 2 and "no check 'filter' for a gas_analyser" in err
        code, _, err = await lanegw("check", "analyser", "span", "-c", config, "--yes")
        assert code == 1 and "needs the reference value c3h8_ppm" in err
