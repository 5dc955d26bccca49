"""Calibration on a brake lane (simulated JXGT2 and XK3190 axle plate, the daemon as a
subprocess, a real mosquitto): the JXGT2's force channel calibrated live as the
``--help`` example says; no calibration while an inspection runs; the brake records
carry the calibrated loads and forces their ``calibration_ref`` names; ``lanegw
monitor`` shows the forces during the brake test (not frozen) and ends cleanly on
Ctrl-C."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from tests.harness import BASE, run_cli
from tests.inspection.test_brake_items import brake_lane, inspect, values, vehicle_order
from tests.mosquitto import Mosquitto

SIGNED = ("--technician", "T042", "--certificate", "GZJL-2026-2", "--yes", "--json")


async def lanegw(*args: str) -> tuple[int, str, str]:
    return await run_cli(*args, unwrap=(False, True))


async def calibrate_when_started(port: int, inspection_id: str) -> dict[str, Any]:
    """As soon as the inspection reports its start, ask for a calibration preview."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{BASE}/progress", qos=1)
        await client.subscribe(f"{BASE}/response/calibrate", qos=1)
        asked = False
        async with asyncio.timeout(30):
            async for message in client.messages:
                body = json.loads(message.payload)  # type: ignore[arg-type]
                if message.topic.matches(f"{BASE}/response/calibrate"):
                    return body  # type: ignore[no-any-return]
                if not asked and body.get("inspection_id") == inspection_id:
                    asked = True
                    args = {
                        "device": "weigher",
                        "channel": "weight_kg",
                        "references": [0],
                        "readings": [2.0],
                    }
                    await client.publish(
                        f"{BASE}/cmd/calibrate",
                        json.dumps({"args": args, "response_topic": f"{BASE}/response/calibrate"}),
                        qos=1,
                    )
    raise AssertionError("no answer")


@pytest.mark.mqtt
async def test_brake_lane_calibration_guards_records_and_monitor(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = str(tmp_path / "lane.yaml")
    port = mosquitto.port
    async with brake_lane(tmp_path, port, "brake-passing-car.yaml", True) as (_, station):
        # the --help example: the JXGT2's force channel, read from one test stream with
        # nothing braking (its drag and the unzeroed display: a few daN)
        code, out, err = await lanegw(
            "calibrate", "brake", "force_left_dan", "--reference", "0", "-c", config, *SIGNED
        )
        assert code == 0, err
        force = json.loads(out)
        assert force["applied"] and -20 < force["offset"] < 0
        # the plate: its zero given as a reading (a car is on it), 300 kg off
        code, out, err = await lanegw(
            "calibrate", "weigher", "weight_kg", "--reference", "0", "--reading", "300",
            "-c", config, *SIGNED,
        )  # fmt: skip
        assert code == 0, err
        plate = json.loads(out)

        monitor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "monitor", "brake", "-c", config, "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert monitor.stdout is not None
        first = await monitor.stdout.readline()  # the monitor is connected
        assert json.loads(first)["device"] == "brake"
        body = vehicle_order(1, ["B1", "B2", "B0"], inspection_type="new_registration")
        refused, records = await asyncio.gather(
            calibrate_when_started(port, body["inspection_id"]), inspect(station, port, body)
        )
        monitor.send_signal(signal.SIGINT)  # Ctrl-C: a clean end
        async with asyncio.timeout(20):
            rest, monitor_err = await monitor.communicate()
        assert monitor.returncode == 0 and b"Traceback" not in monitor_err, monitor_err

    assert not refused["ok"]
    assert f"inspection {body['inspection_id']} is running" in refused["error"]
    b1 = records["B1"]
    refs = {d["id"]: d["calibration_ref"] for d in b1["devices"]}
    assert refs == {"weigher": plate["record_id"], "brake": force["record_id"]}
    front = values(b1)
    # 950 kg on the plate, corrected by the zero the record names
    assert front["static_axle_load"] == pytest.approx(950 - 300, abs=40)
    # the left drag (6 daN after the item zeroes the display) corrected by the force zero
    assert front["drag_force_left"] == pytest.approx(6 + force["offset"], abs=2)
    assert front["drag_force_right"] == pytest.approx(5, abs=2)  # not calibrated

    lines = [json.loads(line) for line in (first + rest).splitlines()]
    forces = [line["values"].get("force_left_dan", 0) for line in lines if "values" in line]
    assert max(forces) > 300  # the braking curve reached the monitor, live
