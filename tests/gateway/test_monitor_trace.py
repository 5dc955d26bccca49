"""``lanegw monitor <dyno>`` while ASM holds the dyno (running daemon, simulated XinCheng
dyno and the rest of the emission lane): each second carries the actual speed, the
target and its band and whether the speed is in it; the speed the procedure judged is
the calibrated one. And the view: the speed drawn against the band, IN BAND / OUT OF
BAND."""

from __future__ import annotations

import asyncio
import json
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gateway.cli.monitor import MonitorView
from gateway.cli.trace_chart import ROWS
from tests.gateway.test_calibration import lanegw
from tests.inspection.test_dyno_items import PETROL_ASM, dyno_lane, measurements
from tests.mosquitto import Mosquitto

OFFSET_KMH = -1.0  # a zero that moves every speed the procedure reads


@pytest.mark.mqtt
async def test_monitor_shows_the_asm_speed_against_its_band(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    config = str(tmp_path / "lane.yaml")
    async with dyno_lane(tmp_path, mosquitto.port, "dyno-asm-clean.yaml") as lane:
        code, _, err = await lanegw(
            "calibrate", "dyno", "speed_kmh", "--reference", "0", "--reading",
            str(-OFFSET_KMH), "--yes", "-c", config, "--technician", "T042",
            "--certificate", "GZJL-2026-7",
        )  # fmt: skip
        assert code == 0, err
        monitor = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "monitor", "dyno", "-c", config, "--json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert monitor.stdout is not None
        await monitor.stdout.readline()  # connected
        iid = await lane.inspect(["ASM"], **PETROL_ASM)
        asm = lane.record(iid, "ASM")
        monitor.send_signal(signal.SIGINT)
        async with asyncio.timeout(20):
            rest, errors = await monitor.communicate()
        assert monitor.returncode == 0 and b"Traceback" not in errors, errors
    assert asm["verdict"] == "pass", asm["reason"]
    assert asm["devices"][0]["calibration_ref"]  # the record names the zero in force
    lines: list[dict[str, Any]] = [json.loads(line) for line in rest.splitlines()]
    trace = [v for v in (line.get("values") or {} for line in lines) if "target_kmh" in v]
    assert len(trace) >= 20, lines[-5:]
    assert {"speed_kmh", "target_kmh", "band_low_kmh", "band_high_kmh", "in_band"} <= set(trace[-1])
    held = [t for t in trace if t["target_kmh"] == 25]
    assert all(t["band_low_kmh"] < 25 < t["band_high_kmh"] for t in held)
    assert any(t["in_band"] for t in held) and all(
        t["in_band"] == (t["band_low_kmh"] <= t["speed_kmh"] <= t["band_high_kmh"]) for t in trace
    )
    # the simulated driver holds the rollers at 25 km/h: the procedure read them 1 km/h
    # lower, through the zero in force
    rows = lane.evidence(asm)["rows"]
    speeds = [row[3] for row in rows if row[2] in ("sync", "fast_check")]
    assert statistics.mean(speeds) == pytest.approx(25.0 + OFFSET_KMH, abs=0.3), speeds
    assert measurements(asm)["asm_5025_power_kw"]["value"] > 0


def render(view: MonitorView) -> list[str]:
    console = Console(record=True, width=140)
    console.print(view.render())
    return console.export_text().splitlines()


def test_monitor_draws_the_speed_against_the_band() -> None:
    view = MonitorView("dyno", {"availability": "online", "held_for": "inspection X"})
    for second in range(60):
        speed = 25.0 if second < 50 else 20.0  # the driver drops out of the band
        view.take({"values": {"speed_kmh": speed, "target_kmh": 25.0, "band_low_kmh": 23.0,
                              "band_high_kmh": 27.0, "in_band": second < 50}})  # fmt: skip
    lines = render(view)
    text = "\n".join(lines)
    assert "OUT OF BAND speed 20.0 km/h, target 25.0 (band 23.0–27.0)" in text
    start = next(i for i, line in enumerate(lines) if line.startswith("speed trace, km/h"))
    chart = lines[start + 1 : start + 1 + ROWS]
    assert any("░" in line for line in chart) and any("-" in line for line in chart)
    speed_rows = [i for i, line in enumerate(chart) if line.rstrip().endswith("●")]
    band_rows = [i for i, line in enumerate(chart) if "░" in line]
    assert speed_rows and speed_rows[0] > max(band_rows)  # the last speed under the band
    assert "target speed" in text and "band low" in text  # display names in the table
    view.take({"values": {"speed_kmh": 25.2, "target_kmh": 25.0, "band_low_kmh": 23.0,
                          "band_high_kmh": 27.0}})  # fmt: skip
    assert any(line.startswith("IN BAND speed 25.2") for line in render(view))
    other = MonitorView("dyno", {"availability": "online"})
    other.take({"values": {"speed_kmh": 0.0, "force_n": 0.0}})  # polled: no trace
    assert not any(line.startswith("speed trace") for line in render(other))
