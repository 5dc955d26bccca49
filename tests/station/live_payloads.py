"""Lane messages for the live board's unit tests, built with the gateway's own models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.inspection.curve import format_curve
from gateway.records import (
    Availability,
    DeviceStatus,
    Evidence,
    GatewayState,
    Measurement,
    Progress,
    RecordKind,
    ResultRecord,
    Scalar,
    Verdict,
)
from tests.harness import STATION

ROOT = "lanegw"
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)


def topic(lane: str, sub: str) -> str:
    return f"{ROOT}/{STATION}/{lane}/{sub}"


def state(lane: str = "L1", online: bool = True) -> bytes:
    return (
        GatewayState(online=online, gateway_id=f"gw-{lane}", station=STATION, lane=lane, ts=T0)
        .model_dump_json()
        .encode()
    )


def device_status(device: str, availability: str = "online") -> bytes:
    return (
        DeviceStatus(
            device=device,
            device_class="brake_tester",
            availability=Availability(availability),
            since=T0,
            ts=T0,
        )
        .model_dump_json()
        .encode()
    )


def progress(
    inspection_id: str, step: str, item_code: str | None = None, at: float = 0, **values: Scalar
) -> bytes:
    return (
        Progress(
            inspection_id=inspection_id,
            step=step,
            message=step,
            item_code=item_code,
            values=values,
            ts=T0 + timedelta(seconds=at),
        )
        .model_dump_json()
        .encode()
    )


def started(inspection_id: str, items: str = "B1,H1", at: float = 0, attempt: int = 1) -> bytes:
    return progress(
        inspection_id,
        "inspection_started",
        at=at,
        plate="粤A12345",
        vin="LSVAU2180N2183294",
        category="passenger_car",
        attempt=attempt,
        items=items,
    )


def brake_evidence(left: list[float], right: list[float]) -> Evidence:
    return Evidence(
        kind="brake_curve", sha256="0" * 64, upload_string=format_curve(left, right, 10)
    )


def record(
    inspection_id: str,
    item_code: str,
    verdict: str = "pass",
    at: float = 1,
    lane: str = "L1",
    **fields: Any,
) -> bytes:
    kind: RecordKind = "summary" if item_code == "summary" else "item"
    return (
        ResultRecord(
            record_id=f"rec-{inspection_id}-{item_code}",
            seq=1,
            session_id="s",
            gateway_id=f"gw-{lane}",
            station=STATION,
            lane=lane,
            kind=kind,
            inspection_id=inspection_id,
            item_code=item_code,
            measurements=[Measurement(name="axle_brake_ratio", value=72.5, unit="%")],
            verdict=Verdict(verdict),
            started_at=T0 + timedelta(seconds=at),
            finished_at=T0 + timedelta(seconds=at + 1),
            **fields,
        )
        .model_dump_json()
        .encode()
    )
