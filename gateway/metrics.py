"""Prometheus metrics of one gateway, and the asyncio HTTP endpoint that serves them.

Each ``Metrics`` owns its registry (tests run several gateways in one process). The
exporter is a few lines on ``asyncio.start_server`` rather than prometheus-client's
threaded server: one event loop, no threads.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from drivers.errors import FrameError, ResponseTimeout

log = structlog.get_logger("lanegw.bus")

#: called on every port state change: (bus, is_open, reason)
PortCallback = Callable[[str, bool, str], None]
#: called with every raw chunk: (device, outgoing, data)
FrameCallback = Callable[[str, bool, bytes], None]


def _ignore_frame(device: str, outgoing: bool, data: bytes) -> None:
    """Default frame callback: keep nothing."""


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """All metrics of one gateway."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        dev = ["device"]
        self.requests = Counter("lanegw_device_requests", "Requests sent", dev, registry=registry)
        self.errors = Counter(
            "lanegw_device_errors", "Failed requests by kind", [*dev, "kind"], registry=registry
        )
        self.timeouts = Counter(
            "lanegw_device_timeouts", "Requests without answer", dev, registry=registry
        )
        self.bad_frames = Counter(
            "lanegw_device_bad_frames", "Malformed or corrupted frames", dev, registry=registry
        )
        self.response_time = Histogram(
            "lanegw_device_response_seconds",
            "Request round trip",
            dev,
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.available = Gauge(
            "lanegw_device_available", "1 when the device answers", dev, registry=registry
        )
        self.bus_busy = Counter(
            "lanegw_bus_busy_seconds",
            "Time the bus was busy (rate = utilisation)",
            ["bus"],
            registry=registry,
        )
        self.bus_open = Gauge(
            "lanegw_bus_open", "1 when the port is open", ["bus"], registry=registry
        )
        self.outbox_depth = Gauge("lanegw_outbox_depth", "Records waiting", registry=registry)
        self.outbox_bytes = Gauge("lanegw_outbox_bytes", "Bytes waiting", registry=registry)
        self.outbox_oldest = Gauge(
            "lanegw_outbox_oldest_age_seconds",
            "Age of the oldest waiting record",
            registry=registry,
        )
        self.outbox_alarm = Gauge("lanegw_outbox_alarm", "1 when near the bound", registry=registry)
        self.produced = Counter("lanegw_records_produced", "Records committed", registry=registry)
        self.delivered = Counter("lanegw_records_delivered", "Records delivered", registry=registry)
        self.plausibility_flags = Counter(
            "lanegw_plausibility_flags",
            "Plausibility flags put on records",
            ["code"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "lanegw_publish_latency_seconds",
            "Publish to PUBACK",
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.mqtt_connected = Gauge("lanegw_mqtt_connected", "1 when connected", registry=registry)
        self.reconnects = Counter("lanegw_mqtt_reconnects", "MQTT reconnects", registry=registry)
        self.bad_messages = Counter(
            "lanegw_bad_messages", "Rejected incoming MQTT messages", ["topic"], registry=registry
        )
        self.task_restarts = Counter(
            "lanegw_task_restarts",
            "Unexpected errors caught by a supervisor",
            ["task"],
            registry=registry,
        )
        # which gateway this is (join on it for station and lane), and what it inspected
        self.info = Gauge(
            "lanegw_gateway_info",
            "Always 1: the gateway's station, lane, id and version as labels",
            ["station", "lane", "gateway_id", "version"],
            registry=registry,
        )
        self.inspections = Counter(
            "lanegw_inspections", "Inspections ended, by verdict", ["verdict"], registry=registry
        )
        self.items = Counter(
            "lanegw_items",
            "Items ended, by item and verdict",
            ["item", "verdict"],
            registry=registry,
        )

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)


class LockoutCollector(Collector):
    """``lanegw_device_locked{device}``: 1 while a device is locked, computed at scrape."""

    def __init__(
        self, devices: Callable[[], list[str]], lockouts: Callable[[], dict[str, list[str]]]
    ) -> None:
        self._devices = devices
        self._lockouts = lockouts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """One sample per configured device."""
        family = GaugeMetricFamily(
            "lanegw_device_locked",
            "1 while the device is locked (lanegw lockouts)",
            labels=["device"],
        )
        locked = self._lockouts()
        for device in self._devices():
            family.add_metric([device], 1.0 if device in locked else 0.0)
        yield family


class BusMetrics:
    """A ``BusObserver`` that feeds ``Metrics`` (one per bus)."""

    def __init__(
        self,
        metrics: Metrics,
        bus: str,
        on_port: PortCallback | None = None,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self._m = metrics
        self._bus = bus
        self._on_port = on_port
        self.frame: FrameCallback = on_frame or _ignore_frame
        # labelled children, looked up once (every request of every device passes here)
        self._busy = metrics.bus_busy.labels(bus)
        self._per_device: dict[str, tuple[Counter, Histogram]] = {}

    def request_done(self, device: str, seconds: float, error: Exception | None) -> None:
        """Count the request, its time and its failure kind."""
        children = self._per_device.get(device)
        if children is None:
            children = (self._m.requests.labels(device), self._m.response_time.labels(device))
            self._per_device[device] = children
        children[0].inc()
        children[1].observe(seconds)
        if isinstance(error, ResponseTimeout):
            self._m.timeouts.labels(device).inc()
        if error is not None:
            self._m.errors.labels(device, type(error).__name__).inc()

    def job_crashed(self, device: str, error: Exception) -> None:
        """A bug surfaced in a bus job: log it with its traceback, count it."""
        self._m.task_restarts.labels(f"bus:{self._bus}").inc()
        log.error(
            "bus_job_crashed", bus=self._bus, device=device, error=repr(error), exc_info=error
        )

    def bad_frame(self, device: str, error: FrameError) -> None:
        """Count a skipped frame."""
        self._m.bad_frames.labels(device).inc()

    def busy(self, seconds: float) -> None:
        """Accumulate busy time."""
        self._busy.inc(seconds)

    def port_state(self, is_open: bool, reason: str) -> None:
        """Track the port state (and tell the gateway, for logs)."""
        self._m.bus_open.labels(self._bus).set(1 if is_open else 0)
        if self._on_port is not None:
            self._on_port(self._bus, is_open, reason)


class Exposition(Protocol):
    """Anything that renders Prometheus text (the gateway's and the receiver's metrics)."""

    def render(self) -> bytes: ...


#: a health check: (healthy, JSON body) for ``GET /healthz``
Health = Callable[[], tuple[bool, dict[str, Any]]]


async def serve_metrics(
    metrics: Exposition, host: str, port: int, health: Health | None = None
) -> None:
    """Serve ``GET /metrics`` and ``GET /healthz`` on ``host:port`` until cancelled.

    ``/healthz`` answers 200 while ``health`` says healthy (or always, without one) and
    503 otherwise, with a small JSON body saying why.
    """

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                request = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            writer.close()
            return
        kind = b"text/plain; version=0.0.4"
        if request.startswith(b"GET /metrics"):
            body, status = metrics.render(), b"200 OK"
        elif request.startswith(b"GET /healthz"):
            healthy, detail = health() if health is not None else (True, {})
            body = json.dumps({"ok": healthy, **detail}).encode() + b"\n"
            status, kind = (
                (b"200 OK" if healthy else b"503 Service Unavailable"),
                b"application/json",
            )
        else:
            body, status = b"see /metrics or /healthz\n", b"404 Not Found"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: " + kind + b"\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, port)
    async with server:
        await server.serve_forever()
