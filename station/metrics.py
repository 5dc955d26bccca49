"""The receiver's Prometheus metrics (served like the gateway's, on ``/metrics``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from station.checks import AlarmKind


class StationMetrics:
    """All metrics of one receiver."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.records = Counter(
            "lanegw_station_records",
            "Records received, by outcome: stored, suspect, duplicate, rejected",
            ["lane", "outcome"],
            registry=registry,
        )
        self.alarms = Counter(
            "lanegw_station_alarms", "Alarms raised (each occurrence)", ["kind"], registry=registry
        )
        self.open_alarms = Gauge(
            "lanegw_station_open_alarms",
            "Unresolved alarms in the database",
            ["kind"],
            registry=registry,
        )
        self.acks = Counter(
            "lanegw_station_acks", "Ack messages sent to gateways", ["lane"], registry=registry
        )
        self.bad_messages = Counter(
            "lanegw_station_bad_messages",
            "Messages that are not what their topic carries",
            ["topic"],
            registry=registry,
        )
        self.store_errors = Counter(
            "lanegw_station_store_errors", "Batches the database refused", registry=registry
        )
        self.batch_seconds = Histogram(
            "lanegw_station_batch_seconds",
            "Time to judge and commit a batch",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=registry,
        )
        self.held_peak = Gauge(
            "lanegw_station_held_peak",
            "The most records received from the broker and not yet stored at once, "
            "this connection (bounded by mqtt.max_held)",
            registry=registry,
        )
        self.mqtt_connected = Gauge(
            "lanegw_station_mqtt_connected", "1 while connected to the broker", registry=registry
        )
        for kind in AlarmKind:  # every kind shows, at 0, before the first alarm
            self.alarms.labels(kind.value)
            self.open_alarms.labels(kind.value)

    def render(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
