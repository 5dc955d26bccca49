"""One chosen record as an export entry: regulator fields from the layout, the rest kept.

Three shapes share one block of our own keys (``_ours``): a PSB item (``jyxm``, ``jycs``,
``kssj``, ``jssj``, mapped fields), the summary (18C82 fields), and an emission or
unlisted item (method or item code, values under our names). Regulator keys are the
layout's pinyin field names; every other key is ours and documented in
``station.export``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from gateway.records import ResultRecord, Scalar
from station.export.errors import ExportError
from station.export.layout import ItemLayout, Layout, RecordFieldMap, ValueFieldMap
from station.export.select import Chosen


def local_time(moment: datetime, zone: ZoneInfo, fmt: str) -> str:
    """A UTC time as the regulator writes it: local wall clock, whole seconds (truncated)."""
    return moment.astimezone(zone).strftime(fmt)


def convert(mapping: ValueFieldMap, value: Scalar, record_id: str) -> int | float | None:
    """A measured value in the field's unit and decimals (half up, as the fields carry them)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExportError(f"record {record_id}: {mapping.field} needs a number, got {value!r}")
    scaled = Decimal(repr(float(value))) * Decimal(repr(mapping.factor))
    if mapping.decimals is None:
        return float(scaled)
    rounded = scaled.quantize(Decimal(1).scaleb(-mapping.decimals), rounding=ROUND_HALF_UP)
    return int(rounded) if mapping.decimals == 0 else float(rounded)


def _values(record: ResultRecord) -> dict[str, Scalar]:
    values: dict[str, Scalar] = {}
    for m in record.measurements:
        if m.name in values:  # a second value would silently replace the first
            raise ExportError(f"record {record.record_id}: measurement {m.name} given twice")
        values[m.name] = m.value
    return values


def _curves(record: ResultRecord) -> dict[str, str]:
    """Upload strings by evidence kind (the brake curve, ready in the regulator's format)."""
    return {e.kind: e.upload_string for e in record.evidence if e.upload_string is not None}


def _record_value(
    record: ResultRecord, spec: RecordFieldMap, layout: Layout, zone: ZoneInfo
) -> Any:
    value = getattr(record, spec.record)
    if isinstance(value, datetime):
        return local_time(value, zone, layout.local_time_format)
    return value


def _ours(chosen: Chosen, mapped: set[str]) -> dict[str, Any]:
    """Our keys: verdict, values without a regulator field, provenance."""
    record = chosen.record
    values = _values(record)
    unmapped: dict[str, Any] = {k: v for k, v in values.items() if k not in mapped}
    unmapped |= {k: v for k, v in _curves(record).items() if k not in mapped}
    units = {m.name: m.unit for m in record.measurements if m.name in unmapped and m.unit}
    return {
        "verdict": record.verdict.value,
        "reason": record.reason,
        "unmapped": unmapped,
        "units": units,
        "devices": [d.id for d in record.devices],
        "record_id": record.record_id,
        "earlier_record_ids": list(chosen.earlier_record_ids),
        "flags": [f.model_dump(mode="json") for f in record.flags],
    }


def _verdict_codes(record: ResultRecord, layout: Layout) -> dict[str, Any]:
    codes = layout.verdict_codes.codes
    return {
        "verdict_code": codes[record.verdict.value],
        "verdict_codes": {
            m.name: codes[m.verdict.value] for m in record.measurements if m.verdict is not None
        },
    }


def _mapped(chosen: Chosen, item: ItemLayout) -> dict[str, Any]:
    record = chosen.record
    values, curves = _values(record), _curves(record)
    out: dict[str, Any] = {}
    for spec in item.fields:
        if spec.measurement is not None:
            out[spec.field] = convert(spec, values.get(spec.measurement), record.record_id)
        else:
            out[spec.field] = curves.get(str(spec.evidence))
    return out


def _names(item: ItemLayout) -> set[str]:
    return {str(f.measurement or f.evidence) for f in item.fields}


def psb_item(chosen: Chosen, item: ItemLayout, layout: Layout, zone: ZoneInfo) -> dict[str, Any]:
    """A PSB item (B1..B5, B0, H1..H4, S1): identity, mapped fields, verdict codes, the rest."""
    record = chosen.record
    entry = {spec.field: _record_value(record, spec, layout, zone) for spec in layout.item}
    entry |= _mapped(chosen, item)
    entry |= _verdict_codes(record, layout)
    return entry | _ours(chosen, _names(item))


def summary(chosen: Chosen, layout: Layout, zone: ZoneInfo) -> dict[str, Any]:
    """The whole-vehicle entry (18C82 fields) from the chosen summary record."""
    record, fmt = chosen.record, layout.local_time_format
    entry: dict[str, Any] = {
        "attempt": record.attempt,
        "started": local_time(record.started_at, zone, fmt),
        "finished": local_time(record.finished_at, zone, fmt),
    }
    entry |= _mapped(chosen, layout.summary)
    entry |= _verdict_codes(record, layout)
    return entry | _ours(chosen, _names(layout.summary))


def unlisted(chosen: Chosen, key: str, layout: Layout, zone: ZoneInfo) -> dict[str, Any]:
    """An emission method (``key`` "method") or an item code the layout does not know."""
    record, fmt = chosen.record, layout.local_time_format
    entry: dict[str, Any] = {
        key: record.item_code,
        "attempt": record.attempt,
        "lane": record.lane,
        "started": local_time(record.started_at, zone, fmt),
        "finished": local_time(record.finished_at, zone, fmt),
        "value_verdicts": {
            m.name: m.verdict.value for m in record.measurements if m.verdict is not None
        },
    }
    return entry | _ours(chosen, set())
