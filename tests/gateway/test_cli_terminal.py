"""The technician CLI in a terminal (pexpect drives a real TTY), against a running daemon:
``monitor`` says why a device gives no values and ends cleanly after ``--seconds``;
``status`` shows a locked device as locked, the running inspection by plate, item and
step, the outbox in human units; the same mistake gives the same exit code everywhere;
a declined prompt says nothing was changed; ``LANEGW_CONFIG`` replaces ``-c``."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any

import pexpect
import pytest
from rich.console import Console

from gateway.cli.status import _status_view
from simulators.lane import SimDevice, SimLane
from tests.harness import Station, order, run_cli, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto, free_port

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
EXPIRED = {"certificate": {"number": "GZJL-2020-1", "expires": "2020-01-31"}}


def lane_config(lane: SimLane) -> Any:
    """A speedometer tester, a weigher whose certificate has expired (online but locked),
    and a headlamp tester on a port where nothing answers (offline)."""
    buses = [
        {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 0.5},
        {"id": "com2", "url": lane.running["weigher"].url},
        {"id": "com3", "url": f"socket://127.0.0.1:{free_port()}", "response_timeout_s": 0.3},
    ]
    devices = [
        {"id": "speedometer", "class": "speedometer_tester", "protocol": "tlch10",
         "bus": "com1", "poll_period_s": 0.2},
        {"id": "weigher", "class": "axle_weigher", "protocol": "xk3190", "bus": "com2",
         "poll_period_s": 0.2, "options": {"mode": "command"}, "identity": EXPIRED},
        {"id": "headlamp", "class": "headlamp_tester", "protocol": "mqd6a", "bus": "com3",
         "poll_period_s": 0.2},
    ]  # fmt: skip
    return buses, devices


def terminal(*args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    """``lanegw ARGS`` in a pseudo-terminal 120 columns wide."""
    return pexpect.spawn(
        sys.executable,
        ["-m", "gateway", *args],
        env={**os.environ, "COLUMNS": "120", **(env or {})},
        dimensions=(50, 120),
        encoding="utf-8",
        timeout=30,
    )


async def finish(child: pexpect.spawn) -> tuple[int, str]:
    """Wait (off the event loop) for the child to end; its exit code and whole output."""
    text = await asyncio.to_thread(child.read)
    await asyncio.to_thread(child.wait)
    child.close()
    assert child.exitstatus is not None, child.signalstatus
    return child.exitstatus, " ".join(ANSI.sub("", text).split())


async def lanegw(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    return await run_cli(*args, env={"COLUMNS": "200", **(env or {})}, unwrap=(True, True))


async def offline(station: Station, device: str) -> None:
    def seen() -> bool:
        statuses = station.messages.get(f"devices/{device}/status", [])
        return any(s["availability"] == "offline" for s in statuses)

    await station.wait_for(seen, timeout=30)


@pytest.mark.mqtt
async def test_monitor_and_status_in_a_terminal(tmp_path: Path, mosquitto: Mosquitto) -> None:
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.3),
        [SimDevice("speedometer", "tlch10"), SimDevice("weigher", "xk3190", {"mode": "command"})],
    )
    config = str(tmp_path / "lane.yaml")
    env = {"LANEGW_CONFIG": config}
    async with running_lane(tmp_path, mosquitto.port, sims, lane_config) as (_, station):
        await offline(station, "headlamp")
        # an offline device: the monitor says why there is nothing, then ends by itself
        child = terminal("monitor", "headlamp", "--seconds", "2", env=env)
        code, text = await finish(child)
        assert code == 0 and "Traceback" not in text, text
        assert "offline: no readings since" in text and "port closed" in text, text

        # a live device: display names and units, one scale per unit, then a clean end
        child = terminal("monitor", "speedometer", "--seconds", "1.5", env=env)
        code, text = await finish(child)
        assert code == 0 and "Traceback" not in text, text
        assert "latched speed" in text and "km/h" in text and "latched_speed_kmh" not in text

        # status: the locked weigher is not green "online"; the headlamp is offline
        code, out, err = await lanegw("status", env=env)
        assert code == 0, err
        assert "│ weigher │ axle_weigher │ LOCKED (online) │" in out, out
        assert "certificate GZJL-2020-1 expired on 2020-01-31" in out, out
        assert "records waiting" in out and "MiB" in out and "bytes" not in out
        # the running inspection: plate, item, step (the snapshot taken over MQTT as the
        # item runs, drawn by the text view of `lanegw status`)
        meter = sims.running["speedometer"].sim  # a slow ramp: still spinning when asked
        meter.run = dataclasses.replace(meter.run, ramp_kmh_per_s=0.1)
        body = {**order(1, ["S1"]), "curb_mass_kg": 1300}
        answer = await send_command(mosquitto.port, "inspect", body)
        assert answer["ok"] and answer["result"]["ahead"] == 0, answer
        await station.wait_for(
            lambda: any(p["step"] == "speedometer_spinning"
                        for p in station.messages.get("progress", [])),
        )  # fmt: skip
        snapshot = await send_command(mosquitto.port, "status", {})
        console = Console(record=True, width=200)
        console.print(_status_view(snapshot["result"]))
        text = " ".join(console.export_text().split())
        assert f"inspection 粤A12345 ({body['inspection_id']}), item S1 (0 of 1 done)" in text
        assert "step speedometer_spinning: accelerate; press the button at 40 km/h" in text
        assert "│ speedometer │ speedometer_tester │ in use (online) │" in text, text
        assert f"inspection {body['inspection_id']}, item S1" in text

        # the same mistake, the same exit code: an unknown device is a usage error (2)
        for args in (("monitor", "nope"), ("check", "nope", "leak"), ("calibrate", "nope", "x")):
            code, _, err = await lanegw(*args, env=env)
            assert code == 2 and "no device 'nope'" in err, (args, code, err)

        # a declined prompt says so and exits 4: nothing was changed
        child = terminal(
            "calibrate", "weigher", "weight_kg", "--reference", "0",
            "--technician", "T042", "--certificate", "GZJL-2026-2", env=env,
        )  # fmt: skip
        await asyncio.to_thread(child.expect, "ready\\? \\[y/N\\]")
        child.sendline("n")
        code, text = await finish(child)
        assert code == 4 and "cancelled: nothing was changed" in text, text
    assert not (tmp_path / "state" / "maintenance" / "calibration").exists()
