"""The technician CLI against a running daemon (status, monitor) and a bare port (probe)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from gateway.portlock import locked
from gateway.status import GatewayStatus
from simulators.lane import SimDevice, SimLane
from tests.harness import run_cli, running_lane, scenario_at_speed, serving
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


async def lanegw(*args: str, timeout: float = 60) -> tuple[int, str, str]:
    return await run_cli(*args, timeout=timeout)


def speedometer_lane(lane: SimLane) -> Any:
    bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 0.5}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
        "poll_period_s": 0.2,
    }
    return [bus], [device]


async def test_status_and_monitor_talk_to_the_running_daemon(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sims = SimLane(scenario_at_speed(SCENARIO, 0.05), [SimDevice("speedometer", "tlch10")])
    config = str(tmp_path / "lane.yaml")
    async with running_lane(tmp_path, mosquitto.port, sims, speedometer_lane):
        code, out, err = await lanegw("status", "-c", config, "--json")
        assert code == 0, err
        status = GatewayStatus.model_validate_json(out)  # the JSON matches its schema
        assert status.mqtt_connected and [d.id for d in status.devices] == ["speedometer"]
        code, out, _ = await lanegw("status", "-c", config)
        assert code == 0 and "station 4401001 lane L1" in out and "speedometer" in out

        code, out, err = await lanegw(
            "monitor", "speedometer", "-c", config, "--json", "--seconds", "1.5"
        )
        readings = [json.loads(line) for line in out.splitlines()]
        readings = [r for r in readings if "values" in r]
        assert code == 0 and len(readings) >= 3, err
        assert {"speed_kmh", "latched_speed_kmh"} <= set(readings[-1]["values"])
        code, _, err = await lanegw("monitor", "nope", "-c", config, "--seconds", "2")
        assert code == 2 and "no device 'nope'" in err


async def test_status_without_daemon_says_so(tmp_path: Path) -> None:
    config = tmp_path / "lane.yaml"
    example = (Path(__file__).parents[2] / "config" / "lane.example.yaml").read_text()
    config.write_text(example.replace("/var/lib/lanegw", str(tmp_path / "state")))
    code, _, err = await lanegw("status", "-c", str(config))
    assert code == 1 and "no lanegw daemon is running" in err and "Traceback" not in err


async def test_probe_finds_the_protocol_and_respects_the_port_lock(tmp_path: Path) -> None:
    sims = SimLane(scenario_at_speed(SCENARIO, 0.05), [SimDevice("analyser", "nha503")])
    async with serving(sims):
        url = sims.running["analyser"].url
        code, out, err = await lanegw(
            "probe",
            url,
            "--json",
            "--protocol",
            "nha503",
            "--protocol",
            "flb100",
            "--protocol",
            "jxgt2",
        )
        attempts = [json.loads(line) for line in out.splitlines()]
        assert code == 0, err
        assert [a["protocol"] for a in attempts if a["answered"]] == ["nha503"]
        assert all(not a["answered"] for a in attempts if a["protocol"] != "nha503")
        with locked(url, "test technician"):
            code, _, err = await lanegw("probe", url, "--protocol", "nha503")
            assert code == 1 and "in use by test technician" in err


def test_monitor_draws_a_brake_testers_left_and_right_curves() -> None:
    """The monitor's view of a brake tester: a chart with both curves; the right wheel
    that locked up (falls to 260) ends lower than the left one (400)."""
    from rich.console import Console

    from gateway.cli.monitor import CHART_ROWS, MonitorView

    view = MonitorView("brake", {"availability": "online"})
    for i in range(100):
        rise = min(1.0, max(0.0, (i - 20) / 40))
        right = 380 * rise if i < 80 else 260
        view.take({"values": {"force_left_dan": 400 * rise, "force_right_dan": right}})
    console = Console(record=True, width=140)
    console.print(view.render())
    lines = console.export_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("brake force, daN (max 400)"))
    chart = lines[start + 1 : start + 1 + CHART_ROWS]
    assert chart[0].rstrip().endswith("L") and "R" not in chart[0]  # left on top at the end
    assert any(line.rstrip().endswith("R") for line in chart[1:])  # right below, locked
    # the names are display names with units, and both forces share one scale
    text = "\n".join(lines)
    assert "left brake force" in text and "force_left_dan" not in text
    assert text.count("190…400") == 2  # one scale for the unit daN, not one per sparkline
    weigher = MonitorView("weigher", {"availability": "online"})
    weigher.take({"values": {"weight_kg": 950}})  # other devices: no chart
    console = Console(record=True, width=140)
    console.print(weigher.render())
    assert "brake force, daN" not in console.export_text()


async def test_probe_stops_at_the_first_answer_and_names_a_missing_port(tmp_path: Path) -> None:
    """On a serial line (a PTY) the probe stops as soon as a protocol answers, and its
    JSON carries the reading as an object; a port that does not exist is said so at once."""
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.05), [SimDevice("analyser", "nha503")], transport="pty"
    )
    async with serving(sims):
        url = sims.running["analyser"].url
        code, out, err = await lanegw(
            "probe", url, "--json", "--protocol", "flb100", "--protocol", "nha503",
            "--baud", "9600", "--baud", "2400",
        )  # fmt: skip
        assert code == 0, err
        attempts = [json.loads(line) for line in out.splitlines()]
        assert [(a["protocol"], a["answered"]) for a in attempts] == [
            ("flb100", False),
            ("flb100", False),
            ("nha503", True),  # and no nha503 at 2400: it had answered
        ]
        assert isinstance(attempts[-1]["reading"], dict) and "co_pct_vol" in attempts[-1]["reading"]
    code, out, err = await lanegw("probe", str(tmp_path / "ttyUSB9"))
    assert code == 2 and "no such port" in err and out == "", (out, err)


def test_simulator_link_dir_is_made_and_misuse_is_said(tmp_path: Path) -> None:
    """``lanegw-sim --transport pty --link-dir DIR`` makes a missing DIR (it gave a
    traceback) and links each device's PTY there; --link-dir without PTYs is refused."""
    import subprocess

    links = tmp_path / "not" / "yet"
    command = [sys.executable, "-m", "simulators", "--device", "speed=tlch10"]
    proc = subprocess.Popen(
        [*command, "--transport", "pty", "--link-dir", str(links)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())  # the device is up
        assert line["device"] == "speed" and (links / "tty-speed").is_symlink()
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert "Traceback" not in err
    refused = subprocess.run(
        [*command, "--link-dir", str(links)], capture_output=True, text=True, timeout=30
    )
    assert refused.returncode == 2 and "add --transport pty" in refused.stderr
