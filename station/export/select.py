"""Which records an export takes: one inspection's item and summary records, and of an
item tested more than once, the latest attempt.

A retest (GB 38900 复检) is a new order with a higher ``attempt`` that repeats some items.
The regulator wants one result per item with its attempt count (``jycs``), so the export
takes, per item code, the record of the highest attempt (ties: the later ``finished_at``,
then the higher ``seq``) and lists the other records' ids, oldest first, so nothing a
station stored is hidden. The summary is chosen the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from pydantic import ValidationError

from gateway.records import ResultRecord
from station.export.errors import ExportError

#: record kinds that belong to a device, not to an inspection
IGNORED_KINDS: Final = frozenset({"calibration", "check"})
SUMMARY: Final = "summary"


@dataclass(frozen=True, slots=True)
class Chosen:
    """The record exported for one item code, and the ids of the ones it supersedes."""

    record: ResultRecord
    earlier_record_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Selection:
    """One inspection's records, ready to render."""

    inspection_id: str
    station: str
    lanes: tuple[str, ...]
    items: tuple[Chosen, ...]  # in the order the chosen records were tested
    summary: Chosen | None
    used: int  # records read (item and summary, duplicates removed)
    ignored: int  # calibration and check records skipped


def _parse(index: int, raw: object) -> ResultRecord:
    """One record dict, validated; columns a store may add (e.g. received_at) are dropped."""
    if not isinstance(raw, Mapping):
        raise ExportError(f"record {index}: expected a JSON object, got {type(raw).__name__}")
    known = {key: value for key, value in raw.items() if key in ResultRecord.model_fields}
    try:
        record = ResultRecord.model_validate(known)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ExportError(
            f"record {index} ({raw.get('record_id', '?')}): {where}: {first['msg']}"
        ) from None
    for moment in (record.started_at, record.finished_at):
        if moment.tzinfo is None:
            raise ExportError(f"record {record.record_id}: time {moment} has no UTC offset")
    return record


def _latest_key(record: ResultRecord) -> tuple[int, datetime, int]:
    return record.attempt, record.finished_at, record.seq


def _choose(records: list[ResultRecord]) -> Chosen:
    ordered = sorted(records, key=_latest_key)
    return Chosen(ordered[-1], tuple(r.record_id for r in ordered[:-1]))


def _one(values: set[str], what: str) -> str:
    if len(values) != 1:
        raise ExportError(f"records of different {what}s: {', '.join(sorted(values))}")
    return values.pop()


def select(raw_records: Sequence[object]) -> Selection:
    """Validate, check they form one inspection, and choose the record per item code."""
    ignored, by_id = 0, {}
    for index, raw in enumerate(raw_records):
        if isinstance(raw, Mapping) and raw.get("kind") in IGNORED_KINDS:
            ignored += 1
            continue
        record = _parse(index, raw)
        by_id[record.record_id] = record  # a record stored twice counts once
    records = list(by_id.values())
    if not records:
        raise ExportError(f"no item or summary records to export ({ignored} ignored)")
    missing = [r.record_id for r in records if r.inspection_id is None]
    if missing:
        raise ExportError(f"records without an inspection id: {', '.join(missing)}")
    inspection_id = _one({str(r.inspection_id) for r in records}, "inspection")
    station = _one({r.station for r in records}, "station")
    groups: dict[str, list[ResultRecord]] = {}
    for record in records:
        code = SUMMARY if record.kind == SUMMARY else record.item_code
        groups.setdefault(code, []).append(record)
    summary = groups.pop(SUMMARY, None)
    items = sorted(
        (_choose(group) for group in groups.values()),
        key=lambda c: (c.record.started_at, c.record.seq),
    )
    return Selection(
        inspection_id=inspection_id,
        station=station,
        lanes=tuple(sorted({r.lane for r in records})),
        items=tuple(items),
        summary=_choose(summary) if summary else None,
        used=len(records),
        ignored=ignored,
    )
