"""What ``lanegw station inspections`` lists: the latest inspections the station stored,
to pick one for ``export`` (or to see that a lane's records arrive)."""

from __future__ import annotations

from dataclasses import dataclass

from station.store import RecordStore


@dataclass(frozen=True, slots=True)
class InspectionLine:
    """One inspection as stored so far."""

    inspection_id: str
    lane: str
    items: int  # item records, every attempt
    verdict: str | None  # of its latest summary; None until the summary arrives
    suspect: int  # records that break their gateway's chain
    first_received: str
    last_received: str


async def recent_inspections(
    store: RecordStore, limit: int, lane: str | None = None
) -> list[InspectionLine]:
    """The ``limit`` inspections with the latest records, newest first."""
    async with store.db.transaction() as tx:
        rows = await tx.all(
            "SELECT r.inspection_id, MIN(r.lane),"
            " SUM(CASE WHEN r.kind = 'item' THEN 1 ELSE 0 END),"
            " (SELECT s.verdict FROM records s WHERE s.inspection_id = r.inspection_id"
            "  AND s.kind = 'summary' ORDER BY s.attempt DESC, s.seq DESC LIMIT 1),"
            " SUM(CASE WHEN r.status = 'suspect' THEN 1 ELSE 0 END),"
            " MIN(r.received_at), MAX(r.received_at)"
            " FROM records r WHERE r.inspection_id IS NOT NULL"
            " AND r.lane = COALESCE(%s, r.lane)"  # every lane when no lane is given
            " GROUP BY r.inspection_id ORDER BY MAX(r.received_at) DESC LIMIT %s",
            (lane, limit),
        )
    return [
        InspectionLine(row[0], row[1], int(row[2]), row[3], int(row[4]), row[5], row[6])
        for row in rows
    ]
