"""A call's field values from its data table and a step's inputs: pure, no I/O.

``render`` walks the call's fields in table order, looks each value up where its ``from``
says (the item's record, the vehicle, the station config, a live sample, an earlier
answer), and writes it as the field's format says: numbers half-up to the declared
decimals and clamped to the declared width (as NH-GA does; each clamp is noted),
verdicts and codes through the code tables, times in the station's local time. Text
longer than its field is an error, never cut. A value the inputs cannot give yet (the
vehicle's identity, an answer still to come) raises ``Pending``; a value that can never
be written raises ``RenderError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from gateway.errors import GatewayError
from gateway.records import ResultRecord
from station.upload.tables import FieldSpec, Tables


class RenderError(GatewayError):
    """A step that cannot be written from its data (a missing mandatory value, text too
    long for its field, a value of the wrong kind): refused before sending."""


class Pending(GatewayError):
    """A step whose inputs are not all there yet (vehicle identity, an earlier answer)."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """What one step's fields are filled from."""

    now: datetime
    zone: ZoneInfo
    config: Mapping[str, str | None] = field(default_factory=dict)
    record: ResultRecord | None = None
    vehicle: Mapping[str, Any] | None = None
    sample: Mapping[str, Any] | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    check: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """The field values in table order, and notes on values changed to fit (clamps)."""

    values: list[tuple[str, str]]
    notes: list[str]


def _measurement(record: ResultRecord, name: str) -> Any:
    for m in record.measurements:
        if m.name == name:
            return m
    return None


def _need_record(inputs: Inputs, expr: str) -> ResultRecord:
    if inputs.record is None:
        raise RenderError(f"{expr}: this step has no record")
    return inputs.record


def _lookup(spec: FieldSpec, inputs: Inputs) -> Any:
    expr = spec.source_expr
    if expr == "none":
        return None
    if expr == "now":
        return inputs.now
    if expr.startswith("const:"):
        return expr.removeprefix("const:")
    if expr == "verdict":
        return _need_record(inputs, expr).verdict.value
    head, _, name = expr.partition(".")
    if head in ("record", "measurement", "verdict", "limit", "evidence", "summary"):
        return _from_record(_need_record(inputs, expr), head, name, expr)
    if head == "vehicle":
        if inputs.vehicle is None:
            raise Pending("the vehicle's identity (plate, VIN) is not known yet")
        return inputs.vehicle.get(name)
    if head == "config":
        return inputs.config.get(name)
    if head == "sample":
        if inputs.sample is None:
            raise RenderError(f"{expr}: this step has no live sample")
        if "/" in name:  # several values as one code key: ``sample.mode/phase``
            parts = (inputs.sample.get(part) for part in name.split("/"))
            return "/".join("" if part is None else str(part) for part in parts)
        return inputs.sample.get(name)
    if head == "context":
        if name not in inputs.context:
            raise Pending(f"{name} is not known yet (an earlier call answers it)")
        return inputs.context[name]
    if inputs.check is None:
        raise RenderError(f"{expr}: this step is not a daily check")
    return inputs.check.get(name)


def _from_record(record: ResultRecord, head: str, name: str, expr: str) -> Any:
    if head == "record":
        return getattr(record, name)
    if head == "evidence":
        for evidence in record.evidence:
            if evidence.kind == name:
                return evidence.upload_string
        return None
    if head == "limit":
        value_name, _, bound = name.rpartition(".")
        m = _measurement(record, value_name)
        return None if m is None or m.limit is None else getattr(m.limit, bound)
    m = _measurement(record, name)
    if head == "verdict":
        return None if m is None or m.verdict is None else m.verdict.value
    return None if m is None else m.value  # measurement / summary


def _number(spec: FieldSpec, value: Any, notes: list[str]) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise RenderError(f"{spec.field}: needs a number, got {value!r}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise RenderError(f"{spec.field}: needs a number, got {value!r}") from None
    if spec.factor != 1.0:
        number *= Decimal(repr(spec.factor))
    if spec.decimals is None:  # process data: as measured, never rounded
        return format(number, "f")
    quantum = Decimal(1).scaleb(-spec.decimals)
    number = number.quantize(quantum, rounding=ROUND_HALF_UP)
    if spec.width is not None:
        top = Decimal(10) ** (spec.width - spec.decimals) - quantum
        clamped = max(-top, min(top, number))
        if clamped != number:
            notes.append(f"{spec.field}: {number} clamped to {clamped} (width {spec.width})")
            number = clamped
    return f"{number:.{spec.decimals}f}"


def _text(spec: FieldSpec, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    if spec.width is not None and len(text) > spec.width:
        raise RenderError(
            f"{spec.field}: {len(text)} characters do not fit its {spec.width} (never cut)"
        )
    return text


def _code(spec: FieldSpec, table_name: str, value: Any, tables: Tables) -> str:
    key = str(value).lower() if isinstance(value, bool) else str(value)
    table = tables.codes[table_name]
    if key in table:
        return table[key]
    for bound, code in table.items():  # ranges: the first "<=N" the value is within
        if bound.startswith("<=") and _within(value, bound.removeprefix("<=")):
            return code
    raise RenderError(f"{spec.field}: {key!r} is not in code table {table_name}")


def _within(value: Any, bound: str) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return False
    try:
        return Decimal(str(value)) <= Decimal(bound)
    except InvalidOperation:
        return False


def _write(spec: FieldSpec, value: Any, inputs: Inputs, tables: Tables, notes: list[str]) -> str:
    if spec.format == "verdict":
        return tables.codes["verdict"]["not_judged" if value is None else str(value)]
    if value is None or value == "":
        if spec.required:
            raise RenderError(f"{spec.field} is mandatory and has no value ({spec.source_expr})")
        return ""
    table = spec.code_table
    if table is not None:
        return _code(spec, table, value, tables)
    if spec.format == "time":
        if not isinstance(value, datetime):
            raise RenderError(f"{spec.field}: needs a time, got {value!r}")
        return value.astimezone(inputs.zone).strftime(tables.service.time_format)
    if spec.format == "number":
        return _number(spec, value, notes)
    return _text(spec, value)


def render(fields: tuple[FieldSpec, ...], inputs: Inputs, tables: Tables) -> Rendered:
    """Every field's value as text, in table order (see the module doc)."""
    values: list[tuple[str, str]] = []
    notes: list[str] = []
    parking_axle = None
    if inputs.record is not None:
        m = _measurement(inputs.record, "parking_axle")
        parking_axle = None if m is None else m.value
    for spec in fields:
        value = _lookup(spec, inputs)
        if spec.when_axle is not None and parking_axle != spec.when_axle:
            value = None
        values.append((spec.field, _write(spec, value, inputs, tables, notes)))
    return Rendered(values, notes)


def ext_values(record: ResultRecord | None, slots: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A check record's measured values in numbered slots (``extn01``, ``extn02``, ...), in
    the record's order: true/false as 1/0, numbers and text as recorded. More values than
    slots: ``RenderError`` (never cut)."""
    if record is None:
        return []
    prefix, width, most = str(slots["prefix"]), int(slots["width"]), int(slots["max"])
    if len(record.measurements) > most:
        raise RenderError(f"{len(record.measurements)} values do not fit {most} {prefix} slots")
    values = []
    for n, m in enumerate(record.measurements, start=1):
        value = m.value
        text = "" if value is None else ("1" if value else "0") if isinstance(value, bool) else (
            str(value))  # fmt: skip
        values.append((f"{prefix}{n:0{width}d}", text))
    return values


def vehicle_view(
    vehicle: Mapping[str, Any] | None, codes: Mapping[str, Mapping[str, str]]
) -> dict[str, Any] | None:
    """A vehicle as the fields read it: ``hpzl`` is the registered plate type, or, when
    no registration gave one, the category's usual plate type (code table ``hpzl``)."""
    if vehicle is None:
        return None
    plate_type = vehicle.get("plate_type")
    guess = codes.get("hpzl", {}).get(str(vehicle.get("category")))
    return {**vehicle, "hpzl": plate_type or guess}
