"""A snapshot of the whole gateway, for the ``status`` command and tools."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from gateway import __version__
from gateway.records import Availability

if TYPE_CHECKING:
    from gateway.app import Gateway


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceState(_Model):
    """One device as its supervisor sees it."""

    id: str
    device_class: str
    availability: Availability
    last_value_age_s: float | None
    consecutive_failures: int
    last_error: str | None
    held_for: str | None = None  # what holds the device now (an item, a check, a calibration)


class BusState(_Model):
    """One bus."""

    id: str
    open: bool
    last_error: str | None


class OutboxState(_Model):
    """The outbox."""

    depth: int
    bytes: int
    max_bytes: int
    oldest_age_s: float
    last_seq: int
    alarm: bool


class RunningInspection(_Model):
    """The inspection running now: which vehicle, which item, which step."""

    inspection_id: str
    plate: str
    items: list[str]
    items_done: int
    item_code: str | None
    step: str | None
    message: str | None


class GatewayStatus(_Model):
    """Everything a technician or the station needs to see at a glance."""

    station: str
    lane: str
    version: str
    session_id: str
    mqtt_connected: bool
    mqtt_reconnects: int
    outbox: OutboxState
    buses: list[BusState]
    devices: list[DeviceState]
    inspection: str | None
    queued_orders: int
    lockouts: dict[str, list[str]] = {}
    running: RunningInspection | None = None


def gateway_status(gateway: Gateway) -> GatewayStatus:
    """Take the snapshot."""
    now = time.monotonic()
    stats = gateway.outbox.stats()
    devices = [
        DeviceState(
            id=s.device_id,
            device_class=s.device.device_class.value,
            availability=s.availability,
            last_value_age_s=None
            if s.last_reading_at is None
            else round(now - s.last_reading_at, 3),
            consecutive_failures=s.failures,
            last_error=s.last_error,
            held_for=s.held_for,
        )
        for s in gateway.supervisors.values()
    ]
    return GatewayStatus(
        station=gateway.config.station,
        lane=gateway.config.lane,
        version=__version__,
        session_id=gateway.session_id,
        mqtt_connected=gateway.link.connected,
        mqtt_reconnects=gateway.link.reconnects,
        outbox=OutboxState(
            depth=stats.depth,
            bytes=stats.bytes,
            max_bytes=gateway.outbox.max_bytes,
            oldest_age_s=round(stats.oldest_age_s, 3),
            last_seq=stats.last_seq,
            alarm=stats.alarm,
        ),
        buses=[
            BusState(id=b.name, open=b.is_open, last_error=b.last_error)
            for b in gateway.buses.values()
        ],
        devices=devices,
        inspection=gateway.runner.current_inspection,
        queued_orders=gateway.runner.queued,
        lockouts=gateway.lockouts(),
        running=_running(gateway),
    )


def _running(gateway: Gateway) -> RunningInspection | None:
    runner = gateway.runner
    order = runner.current_order
    if order is None:
        return None
    return RunningInspection(
        inspection_id=order.inspection_id,
        plate=order.plate,
        items=list(order.items),
        items_done=runner.items_done,
        item_code=runner.current_item,
        step=runner.current_step[0] if runner.current_step else None,
        message=runner.current_step[1] if runner.current_step else None,
    )
