"""The uploads in the station database: one row per step, its attempts kept as evidence.

Same SQL for SQLite and PostgreSQL, as ``station.store`` writes it (``%s`` placeholders,
``ON CONFLICT``, ``RETURNING``), on the store's own connection; these tables are this
module's and are created by ``setup``. A step's id is derived from its key (the same step
planned by two receivers is one row). A row moves::

    queued -> sending -> accepted (keystr)            -- never sent again
                      -> refused (code, message)      -- alarmed; --retry queues it again
                      -> retrying (error, next_try_at) -> sending ...
    queued -> held (its inputs are not all there yet) -> queued ...
    queued -> invalid (cannot be written from its data) -- alarmed, like a refusal

A chain (one inspection on one platform, one device's checks, one platform's clock) is
sent in ``ord`` order: a row goes only when every row before it in its chain is accepted.
``sending`` holds a lease: a row whose sender died is taken again when the lease ends
(its attempt stays marked ``in_doubt``: the platform may have it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from station.store import RecordStore
from station.store.db import Row, Tx
from station.store.store import now_text
from station.upload.schema import TABLES
from station.upload.wire import Exchange, Outcome

SETUP_LOCK: Final = 0x75706C64  # PostgreSQL advisory lock: one uploader creates the tables
OPEN: Final = ("queued", "retrying", "held")
STATUSES: Final = ("queued", "sending", "accepted", "refused", "retrying", "held", "invalid")

#: what the window's registration adds to a vehicle (station/flow/registration.py)
REGISTRATION_FIELDS: Final = ("plate", "vin", "plate_type", "engine_no", "fuel")

_COLUMNS: Final = (
    "upload_id, step_key, platform, chain, ord, call, inspection_id, lane, item_code,"
    " attempt, inputs, status, tries, next_try_at, keystr, code, message, request, response,"
    " created_at, updated_at, accepted_at"
)


def upload_id(step_key: str) -> str:
    """A step's short id: 12 hex digits of the SHA-256 of its key."""
    return hashlib.sha256(step_key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Step:
    """One call to make, as planned."""

    step_key: str
    platform: str
    chain: str
    ord: int
    call: str
    inputs: dict[str, Any]
    inspection_id: str | None = None
    lane: str | None = None
    item_code: str | None = None
    attempt: int | None = None

    @property
    def upload_id(self) -> str:
        """The row's id."""
        return upload_id(self.step_key)


@dataclass(frozen=True, slots=True)
class Upload:
    """One row of ``uploads``."""

    upload_id: str
    step_key: str
    platform: str
    chain: str
    ord: int
    call: str
    inspection_id: str | None
    lane: str | None
    item_code: str | None
    attempt: int | None
    inputs: dict[str, Any]
    status: str
    tries: int
    next_try_at: str
    keystr: str | None
    code: str | None
    message: str | None
    request: str | None
    response: str | None
    created_at: str
    updated_at: str
    accepted_at: str | None
    attempts: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_row(cls, row: Row) -> Upload:
        values = list(row)
        values[10] = json.loads(values[10])
        return cls(*values)

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


class UploadStore:
    """The upload tables, on the record store's connection (reconnected with it)."""

    def __init__(self, records: RecordStore, sender: str) -> None:
        self.records = records
        self.sender = sender

    async def setup(self, starting: bool = True) -> None:
        """Create the tables (idempotent); ``starting``: an uploader, which notes when
        uploading was first enabled (records stored before are not uploaded)."""
        db = self.records.db
        async with db.transaction() as tx:
            if db.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            for statement in TABLES:
                await tx.execute(statement)
            if starting:
                await tx.execute(
                    "INSERT INTO meta (name, value) VALUES ('upload_since', %s)"
                    " ON CONFLICT (name) DO NOTHING",
                    (now_text(),),
                )

    # planning --------------------------------------------------------------------------
    async def since(self) -> str:
        """Records received before uploading was first enabled are not uploaded."""
        async with self.records.db.transaction() as tx:
            row = await tx.one("SELECT value FROM meta WHERE name = 'upload_since'")
        return str(row[0]) if row else ""

    async def unplanned(self, since: str, limit: int = 500) -> list[tuple[str, str | None, str]]:
        """(record_id, inspection_id, kind) of stored records not yet turned into steps."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                "SELECT r.record_id, r.inspection_id, r.kind FROM records r"
                " WHERE r.received_at >= %s AND r.status = 'ok' AND NOT EXISTS"
                " (SELECT 1 FROM upload_planned p WHERE p.record_id = r.record_id)"
                " ORDER BY r.received_at LIMIT %s",
                (since, limit),
            )
        return [(r[0], r[1], r[2]) for r in rows]

    async def records_of(self, inspection_id: str) -> list[dict[str, Any]]:
        """The stored (ok) records of an inspection, as received."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                "SELECT payload FROM records WHERE inspection_id = %s AND status = 'ok'"
                " ORDER BY gateway_id, seq",
                (inspection_id,),
            )
        return [json.loads(r[0]) for r in rows]

    async def record(self, record_id: str) -> dict[str, Any] | None:
        """One stored record."""
        async with self.records.db.transaction() as tx:
            row = await tx.one("SELECT payload FROM records WHERE record_id = %s", (record_id,))
        return None if row is None else dict(json.loads(row[0]))

    async def add(self, steps: Sequence[Step], planned: Sequence[str] = ()) -> int:
        """Queue steps (a step already there is left as it is) and mark records planned,
        in one transaction; how many rows are new."""
        now = now_text()
        added = 0
        async with self.records.db.transaction() as tx:
            for step in steps:
                row = await tx.one(
                    "INSERT INTO uploads (upload_id, step_key, platform, chain, ord, call,"
                    " inspection_id, lane, item_code, attempt, inputs, status, next_try_at,"
                    " created_at, updated_at) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'queued', %s, %s, %s)"
                    " ON CONFLICT (step_key) DO NOTHING RETURNING upload_id",
                    (step.upload_id, step.step_key, step.platform, step.chain, step.ord,
                     step.call, step.inspection_id, step.lane, step.item_code, step.attempt,
                     json.dumps(step.inputs, ensure_ascii=False), now, now, now),
                )  # fmt: skip
                added += row is not None
            for record_id in planned:
                await tx.execute(
                    "INSERT INTO upload_planned (record_id, planned_at) VALUES (%s, %s)"
                    " ON CONFLICT (record_id) DO NOTHING",
                    (record_id, now),
                )
        return added

    # vehicles and context ----------------------------------------------------------------
    async def save_vehicle(self, inspection_id: str, lane: str, values: dict[str, Any]) -> None:
        """The vehicle of an inspection, from its start message (the latest attempt wins)."""
        async with self.records.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO upload_vehicles (inspection_id, lane, plate, vin, category, attempt,"
                " items, seen_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (inspection_id) DO UPDATE SET lane = excluded.lane,"
                " plate = excluded.plate, vin = excluded.vin, category = excluded.category,"
                " attempt = excluded.attempt, items = excluded.items, seen_at = excluded.seen_at",
                (inspection_id, lane, values.get("plate"), values.get("vin"),
                 values.get("category"), values.get("attempt"), values.get("items"), now_text()),
            )  # fmt: skip

    async def vehicle(self, inspection_id: str) -> dict[str, Any] | None:
        """The vehicle of an inspection: plate, vin, category, attempt, items from its start
        message, and, when the station's window (``station.flow``) registered it, the
        registration's plate, VIN, plate type, engine number and fuel, which win."""
        async with self.records.db.transaction() as tx:
            row = await tx.one(
                "SELECT plate, vin, category, attempt, items, lane FROM upload_vehicles"
                " WHERE inspection_id = %s",
                (inspection_id,),
            )
            registration = await self._registration(tx, inspection_id)
        names = ("plate", "vin", "category", "attempt", "items", "lane")
        found = dict(zip(names, row, strict=True)) if row is not None else {}
        found |= {k: registration[k] for k in REGISTRATION_FIELDS if registration.get(k)}
        return found or None

    async def _registration(self, tx: Tx, inspection_id: str) -> dict[str, Any]:
        """The window's registration of an inspection (``flow_inspections``), if that
        table is in this database; {} otherwise."""
        if self.records.db.dialect == "postgresql":
            exists = await tx.one("SELECT to_regclass('flow_inspections') IS NOT NULL")
        else:
            exists = await tx.one(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                " AND name = 'flow_inspections'"
            )
        if not exists or not exists[0]:
            return {}
        row = await tx.one(
            "SELECT registration FROM flow_inspections WHERE serial = %s", (inspection_id,)
        )
        try:
            registration = json.loads(row[0]) if row is not None else {}
        except (TypeError, ValueError):
            return {}
        return registration if isinstance(registration, dict) else {}

    async def context(self, chain: str) -> dict[str, str]:
        """The values earlier answers of a chain gave."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all("SELECT name, value FROM upload_context WHERE chain = %s", (chain,))
        return {str(name): str(value) for name, value in rows}

    async def sample_origin(self, chain: str, item: str, attempt: int) -> float | None:
        """The ``t_s`` the per-second rows of an item's attempt count from (the first
        row's origin), None before its first row: so a restarted uploader goes on
        counting the same seconds."""
        async with self.records.db.transaction() as tx:
            row = await tx.one(
                "SELECT inputs FROM uploads WHERE chain = %s AND call = 'uploadInspProcess'"
                " AND item_code = %s AND attempt = %s ORDER BY ord LIMIT 1",
                (chain, item, attempt),
            )
        if row is None:
            return None
        origin = json.loads(row[0]).get("origin_t_s")
        return None if origin is None else float(origin)

    # sending ---------------------------------------------------------------------------
    async def due(self, now: str, limit: int = 64) -> list[Upload]:
        """Rows to send now: the first unaccepted row of each chain, when it is due."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_COLUMNS} FROM uploads u WHERE"  # noqa: S608 (constant columns)
                " ((u.status IN ('queued', 'retrying', 'held') AND u.next_try_at <= %s)"
                " OR (u.status = 'sending' AND u.lease_until < %s)) AND NOT EXISTS"
                " (SELECT 1 FROM uploads p WHERE p.chain = u.chain AND p.status <> 'accepted'"
                " AND (p.ord < u.ord OR (p.ord = u.ord AND p.step_key < u.step_key)))"
                " ORDER BY u.ord LIMIT %s",
                (now, now, limit),
            )
        return [Upload.from_row(r) for r in rows]

    async def claim(self, upload: Upload, request: str, lease_until: str) -> int | None:
        """Take a row for sending (None if another sender has it); its attempt number.
        The attempt is written ``in_doubt`` first: if this process dies mid-send, the
        evidence says the platform may have it."""
        now = now_text()
        async with self.records.db.transaction() as tx:
            row = await tx.one(
                "UPDATE uploads SET status = 'sending', tries = tries + 1, lease_until = %s,"
                " claimed_by = %s, request = %s, updated_at = %s WHERE upload_id = %s AND"
                " (status IN ('queued', 'retrying', 'held') OR (status = 'sending'"
                " AND lease_until < %s)) RETURNING tries",
                (lease_until, self.sender, request, now, upload.upload_id, now),
            )
            if row is None:
                return None
            n = int(row[0])
            await tx.execute(
                "INSERT INTO upload_attempts (upload_id, n, tried_at, outcome, request, sender)"
                " VALUES (%s, %s, %s, 'in_doubt', %s, %s)",
                (upload.upload_id, n, now, request, self.sender),
            )
        return n

    async def finish(
        self,
        upload: Upload,
        n: int,
        exchange: Exchange,
        next_try_at: str,
        captured: dict[str, str] | None = None,
    ) -> None:
        """Record an exchange's outcome (and what its answer gave the chain)."""
        now = now_text()
        reply = exchange.reply
        outcome = exchange.outcome
        attempt_outcome = "in_doubt" if outcome is Outcome.RETRY and exchange.in_doubt else outcome
        status = {Outcome.ACCEPTED: "accepted", Outcome.REFUSED: "refused"}.get(outcome, "retrying")
        async with self.records.db.transaction() as tx:
            await tx.execute(
                "UPDATE uploads SET status = %s, keystr = %s, code = %s, message = %s,"
                " response = %s, next_try_at = %s, lease_until = NULL, updated_at = %s,"
                " accepted_at = %s WHERE upload_id = %s",
                (status, reply.keystr if reply else None, reply.code if reply else None,
                 exchange.detail if reply is None else reply.message, exchange.response,
                 next_try_at, now, now if status == "accepted" else None, upload.upload_id),
            )  # fmt: skip
            await tx.execute(
                "UPDATE upload_attempts SET finished_at = %s, outcome = %s, detail = %s,"
                " response = %s WHERE upload_id = %s AND n = %s",
                (now, str(attempt_outcome), exchange.detail, exchange.response,
                 upload.upload_id, n),
            )  # fmt: skip
            for name, value in (captured or {}).items():
                await _set_context(tx, upload.chain, name, value)

    async def hold(self, upload: Upload, status: str, message: str, next_try_at: str) -> None:
        """A row not sent: ``held`` (inputs missing, tried again) or ``invalid``."""
        async with self.records.db.transaction() as tx:
            await tx.execute(
                "UPDATE uploads SET status = %s, message = %s, code = %s, next_try_at = %s,"
                " updated_at = %s WHERE upload_id = %s AND status IN ('queued', 'retrying',"
                " 'held', 'sending')",
                (status, message, "build" if status == "invalid" else None, next_try_at,
                 now_text(), upload.upload_id),
            )  # fmt: skip

    async def retry(self, short_id: str) -> Upload | None:
        """Queue a refused, invalid or waiting row again (never an accepted one); the row
        as it was, or None if there is no such row."""
        async with self.records.db.transaction() as tx:
            sql = f"SELECT {_COLUMNS} FROM uploads WHERE upload_id = %s"  # noqa: S608
            row = await tx.one(sql, (short_id,))
            if row is None:
                return None
            found = Upload.from_row(row)
            if found.status in ("refused", "invalid", "retrying", "held"):
                now = now_text()
                await tx.execute(
                    "UPDATE uploads SET status = 'queued', next_try_at = %s, updated_at = %s"
                    " WHERE upload_id = %s",
                    (now, now, short_id),
                )
        return found

    # reading ---------------------------------------------------------------------------
    async def listing(
        self,
        *,
        platform: str | None = None,
        status: str | None = None,
        inspection_id: str | None = None,
        lane: str | None = None,
        limit: int = 50,
        attempts: bool = False,
    ) -> list[Upload]:
        """Rows, newest first, filtered (``attempts``: with their exchanges)."""
        where, params = [], []
        for column, value in (("platform", platform), ("status", status),
                              ("inspection_id", inspection_id), ("lane", lane)):  # fmt: skip
            if value is not None:
                where.append(f"{column} = %s")
                params.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_COLUMNS} FROM uploads{clause} ORDER BY created_at DESC, ord DESC"  # noqa: S608
                " LIMIT %s",
                (*params, limit),
            )
            found = [Upload.from_row(r) for r in rows]
            if attempts:
                found = [await _with_attempts(tx, u) for u in found]
        return found

    async def counts(self) -> dict[str, int]:
        """Rows per status."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all("SELECT status, COUNT(*) FROM uploads GROUP BY status")
        return {str(status): int(count) for status, count in rows}

    async def checks(self) -> list[Upload]:
        """Every daily-check upload (the lock decision reads them)."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_COLUMNS} FROM uploads WHERE call = 'uploadInspStmDeviceRecord'"  # noqa: S608
                " ORDER BY ord"
            )
        return [Upload.from_row(r) for r in rows]

    async def gateway_devices(self) -> list[tuple[str, str | None, list[dict[str, Any]]]]:
        """(lane, session, devices of its birth) of every online gateway."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all(
                "SELECT lane, session_id, state_payload FROM gateways WHERE online = 1"
                " AND lane IS NOT NULL"
            )
        out = []
        for lane, session, payload in rows:
            try:
                devices = list(json.loads(payload or "{}").get("devices", []))
            except ValueError:
                devices = []
            out.append((str(lane), session, devices))
        return out

    async def sent_locks(self, lane: str) -> tuple[dict[str, list[str]] | None, str | None]:
        """The locks last sent to a lane and the gateway session that took them."""
        async with self.records.db.transaction() as tx:
            row = await tx.one(
                "SELECT locks, session_id FROM upload_locks WHERE lane = %s", (lane,)
            )
        return (None, None) if row is None else (json.loads(row[0]), row[1])

    async def save_locks(self, lane: str, locks: dict[str, list[str]], session: str | None) -> None:
        """The locks a lane's gateway confirmed."""
        now = now_text()
        async with self.records.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO upload_locks (lane, locks, session_id, sent_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (lane) DO UPDATE SET"
                " locks = excluded.locks, session_id = excluded.session_id,"
                " sent_at = excluded.sent_at, updated_at = excluded.updated_at",
                (lane, json.dumps(locks, ensure_ascii=False), session, now, now),
            )

    async def all_locks(self) -> dict[str, dict[str, list[str]]]:
        """Every lane's confirmed regulator locks."""
        async with self.records.db.transaction() as tx:
            rows = await tx.all("SELECT lane, locks FROM upload_locks")
        return {str(lane): json.loads(locks) for lane, locks in rows}


async def _set_context(tx: Tx, chain: str, name: str, value: str) -> None:
    await tx.execute(
        "INSERT INTO upload_context (chain, name, value) VALUES (%s, %s, %s)"
        " ON CONFLICT (chain, name) DO UPDATE SET value = excluded.value",
        (chain, name, value),
    )


async def _with_attempts(tx: Tx, upload: Upload) -> Upload:
    rows = await tx.all(
        "SELECT n, tried_at, finished_at, outcome, detail, request, response, sender"
        " FROM upload_attempts WHERE upload_id = %s ORDER BY n",
        (upload.upload_id,),
    )
    names = ("n", "tried_at", "finished_at", "outcome", "detail", "request", "response", "sender")
    attempts = [dict(zip(names, row, strict=True)) for row in rows]
    return Upload(**{**upload.to_json(), "attempts": attempts})
