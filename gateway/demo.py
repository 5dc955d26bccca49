"""``lanegw demo``: a whole simulated station on this machine, nothing else needed.

Starts an embedded MQTT broker on loopback, two simulated lanes (one with a vehicle that
passes, one with a vehicle that fails), a gateway per lane, the station receiver (records
verified, stored in SQLite and acknowledged; the live lane page on ``--web-port``) when
the ``station`` extra is installed, and a console view of the traffic. Orders are sent
over MQTT on each lane's ``cmd/inspect`` topic, exactly as a station server sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import aiomqtt
from rich.console import Console

from drivers.registry import driver_specs
from gateway.app import Gateway
from gateway.broker import embedded_broker, free_port
from gateway.config import LaneConfig
from gateway.inspection.procedures import PROCEDURES
from simulators.lane import DEFAULT_LANE, SimDevice, SimLane
from simulators.scenario import Scenario, load_scenario

STATION = "4401001"
LANES = (("L1", "passing-car"), ("L2", "failing-car"))
#: the demo station sends each lane a new vehicle this often, seconds
ORDER_INTERVAL_S = 60.0
#: items of a full inspection, in lane order (those this build can run are used)
DEMO_ITEMS = ("B1", "B2", "B0", "H1", "H4", "S1", "TSI")
#: simulator options: the analyser's simulated driver follows the two-speed-idle prompts
SIM_OPTIONS: dict[str, dict[str, object]] = {"nha503": {"driver_script": {}}}


def demo_scenario(name: str, time_scale: float) -> Scenario:
    """A packaged scenario, sped up by ``time_scale``."""
    path = resources.files("simulators.scenarios").joinpath(f"{name}.yaml")
    with resources.as_file(path) as file:
        scenario = load_scenario(file)
    timing = scenario.timing.model_copy(update={"time_scale": time_scale})
    return scenario.model_copy(update={"timing": timing})


def lane_config(
    lane: str,
    sims: SimLane,
    mqtt_port: int,
    state_dir: Path,
    time_scale: float,
    server_ack: bool = False,
) -> LaneConfig:
    """The config a station engineer would write for this simulated lane."""
    buses, devices = [], []
    for running in sims.running.values():
        buses.append(
            {"id": f"bus-{running.device_id}", "url": running.url, "response_timeout_s": 1.0}
        )
        spec = driver_specs()[running.protocol]
        devices.append(
            {
                "id": running.device_id,
                "class": spec.device_class.value,
                "protocol": running.protocol,
                "bus": f"bus-{running.device_id}",
                "poll_period_s": 1.0,
                "identity": {"vendor": "simulated"},
            }
        )
    return LaneConfig.model_validate(
        {
            "station": STATION,
            "lane": lane,
            "state_dir": str(state_dir / lane),
            "mqtt": {
                "host": "127.0.0.1",
                "port": mqtt_port,
                "protocol": "3.1.1",
                # with the receiver running, records leave the outbox once it stored them
                "delivery": "server_ack" if server_ack else "puback",
            },
            "metrics": {"enabled": False},
            "buses": buses,
            "devices": devices,
            # the simulated lane runs faster than real time; so do the procedures
            "procedure_time_scale": min(1.0, time_scale),
        }
    )


def demo_order(lane: str, number: int, scenario: Scenario, items: list[str]) -> dict[str, Any]:
    """An inspection order for the scenario's vehicle."""
    vehicle = scenario.vehicle
    return {
        "inspection_id": f"440100120261128{lane[-1]}{number % 10}",
        "plate": vehicle.plate,
        "vin": vehicle.vin,
        "category": "passenger_car",
        "axle_count": len(vehicle.axles),
        "curb_mass_kg": 1400,
        "gross_mass_kg": 1850,
        "fuel": "petrol",
        "emission_method": "two_speed_idle",
        "emission_limit_set": "a",
        "items": items,
    }


def lane_items(sims: SimLane) -> list[str]:
    """The items of a full inspection that this simulated lane can run."""
    have = {driver_specs()[r.protocol].device_class for r in sims.running.values()}
    return [
        code
        for code in DEMO_ITEMS
        if code in PROCEDURES and all(c in have for c in PROCEDURES[code].needs)
    ]


async def run_demo(
    console: Console, duration: float | None, time_scale: float, web_port: int = 8080
) -> None:
    """Run the demo until ``duration`` seconds have passed (or until interrupted)."""
    try:
        async with asyncio.timeout(duration):
            await _station(console, time_scale, web_port)
    except TimeoutError:
        console.print(f"[dim]demo: {duration:g} s elapsed, stopped[/]")
    except asyncio.CancelledError:  # Ctrl-C: asyncio.run cancels the demo
        console.print("[dim]demo: interrupted, stopped[/]")
        raise


async def _station(console: Console, time_scale: float, web_port: int) -> None:
    port = free_port()
    protocols = set(driver_specs())
    with tempfile.TemporaryDirectory(prefix="lanegw-demo-") as tmp:
        async with embedded_broker(port), asyncio.TaskGroup() as group:
            group.create_task(_console_view(console, port))
            receiving = await _start_receiver(group, console, port, Path(tmp), web_port)
            lanes = []
            for lane, scenario_name in LANES:
                scenario = demo_scenario(scenario_name, time_scale)
                devices = [SimDevice(d, p, SIM_OPTIONS.get(p, {})) for d, p in DEFAULT_LANE
                           if p in protocols]  # fmt: skip
                sims = SimLane(scenario, devices)
                await sims.start(group)
                config = lane_config(lane, sims, port, Path(tmp), time_scale, receiving)
                gateway = Gateway(config)
                group.create_task(gateway.run())
                lanes.append((lane, scenario, sims))
            group.create_task(_send_orders(port, lanes))


async def _start_receiver(
    group: asyncio.TaskGroup, console: Console, mqtt_port: int, tmp: Path, web_port: int
) -> bool:
    """The station receiver and its live page, if the ``station`` extra is installed."""
    try:
        from station.app import serve
        from station.config import StationConfig
    except ImportError:
        console.print("[dim]no station receiver: pip install 'lane-gateway[station]'[/]")
        return False
    if not _port_free(web_port):
        web_port = free_port()
    config = StationConfig.model_validate(
        {
            "station": STATION,
            # the embedded broker speaks MQTT 3.1.1: one receiver, no shared subscription
            "mqtt": {"port": mqtt_port, "protocol": "3.1.1", "share_group": None},
            "database": {"url": f"sqlite:{tmp / 'station.sqlite3'}"},
            "web": {"port": web_port},
            "metrics": {"enabled": False},
        }
    )
    started = asyncio.Event()
    group.create_task(serve(config, started=started))
    await started.wait()
    console.print(
        f"[bold]live lane page: http://127.0.0.1:{web_port}/[/]  (station receiver: records "
        "verified, stored and acknowledged)"
    )
    return True


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


async def _send_orders(port: int, lanes: list[tuple[str, Scenario, SimLane]]) -> None:
    """Play the station server: once every lane's gateway is up, send each an order,
    and a new one every ``ORDER_INTERVAL_S``."""
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe(f"lanegw/{STATION}/+/state", qos=1)
        online: set[str] = set()
        async for message in client.messages:
            state = json.loads(message.payload)
            if state.get("online"):
                online.add(state["lane"])
            if online >= {lane for lane, _, _ in lanes}:
                break
        number = 0
        while True:
            number += 1
            for lane, scenario, sims in lanes:
                order = demo_order(lane, number, scenario, lane_items(sims))
                topic = f"lanegw/{STATION}/{lane}/cmd/inspect"
                await client.publish(topic, json.dumps({"args": order}), qos=1)
            await asyncio.sleep(ORDER_INTERVAL_S)


async def _console_view(console: Console, port: int) -> None:
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe("lanegw/#", qos=1)
        async for message in client.messages:
            _show(console, str(message.topic), message.payload)


def _show(console: Console, topic: str, payload: Any) -> None:
    with contextlib.suppress(ValueError, TypeError):
        data = json.loads(payload)
        lane = topic.split("/")[2]
        kind = topic.split("/", 3)[3]
        if kind == "results":
            colour = {"pass": "green", "fail": "red"}.get(data["verdict"], "yellow")
            values = ", ".join(
                f"{m['name']}={m['value']}{' ' + m['unit'] if m.get('unit') else ''}"
                for m in data["measurements"][:4]
            )
            console.print(
                f"[bold]{lane}[/] record #{data['seq']} {data['item_code']:>7} "
                f"[{colour}]{data['verdict'].upper()}[/] {values} "
                f"{'(' + data['reason'] + ')' if data.get('reason') else ''}"
            )
        elif kind == "ack":
            stored = len(data["record_ids"])
            console.print(f"[green]{lane} station stored and acknowledged {stored} record(s)[/]")
        elif kind == "progress":
            console.print(f"[dim]{lane} {data['message']}[/]")
        elif kind == "state":
            state = "online" if data["online"] else "offline"
            console.print(f"[cyan]{lane} gateway {state}[/] ({len(data['devices'])} devices)")
        elif kind.startswith("response/"):
            console.print(f"[cyan]{lane} {kind}: ok={data['ok']} {data.get('error') or ''}[/]")
