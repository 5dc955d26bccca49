"""Every line the daemon writes is JSON in ``--log-format json``, including what the
libraries below it log through stdlib logging (asyncio's "Exception in callback" with an
``OSError: [Errno 9]`` traceback during a disconnect, paho, warnings) and an uncaught
exception: a traceback never breaks the journal's JSON lines."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from simulators.lane import SimDevice, SimLane
from tests.harness import Station, running_lane, scenario_at_speed
from tests.mosquitto import Mosquitto

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line parsed; fails on the first one that is not a JSON object."""
    parsed = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            item = json.loads(line)
        except ValueError:
            raise AssertionError(f"line {number} is not JSON: {line!r}") from None
        assert isinstance(item, dict), line
        parsed.append(item)
    return parsed


def test_library_logs_and_tracebacks_are_json_lines() -> None:
    """The daemon's logging set-up, fed what asyncio, paho and Python itself write."""
    program = textwrap.dedent(
        """
        import logging, threading, warnings
        from gateway.logs import configure_logging
        configure_logging("json")
        try:
            raise OSError(9, "Bad file descriptor")
        except OSError:
            logging.getLogger("asyncio").error("Exception in callback cb()", exc_info=True)
        logging.getLogger("paho.mqtt.client").warning("failed to receive on socket")
        warnings.warn("deprecated", DeprecationWarning, stacklevel=1)
        worker = threading.Thread(target=lambda: 1 / 0, name="outbox_0")
        worker.start()
        worker.join()
        password = "hunter2"
        raise RuntimeError("the end")
        """
    )
    result = subprocess.run(
        [sys.executable, "-W", "always", "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    lines = json_lines(result.stdout + result.stderr)
    by_logger = {line.get("logger"): line for line in lines}
    callback = by_logger["asyncio"]
    assert callback["level"] == "error" and callback["event"] == "Exception in callback cb()"
    assert callback["exception"][0]["exc_value"] == "[Errno 9] Bad file descriptor"
    assert by_logger["paho.mqtt.client"]["level"] == "warning"
    assert "deprecated" in by_logger["py.warnings"]["event"]
    events = {line["event"]: line for line in lines}
    thread = events["uncaught_exception_in_thread outbox_0"]
    assert thread["exception"][0]["exc_type"] == "ZeroDivisionError"
    assert events["uncaught_exception"]["exception"][0]["exc_value"] == "the end"
    assert "hunter2" not in result.stdout + result.stderr  # no locals in tracebacks


def speedometer(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 1.0}
    device = {"id": "speedometer", "class": "speedometer_tester", "protocol": "tlch10",
              "bus": "com1", "options": {"poll_interval_s": 0.02}}  # fmt: skip
    return [bus], [device]


def births(station: Station) -> set[str]:
    """Birth messages by their time (the broker is SIGKILLed: none is kept retained)."""
    return {m["ts"] for m in station.messages.get("state", []) if m["online"]}


def kill_and_restart(broker: Mosquitto) -> None:
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGKILL)
    broker.proc.wait(10)
    broker.proc = None
    broker.start()


def live(station: Station) -> int:
    """Telemetry messages seen: sent only by a daemon whose session is fully set up."""
    return len(station.messages.get("telemetry/speedometer", []))


@pytest.mark.mqtt
async def test_the_daemon_log_stays_json_through_broker_kills(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The broker SIGKILLed under the daemon twice (sockets die mid-session and during
    its set-up), then back: the daemon's whole log (stdout and stderr) is JSON lines."""
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    async with running_lane(tmp_path, mosquitto.port, sims, speedometer) as (daemon, station):
        # once in the middle of a session, once right as the daemon announces itself (its
        # session set-up cut: where paho's socket went away under asyncio, "Errno 9")
        for settled in (True, False):
            seen, born = live(station), births(station)
            if settled:
                await station.wait_for(lambda: live(station) > seen, timeout=40)  # noqa: B023
            else:
                await station.wait_for(lambda: births(station) - born, timeout=40)  # noqa: B023
            kill_and_restart(mosquitto)
        seen = live(station)
        await station.wait_for(lambda: live(station) > seen, timeout=40)
    lines = json_lines(daemon.log.read_text())
    assert any(line["event"] == "gateway_stopped" for line in lines)
    assert sum(line["event"] == "mqtt_connected" for line in lines) >= 2, [
        line["event"] for line in lines
    ]
