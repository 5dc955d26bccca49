"""A lane for the hostile-input drills: a real daemon with its metrics endpoint, a
simulated speedometer, a station subscriber, and a client that sends raw payloads."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt

from simulators.lane import SimDevice, SimLane
from tests.harness import BASE, Daemon, Station, running_lane, scenario_at_speed
from tests.mosquitto import free_port

ROOT = Path(__file__).parents[2]
SCENARIO = ROOT / "simulators" / "scenarios" / "passing-car.yaml"


@dataclass
class HostileLane:
    daemon: Daemon
    station: Station
    broker_port: int
    metrics_port: int

    async def metrics(self) -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.metrics_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        body = await reader.read()
        writer.close()
        return body.decode()

    async def counter(self, name: str, **labels: str) -> float:
        """One counter's value (0 when it was never incremented)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        pattern = re.escape(f"{name}{{{wanted}}}" if labels else name) + r" ([0-9.e+]+)"
        found = re.search(pattern, await self.metrics())
        return float(found.group(1)) if found else 0.0

    async def wait_counter(self, name: str, value: float, **labels: str) -> None:
        """Until the counter reaches ``value`` (the daemon counts as it goes)."""
        async with asyncio.timeout(20):
            while await self.counter(name, **labels) < value:
                await asyncio.sleep(0.1)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.1)

    def alive(self) -> bool:
        return self.daemon.proc is not None and self.daemon.proc.returncode is None


async def raw_command(port: int, command: str, payload: bytes, timeout: float = 20) -> Any:
    """Publish ``payload`` as-is on ``cmd/{command}``; the answer on the default topic."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.subscribe(f"{BASE}/response/{command}", qos=1)
        await client.publish(f"{BASE}/cmd/{command}", payload, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                async for message in client.messages:
                    return json.loads(message.payload)  # type: ignore[arg-type]
    return None  # no answer within the timeout


def speedometer_lane(lane: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bus = {"id": "com1", "url": lane.running["speedometer"].url, "response_timeout_s": 1.0}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
        "poll_period_s": 0.5,
    }
    return [bus], [device]


@contextlib.asynccontextmanager
async def hostile_lane(
    tmp_path: Path, broker_port: int, mqtt: dict[str, Any] | None = None, **extra: Any
) -> AsyncIterator[HostileLane]:
    metrics_port = free_port()
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    settings = {
        "procedure_time_scale": 0.02,
        "metrics": {"enabled": True, "address": "127.0.0.1", "port": metrics_port},
        **extra,
    }
    async with running_lane(tmp_path, broker_port, sims, speedometer_lane, settings, mqtt) as (
        daemon,
        station,
    ):
        yield HostileLane(daemon, station, broker_port, metrics_port)
