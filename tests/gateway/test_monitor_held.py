"""While a procedure holds a device (the simulated analyser, a running daemon): ``lanegw
monitor`` says what holds it, another calibration's sampling is refused ("in use"), and
during a two-speed idle the monitor shows the gases the item reads instead of going
blank."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.control import request
from tests.harness import scenario_at_speed, send_command
from tests.inspection.test_emission_items import PETROL, SCALE, SCENARIOS, start_lane
from tests.mosquitto import Mosquitto


async def next_state(stdout: asyncio.StreamReader, held_for: str) -> dict[str, Any]:
    """Monitor lines until a state line says the device is held for ``held_for``."""
    async with asyncio.timeout(30):
        while line := await stdout.readline():
            item = json.loads(line)
            if "state" in item and item["state"].get("held_for") == held_for:
                return item  # type: ignore[no-any-return]
    raise AssertionError(f"the monitor never said {held_for!r}")


@pytest.mark.mqtt
async def test_monitor_and_guards_while_the_analyser_is_held(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    scenario = scenario_at_speed(SCENARIOS / "emission-petrol-a-inside.yaml", SCALE)
    async with start_lane(tmp_path, mosquitto.port, scenario) as lane:
        monitor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "monitor", "analyser", "-c",
            str(tmp_path / "lane.yaml"), "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert monitor.stdout is not None
        await monitor.stdout.readline()  # connected

        # a long sampling (a calibration's, 100 readings) holds the analyser for seconds
        first = {"device": "analyser", "count": 100, "interval_s": 0.05}
        holding = asyncio.create_task(send_command(mosquitto.port, "sample", first))
        state = await next_state(monitor.stdout, "sampling for a calibration")
        assert state["state"]["availability"] == "online"
        # meanwhile another calibration's sampling, through the control socket as the CLI
        # sends it, is refused at once, not queued behind the first
        args = {"device": "analyser", "count": 2, "channel": "co_pct_vol"}
        refused = await request(tmp_path / "state", "sample", args)
        assert not holding.done() and not refused["ok"]
        assert "analyser is in use (sampling for a calibration)" in refused["error"], refused
        assert len((await holding)["result"]["readings"]) == 100

        record = await lane.inspect("emission-petrol-a-inside.yaml", ["TSI"], **PETROL)
        assert record["verdict"] == "pass"
        monitor.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest, err = await monitor.communicate()
        assert monitor.returncode == 0 and b"Traceback" not in err, err
    values = [json.loads(line).get("values") or {} for line in rest.splitlines()]
    high_idle = [v for v in values if v.get("engine_speed_rpm", 0) > 2000]
    # the high-idle seconds reached the monitor while the item held the analyser
    assert len(high_idle) >= 10, [v.get("engine_speed_rpm") for v in values]
    assert all("co_pct_vol" in v and "lambda_" in v for v in high_idle)
