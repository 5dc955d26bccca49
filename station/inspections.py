"""What ``lanegw station inspections`` lists: the latest inspections the station stored,
to pick one for ``export`` (or to see that a lane's records arrive)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from station.store import RecordStore


@dataclass(frozen=True, slots=True)
class InspectionLine:
    """One inspection as stored so far."""

    inspection_id: str
    lane: str
    plate: str | None  # from its records (gateways before 0.2 sent none)
    items: int  # item records, every attempt
    verdict: str | None  # of its latest summary; None until the summary arrives
    suspect: int  # records that break their gateway's chain
    first_received: str
    last_received: str


async def recent_inspections(
    store: RecordStore, limit: int, lane: str | None = None, plate: str | None = None
) -> list[InspectionLine]:
    """The ``limit`` inspections with the latest records, newest first (of one lane, of
    one plate, when given)."""
    # the plate is in each record's payload (compact JSON, as the gateway signed it)
    pattern = None if plate is None else f'%"plate":{json.dumps(plate, ensure_ascii=False)}%'
    async with store.db.transaction() as tx:
        rows = await tx.all(
            "SELECT r.inspection_id, MIN(r.lane),"
            " SUM(CASE WHEN r.kind = 'item' THEN 1 ELSE 0 END),"
            " (SELECT s.verdict FROM records s WHERE s.inspection_id = r.inspection_id"
            "  AND s.kind = 'summary' ORDER BY s.attempt DESC, s.seq DESC LIMIT 1),"
            " SUM(CASE WHEN r.status = 'suspect' THEN 1 ELSE 0 END),"
            " MIN(r.received_at), MAX(r.received_at), MAX(r.payload)"
            " FROM records r WHERE r.inspection_id IS NOT NULL"
            " AND r.lane = COALESCE(%s, r.lane)"  # every lane when no lane is given
            " AND (CAST(%s AS TEXT) IS NULL OR r.payload LIKE %s)"
            " GROUP BY r.inspection_id ORDER BY MAX(r.received_at) DESC LIMIT %s",
            (lane, pattern, pattern, limit),
        )
    return [
        InspectionLine(
            row[0], row[1], _plate(row[7]), int(row[2]), row[3], int(row[4]), row[5], row[6]
        )
        for row in rows
    ]


def _plate(payload: str | None) -> str | None:
    try:
        value = json.loads(payload or "{}").get("plate")
    except ValueError:
        return None
    return value if isinstance(value, str) else None
