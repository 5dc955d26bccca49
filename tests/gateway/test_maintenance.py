"""Daily checks and lockouts against a running daemon: a failed leak check locks the
analyser, a passing one unlocks it; an expired certificate locks its device and an order
that needs it is refused with the reason; check records are published."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from simulators.lane import SimDevice, SimLane
from tests.harness import order, run_cli, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


async def lanegw(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args)


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
        code, out, err = await lanegw(
            "check", "analyser", "leak", "-c", config, "--yes", "--json", "-t", "T042"
        )
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

        code, _, err = await lanegw("check", "analyser", "filter", "-c", config, "--yes", "-t", "T")
        assert code == 2 and "no check 'filter' for a gas_analyser" in err
        code, _, err = await lanegw("check", "analyser", "span", "-c", config, "--yes", "-t", "T")
        assert code == 1 and "needs the reference value c3h8_ppm" in err


CYLINDERS = """\
- {name: zero, c3h8_ppm: 0, co_pct_vol: 0, co2_pct_vol: 0, no_ppm: 0}
- {name: low, c3h8_ppm: 200, co_pct_vol: 0.5, co2_pct_vol: 3.6, no_ppm: 300}
- {name: mid-low, c3h8_ppm: 960, co_pct_vol: 2.4, co2_pct_vol: 3.6, no_ppm: 900}
- {name: mid-high, c3h8_ppm: 1920, co_pct_vol: 4.8, co2_pct_vol: 7.2, no_ppm: 1800}
- {name: high, c3h8_ppm: 3200, co_pct_vol: 8.0, co2_pct_vol: 12.0, no_ppm: 3000}
"""


async def test_low_flow_and_five_point_checks(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A clogged filter fails the low-flow check and locks the analyser; a clean one passes.
    The five-point check runs one cylinder per point, records each point with the PEF and
    the measured values, and counts as done (unlocking) only when all five passed."""
    sims = SimLane(  # a gas check takes 2 s here: the bench settles on each cylinder's gas
        scenario_at_speed(SCENARIO, 0.2),
        [SimDevice("speedometer", "tlch10"), SimDevice("analyser", "nha503", {"low_flow": True})],
    )
    policy = {"gas_analyser": ["low_flow", "five_point"]}
    config = str(tmp_path / "lane.yaml")
    gases = tmp_path / "cylinders.yaml"
    gases.write_text(CYLINDERS)
    async with running_lane(
        tmp_path, mosquitto.port, sims, lane_config, {"lockouts": {"daily_checks": policy}}
    ) as (_, station):
        code, out, err = await lanegw(
            "check", "analyser", "low_flow", "-c", config, "-y", "--json", "-t", "T042"
        )
        clogged = json.loads(out)
        assert code == 3, err
        assert clogged["measurements"][0]["value"] == 20  # a fifth of the simulator's 100
        assert any(r.startswith("low_flow check failed") for r in clogged["locked"])

        sims.running["analyser"].sim.low_flow = False  # filter replaced
        code, out, err = await lanegw(
            "check", "analyser", "low_flow", "-c", config, "-y", "--json", "-t", "T042"
        )
        assert code == 0 and json.loads(out)["locked"] == ["daily five_point check missing"]

        code, _, err = await lanegw(
            "check", "analyser", "five_point", "-c", config, "-y", "-t", "T"
        )
        assert code == 2 and "needs --gases" in err
        bad = tmp_path / "four.yaml"
        bad.write_text("\n".join(CYLINDERS.splitlines()[:4]))
        code, _, err = await lanegw(
            "check", "analyser", "five_point", "--gases", str(bad), "-c", config, "-y", "-t", "T"
        )
        assert code == 2 and "at least 5 items" in err

        code, out, err = await lanegw(
            "check",
            "analyser",
            "five_point",
            "--gases",
            str(gases),
            "-c",
            config,
            "-y",
            "--json",
            "-t",
            "T042",
        )
        assert code == 0, err
        points = [json.loads(line) for line in out.splitlines()]
        assert [p["passed"] for p in points] == [True] * 5
        assert [p["locked"] for p in points][3:] == [["daily five_point check missing"], []]
        high = {m["name"]: m["value"] for m in points[4]["measurements"]}
        assert high["point"] == 5 and high["pef"] == 0.52
        assert high["nominal_hc_ppm"] == round(3200 * 0.52)
        assert abs(high["measured_co_pct_vol"] - 8.0) < 0.4
        assert abs(high["measured_hc_ppm"] - high["nominal_hc_ppm"]) < 0.05 * 3200 * 0.52

        await station.wait_for(lambda: len(station.unique_results()) >= 7)
        checks = [r["item_code"] for r in station.unique_results() if r["kind"] == "check"]
        assert checks == ["check:low_flow"] * 2 + ["check:five_point"] * 5
