"""Daily checks as a technician runs them (against a running daemon, the analyser
simulated over a real socket): what was measured is shown, FAILED or not; a five-point
check declined at its third cylinder keeps (and shows) the two points done; the check log
keeps the measurements; no check without its technician, over MQTT or the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pexpect
import pytest

from simulators.lane import SimDevice, SimLane
from tests.gateway.test_cli_terminal import finish
from tests.gateway.test_maintenance import CYLINDERS, SCENARIO, lane_config
from tests.harness import run_cli, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto


async def lanegw(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args, env={"COLUMNS": "160"}, unwrap=(True, True))


@pytest.mark.mqtt
async def test_checks_show_what_they_measured(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.02),
        [SimDevice("speedometer", "tlch10"), SimDevice("analyser", "nha503", {"low_flow": True})],
    )
    config = str(tmp_path / "lane.yaml")
    gases = tmp_path / "cylinders.yaml"
    gases.write_text(CYLINDERS)
    log = tmp_path / "state" / "maintenance" / "checks.jsonl"
    async with running_lane(tmp_path, mosquitto.port, sims, lane_config):
        # a FAILED check shows what it measured, not only that it failed
        code, out, err = await lanegw(
            "check", "analyser", "low_flow", "-c", config, "-y", "-t", "T042"
        )
        assert code == 3, err
        assert "low_flow check FAILED" in out and "sample flow (raw)" in out and "FAIL" in out
        sims.running["analyser"].sim.low_flow = False  # filter replaced
        # a span shows the analyser's readings of the check gas
        code, out, err = await lanegw(
            "check", "analyser", "span", "-c", config, "-y", "-t", "T042",
            "--value", "c3h8_ppm=1000", "--value", "co_pct_vol=3.5",
            "--value", "co2_pct_vol=14", "--value", "no_ppm=2000",
        )  # fmt: skip
        assert code == 0, err
        assert "span check PASSED" in out and "check gas CO 3.5 %" in out, out
        assert "measured CO " in out and "measured HC " in out, out

        # no technician: refused by the CLI (usage, 2) and by the daemon over MQTT
        code, _, err = await lanegw("check", "analyser", "leak", "-c", config, "-y")
        assert code == 2 and "--technician is required" in err
        answer = await send_command(mosquitto.port, "check", {"device": "analyser", "kind": "leak"})
        assert not answer["ok"] and "technician required" in answer["error"]

        # five-point, declined at the third cylinder: the two points done stay, and show
        child = pexpect.spawn(
            sys.executable,
            ["-m", "gateway", "check", "analyser", "five_point", "--gases", str(gases),
             "-c", config, "-t", "T042"],
            env={**os.environ, "COLUMNS": "160"}, dimensions=(50, 160), encoding="utf-8",
            timeout=60,
        )  # fmt: skip
        for point in (1, 2):
            await asyncio.to_thread(child.expect, f"Point {point}/5: .* Start\\? \\[y/N\\]")
            child.sendline("y")
        await asyncio.to_thread(child.expect, "Point 3/5: .* Start\\? \\[y/N\\]")
        child.sendline("n")
        code, text = await finish(child)
        assert code == 4, text
        assert "cancelled at point 3/5: points 1-2 are recorded" in text, text
        assert text.count("five_point check PASSED") == 2 and "measured HC" in text, text

    entries = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = [e["kind"] for e in entries]
    assert kinds == ["low_flow", "span", "five_point:1", "five_point:2"], kinds
    assert all(e["technician"] == "T042" for e in entries)
    flow = {m["name"]: m for m in entries[0]["measurements"]}
    assert flow["sample_flow_raw"]["verdict"] == "fail" and flow["sample_flow_raw"]["value"] < 50
    span = {m["name"]: m["value"] for m in entries[1]["measurements"]}
    assert span["check_gas_co_pct_vol"] == 3.5 and "measured_co_pct_vol" in span
