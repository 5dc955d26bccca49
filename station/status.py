"""What ``lanegw station status`` shows: gateways, record counts and open alarms, read
from the database (so it works next to running receivers, on any of their hosts)."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from station.store import RecordStore
from station.store.store import now_text

OPEN_ALARMS_SHOWN = 50


@dataclass(frozen=True, slots=True)
class GatewayLine:
    """One gateway as the station knows it."""

    gateway_id: str
    lane: str | None
    online: bool
    key: str | None  # the first characters of the trusted key
    key_source: str | None
    records: int
    suspect: int
    last_seq: int | None
    last_received: str | None
    last_seen: str


@dataclass(frozen=True, slots=True)
class AlarmLine:
    """One unresolved alarm (its evidence stays in the database)."""

    id: str  # short, for `lanegw station resolve`
    kind: str
    gateway_id: str | None
    lane: str | None
    seq: int | None
    seq_last: int | None
    record_id: str | None
    detail: str
    first_seen: str
    occurrences: int


@dataclass(frozen=True, slots=True)
class StationStatus:
    """Everything ``status`` prints."""

    gateways: list[GatewayLine]
    open_alarms: int
    alarms: list[AlarmLine]  # the newest OPEN_ALARMS_SHOWN

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` output."""
        return asdict(self)


def alarm_id(dedupe: str) -> str:
    """An alarm's short id: the first 8 hex digits of the SHA-256 of its dedupe key."""
    return hashlib.sha256(dedupe.encode()).hexdigest()[:8]


async def resolve_alarm(store: RecordStore, short_id: str, note: str) -> str | None:
    """Mark an open alarm reviewed (it stays, with the note); its kind, or None if no
    open alarm has that id."""
    async with store.db.transaction() as tx:
        rows = await tx.all("SELECT dedupe, kind FROM alarms WHERE resolved_at IS NULL")
        for dedupe, kind in rows:
            if alarm_id(dedupe) == short_id:
                await tx.execute(
                    "UPDATE alarms SET resolved_at = %s, resolution = %s WHERE dedupe = %s",
                    (now_text(), f"reviewed: {note}", dedupe),
                )
                return str(kind)
    return None


async def read_status(store: RecordStore) -> StationStatus:
    """Read the gateways and open alarms."""
    async with store.db.transaction() as tx:
        gateways = await tx.all(
            "SELECT g.gateway_id, g.lane, g.online, g.public_key, g.key_source, g.last_seen,"
            " (SELECT COUNT(*) FROM records r WHERE r.gateway_id = g.gateway_id),"
            " (SELECT COUNT(*) FROM records r WHERE r.gateway_id = g.gateway_id"
            "  AND r.status = 'suspect'),"
            " (SELECT MAX(seq) FROM records r WHERE r.gateway_id = g.gateway_id),"
            " (SELECT MAX(received_at) FROM records r WHERE r.gateway_id = g.gateway_id)"
            " FROM gateways g ORDER BY g.lane, g.gateway_id"
        )
        total = await tx.one("SELECT COUNT(*) FROM alarms WHERE resolved_at IS NULL")
        alarms = await tx.all(
            "SELECT dedupe, kind, gateway_id, lane, seq, seq_last, record_id, detail,"
            " first_seen, occurrences FROM alarms WHERE resolved_at IS NULL"
            " ORDER BY first_seen DESC LIMIT %s",
            (OPEN_ALARMS_SHOWN,),
        )
    lines = [
        GatewayLine(
            gateway_id=g[0],
            lane=g[1],
            online=bool(g[2]),
            key=g[3][:12] if g[3] else None,
            key_source=g[4],
            records=int(g[6]),
            suspect=int(g[7]),
            last_seq=g[8],
            last_received=g[9],
            last_seen=g[5],
        )
        for g in gateways
    ]
    return StationStatus(
        lines, int(total[0]) if total else 0, [AlarmLine(alarm_id(a[0]), *a[1:]) for a in alarms]
    )
