"""What the page shows of one lane, built from that lane's messages.

The gateway's payloads arrive already validated (gateway/records.py models); this module
only decides which inspection they belong to and keeps the latest of everything, within
fixed bounds so that a flood of messages cannot grow the board.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from gateway.records import (
    DeviceStatus,
    GatewayState,
    Measurement,
    Progress,
    ResultRecord,
    Scalar,
    Telemetry,
)
from station.live.curves import Curve

MAX_ITEMS: Final = 32  # an order has at most 20
MAX_DEVICES: Final = 32
MAX_LIVE_POINTS: Final = 600  # brake_live comes at 4 Hz: two and a half minutes
#: the dyno methods' per-second steps whose speed, target and band draw the speed trace
TRACE_STEPS: Final = frozenset({"asm_live", "vmas_live"})
TRACE_KEYS: Final = ("speed_kmh", "target_kmh", "band_low_kmh", "band_high_kmh")
#: progress values that are shown elsewhere (item verdict, reason) or not at all
_NOT_VALUES: Final = frozenset({"verdict", "reason", "flags"})
_ITEM_CODE: Final = re.compile(r"^[A-Za-z0-9]{1,8}$")


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.isoformat()


def masked_vin(vin: str) -> str:
    """Maker code and last six characters: enough for an owner to know the car."""
    if len(vin) <= 9:
        return vin
    return vin[:3] + "*" * (len(vin) - 9) + vin[-6:]


@dataclass
class ItemState:
    """One test item of the inspection on the lane."""

    code: str
    status: str = "pending"  # pending, running, done
    name: str | None = None
    verdict: str | None = None
    reason: str | None = None
    values: dict[str, Scalar] = field(default_factory=dict)  # latest progress values
    measurements: list[Measurement] = field(default_factory=list)  # from the record
    flags: list[str] = field(default_factory=list)
    live: list[tuple[Scalar, Scalar]] = field(default_factory=list)  # brake_live forces
    #: ASM/VMAS seconds: (speed, target, band low, band high), km/h
    trace: list[tuple[float, ...]] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)  # from the record's evidence

    def to_json(self) -> dict[str, Any]:
        """The item without its record curves (they travel separately, see LaneState)."""
        return {
            "code": self.code,
            "status": self.status,
            "name": self.name,
            "verdict": self.verdict,
            "reason": self.reason,
            "values": self.values,
            "measurements": [m.model_dump(mode="json") for m in self.measurements],
            "flags": self.flags,
            "live": self.live,
            "trace": self.trace,
        }


@dataclass
class InspectionState:
    """The lane's current inspection: its vehicle, steps, items and verdict."""

    inspection_id: str
    started: datetime
    attempt: int | None = None
    plate: str | None = None
    vin: str | None = None
    category: str | None = None
    items: dict[str, ItemState] = field(default_factory=dict)
    step: Progress | None = None
    verdict: str | None = None
    summary: list[Measurement] = field(default_factory=list)

    def item(self, code: str) -> ItemState | None:
        """The item of this code, added when new (None past the bound or for a bad code)."""
        if code not in self.items:
            if len(self.items) >= MAX_ITEMS or not _ITEM_CODE.match(code):
                return None
            self.items[code] = ItemState(code)
        return self.items[code]

    def to_json(self, full_vin: bool) -> dict[str, Any]:
        """The inspection as the page renders it."""
        vin = self.vin if full_vin or self.vin is None else masked_vin(self.vin)
        step = self.step
        return {
            "inspection_id": self.inspection_id,
            "attempt": self.attempt,
            "plate": self.plate,
            "vin": vin,
            "category": self.category,
            "started": _iso(self.started),
            "step": None
            if step is None
            else {
                "step": step.step,
                "message": step.message,
                "item_code": step.item_code,
                "values": {k: v for k, v in step.values.items() if k not in _NOT_VALUES},
                "ts": _iso(step.ts),
            },
            "items": [item.to_json() for item in self.items.values()],
            "verdict": self.verdict,
            "summary": [m.model_dump(mode="json") for m in self.summary],
        }


def _trace_point(item: ItemState, values: dict[str, Scalar]) -> None:
    """One second of the speed trace, when the step carries speed, target and band."""
    point = [values.get(key) for key in TRACE_KEYS]
    numbers = [v for v in point if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == len(TRACE_KEYS) and len(item.trace) < MAX_LIVE_POINTS:
        item.trace.append(tuple(float(v) for v in numbers))


def _text(values: dict[str, Scalar], key: str) -> str | None:
    value = values.get(key)
    return value if isinstance(value, str) else None


@dataclass
class LaneState:
    """Everything the page shows of one lane."""

    lane: str
    gateway: GatewayState | None = None
    devices: dict[str, DeviceStatus] = field(default_factory=dict)
    telemetry: dict[str, Telemetry] = field(default_factory=dict)
    inspection: InspectionState | None = None
    curves_version: int = 0

    # --- gateway and devices ------------------------------------------------------------
    def set_device(self, device: str, status: DeviceStatus | None) -> bool:
        """A device's availability (None: its retained status was cleared)."""
        if status is None:
            return self.devices.pop(device, None) is not None
        if device not in self.devices and len(self.devices) >= MAX_DEVICES:
            return False
        self.devices[device] = status
        return True

    def set_telemetry(self, device: str, telemetry: Telemetry) -> bool:
        """A device's live values."""
        if device not in self.telemetry and len(self.telemetry) >= MAX_DEVICES:
            return False
        self.telemetry[device] = telemetry
        return True

    # --- progress -----------------------------------------------------------------------
    def apply_progress(self, event: Progress) -> bool:
        """A step of the running inspection: progress is live, so it is always current."""
        if event.inspection_id is None:
            return False
        inspection = self.inspection
        if event.step == "inspection_started":
            inspection = self._start(event)
        elif inspection is None or inspection.inspection_id != event.inspection_id:
            inspection = self._replace(InspectionState(event.inspection_id, event.ts))
        inspection.step = event
        if event.step == "inspection_finished":
            inspection.verdict = _text(event.values, "verdict")
        elif event.item_code is not None:
            self._item_progress(inspection, event)
        return True

    def _start(self, event: Progress) -> InspectionState:
        """A new inspection; or the current one, when its first record came first."""
        assert event.inspection_id is not None
        values = event.values
        attempt = values.get("attempt")
        attempt = attempt if isinstance(attempt, int) and not isinstance(attempt, bool) else None
        inspection = self.inspection
        if (
            inspection is None
            or inspection.inspection_id != event.inspection_id
            or (None not in (attempt, inspection.attempt) and attempt != inspection.attempt)
        ):
            inspection = self._replace(InspectionState(event.inspection_id, event.ts))
        inspection.attempt = attempt or inspection.attempt
        inspection.plate = _text(values, "plate")
        inspection.vin = _text(values, "vin")
        inspection.category = _text(values, "category")
        ordered = [code.strip() for code in (_text(values, "items") or "").split(",")]
        known = inspection.items
        inspection.items = {}
        for code in ordered:
            inspection.item(code)
        for code, item in known.items():  # items whose records came first
            if code in inspection.items or len(inspection.items) < MAX_ITEMS:
                inspection.items[code] = item
        return inspection

    def _replace(self, inspection: InspectionState) -> InspectionState:
        had_curves = self.inspection is not None and any(
            item.curves for item in self.inspection.items.values()
        )
        self.inspection = inspection
        if had_curves:
            self.curves_version += 1
        return inspection

    def _item_progress(self, inspection: InspectionState, event: Progress) -> None:
        assert event.item_code is not None
        item = inspection.item(event.item_code)
        if item is None:
            return
        values = event.values
        if event.step == "item_result":
            item.status = "done"
            item.verdict = _text(values, "verdict")
            item.reason = _text(values, "reason")
            flags = _text(values, "flags")
            item.flags = flags.split(",") if flags else []
            return
        if item.status == "pending":
            item.status = "running"
        if event.step == "brake_live":
            if len(item.live) < MAX_LIVE_POINTS:
                item.live.append((values.get("force_left_dan"), values.get("force_right_dan")))
            return
        if event.step in TRACE_STEPS:
            _trace_point(item, values)
        for name, value in values.items():
            if name not in _NOT_VALUES and len(item.values) < MAX_ITEMS:
                item.values[name] = value

    # --- records ------------------------------------------------------------------------
    def apply_record(self, record: ResultRecord, curves: list[Curve]) -> bool:
        """An item or summary record; records of an older inspection (replayed after an
        outage) do not replace the current one."""
        if record.kind not in ("item", "summary") or record.inspection_id is None:
            return False
        inspection = self.inspection
        if (
            inspection is None
            or inspection.inspection_id != record.inspection_id
            or (inspection.attempt or 1) < record.attempt
        ):
            if inspection is not None and record.started_at < inspection.started:
                return False  # stale: a replay of an earlier inspection
            inspection = self._replace(
                InspectionState(record.inspection_id, record.started_at, attempt=record.attempt)
            )
        elif record.attempt < (inspection.attempt or 1):
            return False
        inspection.attempt = record.attempt
        if record.kind == "summary":
            inspection.verdict = record.verdict.value
            inspection.summary = list(record.measurements)
            return True
        return self._item_record(inspection, record, curves)

    def _item_record(
        self, inspection: InspectionState, record: ResultRecord, curves: list[Curve]
    ) -> bool:
        item = inspection.item(record.item_code)
        if item is None:
            return False
        item.status = "done"
        item.name = record.item_name
        item.verdict = record.verdict.value
        item.reason = record.reason
        item.measurements = list(record.measurements)
        item.flags = sorted({flag.code for flag in record.flags})
        if curves != item.curves:
            item.curves = curves
            item.live = []  # the record's curve replaces the live sketch
            self.curves_version += 1
        return True

    # --- views --------------------------------------------------------------------------
    def to_json(self, full_vin: bool = False) -> dict[str, Any]:
        """The lane for the page, without record curves (see ``curves_json``)."""
        return {
            "lane": self.lane,
            "gateway": self._gateway_json(),
            "devices": self._devices_json(),
            "inspection": None if self.inspection is None else self.inspection.to_json(full_vin),
            "curves_version": self.curves_version,
        }

    def curves_json(self) -> dict[str, Any]:
        """The record curves of the current inspection, per item (sent only when changed)."""
        inspection = self.inspection
        items = {} if inspection is None else inspection.items
        return {
            "lane": self.lane,
            "version": self.curves_version,
            "inspection_id": None if inspection is None else inspection.inspection_id,
            "items": {
                code: [curve.to_json() for curve in item.curves]
                for code, item in items.items()
                if item.curves
            },
        }

    def _gateway_json(self) -> dict[str, Any] | None:
        state = self.gateway
        if state is None:
            return None
        return {
            "online": state.online,
            "gateway_id": state.gateway_id,
            "version": state.version,
            "started_at": _iso(state.started_at),
            "outbox_alarm": state.outbox_alarm,
            "ts": _iso(state.ts),
        }

    def _devices_json(self) -> list[dict[str, Any]]:
        """The announced inventory, with each device's availability and live values."""
        classes = {d.id: d.device_class for d in self.gateway.devices} if self.gateway else {}
        for device, known in self.devices.items():
            classes.setdefault(device, known.device_class)
        return [self._device_json(device, device_class) for device, device_class in classes.items()]

    def _device_json(self, device: str, device_class: str) -> dict[str, Any]:
        status, telemetry = self.devices.get(device), self.telemetry.get(device)
        return {
            "id": device,
            "device_class": device_class,
            "availability": None if status is None else status.availability.value,
            "since": None if status is None else _iso(status.since),
            "last_error": None if status is None else status.last_error,
            "telemetry": None if telemetry is None else telemetry.values,
        }
