"""Which calls an inspection's stored records make, in which order: pure, no I/O.

Per PSB item (B1..B5, B0, H1..H4, S1 as configured): 18C55, 18C81, 18C58; per emission
method (TSI, FA, ASM, VMAS, LUG): 18C83 to the PSB, and to the environmental platform the
vehicle's registration (once per inspection, before anything else), the per-second rows
(planned live by the follower, ``sample_steps``) and the result; the OBD check: its
result to the environmental platform only (in test order, so before the method's).
Once every item the summary lists is stored: 18C82, 18C59. A daily-check record: one
device-record upload. Aborted items and aborted summaries make no calls (the lane
tests again, attempt + 1).

Order within a chain (``ord``): an item's calls by its start time, the inspection's end
by the summary's finish, samples by their time; so an inspection goes in test order, and
a record that arrives late still lands at its place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final
from uuid import NAMESPACE_URL, uuid5

from gateway.records import ResultRecord
from station.upload.store import Step

PSB, ENV = "psb", "env"
EMISSION_ITEMS: Final = ("TSI", "FA", "ASM", "VMAS", "LUG")
REG_CALL: Final = "downInspRegInfo"
SAMPLE_CALL: Final = "uploadInspProcess"
RESULT_CALL: Final = "uploadInspResult"
#: items with an environmental result but no method of their own (no 18C83, no rows)
ENV_RESULT_ONLY: Final = {"OBD": "uploadInspResultOBD"}
#: methods whose rows count the seconds of a fixed cycle, not from their first sample:
#: VMAS sends exactly the 195 cycle seconds (regulator.md §2.2)
CYCLE_CLOCK: Final = {"VMAS": ("cycle_s", 195)}
CHECK_CALL: Final = "uploadInspStmDeviceRecord"
CLOCK_CALLS: Final = {PSB: "18C50", ENV: "downInspSynctime"}


@dataclass(frozen=True, slots=True)
class Platforms:
    """What is uploaded where (from the station config)."""

    psb: bool = True
    env: bool = True
    psb_items: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B0", "H1", "H2", "H3", "H4")
    emission_results: bool = True


@dataclass(frozen=True, slots=True)
class Plan:
    """Steps to queue, records done with, records to look at again later (and why)."""

    steps: list[Step] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    waiting: dict[str, str] = field(default_factory=dict)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _record_step(record: ResultRecord, platform: str, ord_: int, call: str, what: str) -> Step:
    """A step of one record of an inspection (its key names inspection, attempt, item)."""
    iid = str(record.inspection_id)
    return Step(
        f"{platform}/{iid}/{record.attempt}/{what}/{call}", platform, f"{platform}/{iid}",
        ord_, call, {"record_id": record.record_id}, inspection_id=iid, lane=record.lane,
        item_code=record.item_code, attempt=record.attempt,
    )  # fmt: skip


def _item_steps(record: ResultRecord, platforms: Platforms) -> list[Step]:
    code = record.item_code
    steps: list[Step] = []
    start = _ms(record.started_at) * 10
    if platforms.psb and code in platforms.psb_items:
        for n, jkid in enumerate(("18C55", "18C81", "18C58"), start=1):
            steps.append(_record_step(record, PSB, start + n, jkid, code))
    if code in EMISSION_ITEMS and platforms.psb and platforms.emission_results:
        steps.append(_record_step(record, PSB, start + 2, "18C83", code))
    if (code in EMISSION_ITEMS or code in ENV_RESULT_ONLY) and platforms.env:
        steps.append(registration_step(str(record.inspection_id), record.lane))
        end = _ms(record.finished_at) * 10 + 5
        call = ENV_RESULT_ONLY.get(code, RESULT_CALL)
        steps.append(_record_step(record, ENV, end, call, code))
    return steps


def registration_step(inspection_id: str, lane: str) -> Step:
    """The vehicle's registration at the environmental platform: first in its chain."""
    return Step(
        f"env/{inspection_id}/reg", ENV, f"env/{inspection_id}", 0, REG_CALL,
        {"inspection_id": inspection_id}, inspection_id=inspection_id, lane=lane,
    )  # fmt: skip


def _summary_steps(summary: ResultRecord, platforms: Platforms) -> list[Step]:
    if not platforms.psb:
        return []
    end = _ms(summary.finished_at) * 10
    return [_record_step(summary, PSB, end + n, jkid, "summary")
            for n, jkid in ((7, "18C82"), (8, "18C59"))]  # fmt: skip


def _listed_items(summary: ResultRecord) -> list[str]:
    return [m.name.removesuffix("_verdict") for m in summary.measurements
            if m.name.endswith("_verdict")]  # fmt: skip


def plan_inspection(
    records: Sequence[Mapping[str, Any]], unplanned: set[str], platforms: Platforms
) -> Plan:
    """The steps of an inspection's records not yet planned (``unplanned`` ids)."""
    parsed = [ResultRecord.model_validate(r) for r in records]
    plan = Plan()
    have = {(r.item_code, r.attempt) for r in parsed if r.kind == "item"}
    for record in parsed:
        if record.record_id not in unplanned:
            continue
        if record.kind == "summary":
            missing = [c for c in _listed_items(record) if (c, record.attempt) not in have]
            if missing:
                plan.waiting[record.record_id] = f"items {', '.join(missing)} not stored yet"
                continue
            if record.verdict.value != "aborted":
                plan.steps.extend(_summary_steps(record, platforms))
        elif record.kind == "item" and record.verdict.value != "aborted":
            plan.steps.extend(_item_steps(record, platforms))
        plan.planned.append(record.record_id)
    return plan


def plan_device_record(record: Mapping[str, Any], platforms: Platforms) -> Plan:
    """A record without an inspection: a daily check is uploaded (a chain of its own: a
    refused check must not hold back the next one); others are not."""
    parsed = ResultRecord.model_validate(record)
    plan = Plan(planned=[parsed.record_id])
    if parsed.kind != "check" or not platforms.env or not parsed.devices:
        return plan
    device, kind = parsed.devices[0].id, parsed.item_code.removeprefix("check:")
    inputs = {
        "record_id": parsed.record_id, "device": device, "kind": kind,
        "verdict": parsed.verdict.value, "finished_at": parsed.finished_at.isoformat(),
    }  # fmt: skip
    plan.steps.append(
        Step(f"env/check/{parsed.record_id}", ENV, f"env/check/{parsed.record_id}",
             _ms(parsed.finished_at), CHECK_CALL, inputs, lane=parsed.lane,
             item_code=parsed.item_code)
    )  # fmt: skip
    return plan


def sample_id(inspection_id: str, item: str, attempt: int, serial: int) -> str:
    """The per-second row's id: the same for a resend (the platform can drop the copy)."""
    return str(uuid5(NAMESPACE_URL, f"lanegw:{inspection_id}:{item}:{attempt}:{serial}"))


def _half_up(value: float) -> int:
    return math.floor(value + 0.5)


def sample_serial(item: str, values: Mapping[str, Any], origin_t_s: float | None) -> int | None:
    """The second (``serialno``, from 1) a live sample is the row of, or None when it is
    no row (a VMAS sample outside the cycle's 195 s). A method's seconds count from its
    first live sample (``origin_t_s``, that sample's ``t_s``): the first row is 1, the
    next ones its ``t_s`` minus the origin, rounded half up, plus 1; faster samples (the
    lug-down's 4 Hz) fall into the same second and the first of them is its row (a step
    is queued once). VMAS counts the cycle's seconds (``cycle_s``)."""
    if item in CYCLE_CLOCK:
        key, last = CYCLE_CLOCK[item]
        second = _half_up(float(values.get(key) or 0))
        return second if 1 <= second <= last else None
    t_s = float(values.get("t_s") or 0)
    origin = t_s if origin_t_s is None else origin_t_s
    return max(1, _half_up(t_s - origin) + 1)


def sample_steps(
    inspection_id: str,
    lane: str,
    item: str,
    attempt: int,
    ts: datetime,
    values: Mapping[str, Any],
    origin_t_s: float | None = None,
) -> list[Step]:
    """A live sample of an emission item: its per-second row (after the registration);
    none when the sample is no row (``sample_serial``)."""
    serial = sample_serial(item, values, origin_t_s)
    if serial is None:
        return []
    origin = float(values.get("t_s") or 0) if origin_t_s is None else origin_t_s
    inputs = {
        "sample": dict(values), "serial": serial, "ts": ts.isoformat(), "item": item,
        "id": sample_id(inspection_id, item, attempt, serial), "origin_t_s": origin,
    }  # fmt: skip
    step = Step(
        f"env/{inspection_id}/{attempt}/{item}/s{serial:05d}", ENV, f"env/{inspection_id}",
        _ms(ts) * 10 + 1, SAMPLE_CALL, inputs, inspection_id=inspection_id, lane=lane,
        item_code=item, attempt=attempt,
    )  # fmt: skip
    return [registration_step(inspection_id, lane), step]


def clock_step(platform: str, now: datetime) -> Step:
    """A time sync with a platform."""
    call = CLOCK_CALLS[platform]
    stamp = now.strftime("%Y%m%dT%H%M%S")
    return Step(f"{platform}/clock/{stamp}", platform, f"{platform}/clock", _ms(now), call, {})
