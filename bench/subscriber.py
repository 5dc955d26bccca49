"""The measuring end: MQTT subscribers playing the station's displays and its server.

``TelemetryCollector`` stamps the arrival time of every telemetry message before anything
else and keeps the raw payload; parsing waits until the window is over, so the
collector's own work does not delay the stamps. ``Station`` receives result records
(QoS 1), acknowledges their ids on the lane's ``ack`` topic in batches, and notes when
the first and the last record arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from bench.procs import BASE


@dataclass(frozen=True, slots=True)
class Arrival:
    """One telemetry message: when it arrived and what it said."""

    arrived: float  # wall clock, s
    device: str
    sample_time: float  # wall clock at the device, s
    counter: int


def percentile(values: list[float], q: float) -> float:
    """The ``q`` percentile (0..100) by nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


class TelemetryCollector:
    """Subscribes to every device's telemetry of the lane and stamps arrivals."""

    def __init__(self, port: int, topic: str = f"{BASE}/telemetry/+") -> None:
        self.port = port
        self.topic = topic
        self.raw: list[tuple[float, bytes]] = []
        self.connected = asyncio.Event()
        self.devices_seen: set[str] = set()

    async def run(self) -> None:
        """Receive until cancelled (reconnecting if the broker goes)."""
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.port, identifier=f"bench-collector-{id(self)}"
                ) as client:
                    await client.subscribe(self.topic, qos=0)
                    self.connected.set()
                    raw = self.raw
                    seen = self.devices_seen
                    async for message in client.messages:
                        now = time.time()
                        payload = message.payload
                        if isinstance(payload, bytes):
                            raw.append((now, payload))
                            seen.add(str(message.topic))
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.1)

    async def wait_devices(self, count: int, timeout: float = 30.0) -> None:
        """Wait until ``count`` devices have published."""
        async with asyncio.timeout(timeout):
            while len(self.devices_seen) < count:
                await asyncio.sleep(0.05)

    def arrivals(self, start: float, end: float) -> list[Arrival]:
        """The messages that arrived in [start, end), parsed."""
        out = []
        for arrived, payload in self.raw:
            if start <= arrived < end:
                data = json.loads(payload)
                values = data["values"]
                out.append(
                    Arrival(
                        arrived,
                        data["device"],
                        values["sample_time_us"] / 1e6,
                        int(values["poll_counter"]),
                    )
                )
        return out

    def clear(self) -> None:
        """Forget what arrived so far."""
        self.raw.clear()
        self.devices_seen.clear()


@dataclass
class Station:
    """The station server: receives result records and (optionally) acknowledges them."""

    port: int
    ack: bool = True
    ack_every_s: float = 0.02
    ack_batch: int = 1000
    received: set[str] = field(default_factory=set)
    duplicates: int = 0
    first_at: float | None = None
    last_at: float | None = None
    first_state_at: float | None = None
    first_telemetry_at: float | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: list[str] = field(default_factory=list)

    async def run(self) -> None:
        """Receive (and ack) until cancelled."""
        async with aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier=f"bench-station-{id(self)}",
            max_queued_incoming_messages=0,
            max_inflight_messages=1000,
        ) as client:
            await client.subscribe(f"{BASE}/results", qos=1)
            await client.subscribe(f"{BASE}/state", qos=1)
            await client.subscribe(f"{BASE}/telemetry/+", qos=0)
            self.connected.set()
            async with asyncio.TaskGroup() as group:
                if self.ack:
                    group.create_task(self._acker(client))
                async for message in client.messages:
                    self._take(str(message.topic), message.payload)

    def _take(self, topic: str, payload: Any) -> None:
        now = time.time()
        if topic.endswith("/results"):
            record_id = json.loads(payload)["record_id"]
            if self.first_at is None:
                self.first_at = now
            self.last_at = now
            if record_id in self.received:
                self.duplicates += 1
            else:
                self.received.add(record_id)
            self._pending.append(record_id)
        elif topic.endswith("/state"):
            if self.first_state_at is None and payload and json.loads(payload).get("online"):
                self.first_state_at = now
        elif self.first_telemetry_at is None:
            self.first_telemetry_at = now

    async def _acker(self, client: aiomqtt.Client) -> None:
        while True:
            await asyncio.sleep(self.ack_every_s)
            while self._pending:
                batch, self._pending = (
                    self._pending[: self.ack_batch],
                    self._pending[self.ack_batch :],
                )
                body = json.dumps({"record_ids": batch}).encode()
                await client.publish(f"{BASE}/ack", body, qos=1)


@contextlib.asynccontextmanager
async def running(*parts: TelemetryCollector | Station) -> Any:
    """Run subscribers for the duration of the block (connected when it starts)."""
    tasks = [asyncio.create_task(part.run()) for part in parts]
    try:
        async with asyncio.timeout(15):
            for part in parts:
                await part.connected.wait()
        yield parts
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
