"""What a station's monitoring sees of a gateway: ``/healthz`` and the metrics (station
and lane labels, inspections and items by verdict, locked devices) of a running daemon,
its inspection log events; and the shipped Grafana dashboard and Prometheus alert rules
parse and name only metrics the daemons export."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml

from gateway.metrics import Metrics
from simulators.lane import SimDevice, SimLane
from station.metrics import StationMetrics
from tests.gateway.test_cli_terminal import EXPIRED
from tests.harness import BASE, order, running_lane, scenario_at_speed, send_command
from tests.mosquitto import Mosquitto, free_port

ROOT = Path(__file__).parents[2]
MONITORING = ROOT / "config" / "monitoring"
SCENARIO = ROOT / "simulators" / "scenarios" / "passing-car.yaml"
METRIC = re.compile(r"\blanegw_[a-z_]+\b")
#: what Prometheus itself provides
BUILTIN = {"up"}


def exported_names() -> set[str]:
    """Every series name the gateway's and the receiver's registries can expose."""
    names = {"lanegw_device_locked"}  # the lockout collector, computed at scrape
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count",
                "_created"), "gauge": ("",), "info": ("_info",)}  # fmt: skip
    for registry in (Metrics().registry, StationMetrics().registry):
        for family in registry.collect():
            names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
    return names


def test_alert_rules_parse_and_name_exported_metrics() -> None:
    rules = yaml.safe_load((MONITORING / "prometheus-alerts.yaml").read_text())
    exported = exported_names()
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert len(alerts) >= 10
    for rule in alerts:
        assert {"alert", "expr", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]
        used = set(METRIC.findall(rule["expr"])) | ({"up"} & set(re.findall(r"\w+", rule["expr"])))
        assert used and used <= exported | BUILTIN, (rule["alert"], used - exported)


def test_dashboard_parses_and_names_exported_metrics() -> None:
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    exported = exported_names()
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    assert len(dashboard["panels"]) >= 10 and len({p["id"] for p in dashboard["panels"]}) == len(
        dashboard["panels"]
    )
    for expr in exprs:
        used = set(METRIC.findall(expr))
        assert used and used <= exported, (expr, used - exported)


def lane_config(lane: SimLane) -> Any:
    buses = [
        {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 0.5},
        {"id": "com2", "url": lane.running["weigher"].url},
    ]
    devices = [
        {"id": "speedometer", "class": "speedometer_tester", "protocol": "tlch10",
         "bus": "com1", "poll_period_s": 0.2},
        {"id": "weigher", "class": "axle_weigher", "protocol": "xk3190", "bus": "com2",
         "poll_period_s": 0.5, "options": {"mode": "command"}, "identity": EXPIRED},
    ]  # fmt: skip
    return buses, devices


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    await writer.drain()
    response = (await reader.read()).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    return int(head.split()[1]), body


async def inspect_and_abort(port: int, body: dict[str, Any]) -> dict[str, Any]:
    """Send the order and abort it as soon as its item reports its start (subscribed
    first: progress is not retained)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{BASE}/progress", qos=1)
        assert (await send_command(port, "inspect", body))["ok"]
        async with asyncio.timeout(30):
            async for message in client.messages:
                event = json.loads(message.payload)  # type: ignore[arg-type]
                ours = event["inspection_id"] == body["inspection_id"]
                if ours and event["step"] == "item_started":
                    break
    return await send_command(port, "abort", {"inspection_id": body["inspection_id"]})


@pytest.mark.mqtt
async def test_health_metrics_and_log_events_of_a_running_gateway(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    sims = SimLane(
        scenario_at_speed(SCENARIO, 0.5),
        [SimDevice("speedometer", "tlch10"), SimDevice("weigher", "xk3190", {"mode": "command"})],
    )
    port = free_port()
    extra = {"metrics": {"enabled": True, "address": "127.0.0.1", "port": port}}
    async with running_lane(tmp_path, mosquitto.port, sims, lane_config, extra) as (daemon, st):
        code, body = await http_get(port, "/healthz")
        health = json.loads(body)
        assert code == 200 and health["ok"] and health["lane"] == "L1", body
        assert health["locked_devices"] == ["weigher"] and "mqtt_connected" in health

        passed = {**order(1, ["S1"]), "curb_mass_kg": 1300}
        assert (await send_command(mosquitto.port, "inspect", passed))["ok"]
        await st.wait_for(lambda: any(r["kind"] == "summary" for r in st.unique_results()))
        # the second vehicle never reaches 40 km/h (a slow ramp): aborted while it runs
        meter = sims.running["speedometer"].sim
        meter.run = dataclasses.replace(meter.run, ramp_kmh_per_s=0.1)
        aborted = {**order(2, ["S1"]), "curb_mass_kg": 1300}
        answer = await inspect_and_abort(mosquitto.port, aborted)
        assert answer["ok"], answer
        await st.wait_for(lambda: sum(r["kind"] == "summary" for r in st.unique_results()) == 2)
        code, text = await http_get(port, "/metrics")
        assert code == 200
    assert 'lanegw_gateway_info{gateway_id="lanegw-4401001-L1",lane="L1",station="4401001"' in text
    assert 'lanegw_inspections_total{verdict="pass"} 1.0' in text
    assert 'lanegw_inspections_total{verdict="aborted"} 1.0' in text
    assert 'lanegw_items_total{item="S1",verdict="aborted"} 1.0' in text
    assert 'lanegw_device_locked{device="weigher"} 1.0' in text
    assert 'lanegw_device_locked{device="speedometer"} 0.0' in text

    started = daemon.log_events("inspection_started")
    assert [e["inspection_id"] for e in started] == [
        passed["inspection_id"],
        aborted["inspection_id"],
    ]
    assert started[0]["plate"] == "粤A12345" and started[0]["lane"] == "L1"
    (finished,) = daemon.log_events("inspection_finished")
    assert finished["inspection_id"] == passed["inspection_id"] and finished["verdict"] == "pass"
    (stopped,) = daemon.log_events("inspection_aborted")
    assert stopped["inspection_id"] == aborted["inspection_id"] and stopped["by_command"]
    produced = daemon.log_events("record_produced")
    assert {e["inspection_id"] for e in produced} == {
        passed["inspection_id"],
        aborted["inspection_id"],
    }
