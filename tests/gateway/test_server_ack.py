"""Delivery on the station server's acknowledgement, the outbox bound, and metrics."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import aiomqtt

from simulators.lane import SimDevice, SimLane
from tests.harness import BASE, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto, free_port

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"


def depth(outbox: Path) -> int:
    with sqlite3.connect(outbox) as db:
        return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])


async def ack(port: int, record_ids: list[str]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(f"{BASE}/ack", json.dumps({"record_ids": record_ids}), qos=1)


async def metrics_text(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    body = await reader.read()
    writer.close()
    return body.decode()


async def test_records_wait_for_server_ack_and_bound_refuses_orders(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Fault: the station server does not acknowledge. Must hold: records stay in the
    outbox (nothing lost), the bound's alarm refuses a new order with the reason, an ack
    lets them go and orders are accepted again; metrics show the outbox and the device."""
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    metrics_port = free_port()

    def config(lane: SimLane) -> Any:
        bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 0.5}
        device = {
            "id": "speedometer",
            "class": "speedometer_tester",
            "protocol": "tlch10",
            "bus": "com1",
            "poll_period_s": 0.5,
            "options": {"poll_interval_s": 0.02},
        }
        return [bus], [device]

    extra = {
        "mqtt": {
            "host": "127.0.0.1",
            "port": mosquitto.port,
            "delivery": "server_ack",
            "reconnect_min_s": 0.2,
        },
        "outbox": {"max_bytes": 65536, "alarm_fraction": 0.02},
        "metrics": {"enabled": True, "address": "127.0.0.1", "port": metrics_port},
    }
    outbox = tmp_path / "state" / "outbox.sqlite3"
    async with running_lane(tmp_path, mosquitto.port, sims, config, extra) as (daemon, station):
        assert (await send_command(mosquitto.port, "inspect", order(1)))["ok"]
        await station.wait_for(lambda: len(station.unique_results()) >= 2)
        assert depth(outbox) == 2  # delivered, but kept until the server says it stored them
        refused = await send_command(mosquitto.port, "inspect", order(2))
        assert not refused["ok"]
        assert "outbox holds" in refused["error"] and "refused" in refused["error"]

        async with asyncio.timeout(5):  # the outbox gauges are refreshed every second
            while "lanegw_outbox_depth 2.0" not in (text := await metrics_text(metrics_port)):
                await asyncio.sleep(0.2)
        assert 'lanegw_device_requests_total{device="speedometer"}' in text
        assert "lanegw_mqtt_connected 1.0" in text

        await ack(mosquitto.port, [r["record_id"] for r in station.unique_results()])
        async with asyncio.timeout(10):
            while depth(outbox) != 0:
                await asyncio.sleep(0.05)
        accepted = await send_command(mosquitto.port, "inspect", order(3))
        assert accepted["ok"], accepted
        await station.wait_for(lambda: len(station.unique_results()) >= 4)
        assert daemon.proc is not None and daemon.proc.returncode is None


async def test_bad_commands_and_acks_are_answered_and_change_nothing(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """Bad input: unknown command, invalid order, malformed ack. Must hold: clear error
    answers, the daemon keeps running and still accepts a good order."""
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])

    def config(lane: SimLane) -> Any:
        bus = {"id": "com1", "url": lane.running["speedometer"].url}
        device = {
            "id": "speedometer",
            "class": "speedometer_tester",
            "protocol": "tlch10",
            "bus": "com1",
            "options": {"poll_interval_s": 0.02},
        }
        return [bus], [device]

    extra = {"procedure_time_scale": 0.02}
    async with running_lane(tmp_path, mosquitto.port, sims, config, extra) as (daemon, station):
        unknown = await send_command(mosquitto.port, "format-disk", {})
        assert not unknown["ok"] and "unknown command 'format-disk'" in unknown["error"]
        invalid = dict(order(1), vin="short")
        answer = await send_command(mosquitto.port, "inspect", invalid)
        assert not answer["ok"] and "vin" in answer["error"]
        no_device = await send_command(mosquitto.port, "inspect", order(2, items=["H1"]))
        assert not no_device["ok"] and "H1" in no_device["error"]
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(f"{BASE}/ack", b"\xff not json", qos=1)
        good = await send_command(mosquitto.port, "inspect", order(3))
        assert good["ok"], good
        await station.wait_for(lambda: len(station.unique_results()) >= 2)
        assert daemon.log_events("bad_ack")
        assert not station.results or all(
            r["inspection_id"] != order(1)["inspection_id"] for r in station.results
        )
