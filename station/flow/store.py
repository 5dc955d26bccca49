"""The flow's database access: accounts, sessions, audit, serial numbers, bookings,
inspections and their attempts, photos, lane locks, reports. It shares the station
database (and its connection) with the record store it is given."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import uuid6

from station.flow.auth import Session, new_token, token_hash
from station.flow.rules import Derived
from station.store import RecordStore
from station.store.db import Tx
from station.store.store import now_text

SETUP_LOCK: Final = 0x666C6F77  # PostgreSQL advisory lock: one server creates the tables


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def later(seconds: float) -> str:
    """UTC now + ``seconds``, as stored."""
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="microseconds")


@dataclass(frozen=True, slots=True)
class User:
    """An account."""

    username: str
    name: str
    role: str
    password_hash: str
    active: bool


@dataclass(frozen=True, slots=True)
class Attempt:
    """One 检验次数 of an inspection."""

    serial: str
    attempt: int
    lane_items: list[str]
    manual_items: list[int]
    photos: list[str]
    lane: str | None
    dispatch_state: str  # waiting, sent, refused, aborted, none (no lane items)
    dispatch_error: str | None
    dispatched_at: str | None
    manual_state: str  # waiting, done, sent_back, none (no manual items)
    created_at: str


@dataclass(frozen=True, slots=True)
class Inspection:
    """A registered vehicle and where its inspection is."""

    serial: str
    attempt: int
    registration: dict[str, Any]
    status: str  # open, approved, closed
    created_at: str
    created_by: str
    owner_expires: str
    verdict: str | None
    decided_by: str | None
    decided_at: str | None
    note: str | None
    updated_at: str

    @property
    def plate(self) -> str:
        """The vehicle's plate."""
        return str(self.registration["plate"])


_INSPECTION_COLUMNS: Final = (
    "serial, attempt, registration, status, created_at, created_by, owner_expires,"
    " verdict, decided_by, decided_at, note, updated_at"
)
_ATTEMPT_COLUMNS: Final = (
    "serial, attempt, lane_items, manual_items, photos, lane, dispatch_state,"
    " dispatch_error, dispatched_at, manual_state, created_at"
)


def _inspection(row: tuple[Any, ...]) -> Inspection:
    values = list(row)
    values[2] = json.loads(values[2])
    return Inspection(*values)


def _attempt(row: tuple[Any, ...]) -> Attempt:
    values = list(row)
    for index in (2, 3, 4):
        values[index] = json.loads(values[index])
    return Attempt(*values)


class FlowStore:
    """The flow's tables in the station database of ``records``."""

    def __init__(self, records: RecordStore) -> None:
        self.records = records

    @property
    def db(self) -> Any:
        """The shared database (re-read: the record store may have reconnected)."""
        return self.records.db

    async def setup(self) -> None:
        """Create the tables (idempotent)."""
        from station.flow.schema import statements

        async with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            for statement in statements(self.db.dialect):
                await tx.execute(statement)

    # --- accounts and sessions ----------------------------------------------------------
    async def add_user(self, username: str, name: str, role: str, password_hash: str) -> bool:
        """A new account; False when the username is taken."""
        async with self.db.transaction() as tx:
            if await tx.one("SELECT 1 FROM flow_users WHERE username = %s", (username,)):
                return False
            await tx.execute(
                "INSERT INTO flow_users (username, name, role, password_hash, active,"
                " created_at) VALUES (%s, %s, %s, %s, 1, %s)",
                (username, name, role, password_hash, now_text()),
            )
        return True

    async def set_user(
        self, username: str, *, password_hash: str | None = None, active: bool | None = None
    ) -> bool:
        """Change a password or (de)activate an account; False when there is no such user."""
        async with self.db.transaction() as tx:
            if not await tx.one("SELECT 1 FROM flow_users WHERE username = %s", (username,)):
                return False
            if password_hash is not None:
                await tx.execute(
                    "UPDATE flow_users SET password_hash = %s WHERE username = %s",
                    (password_hash, username),
                )
            if active is not None:
                await tx.execute(
                    "UPDATE flow_users SET active = %s WHERE username = %s",
                    (1 if active else 0, username),
                )
                if not active:
                    await tx.execute("DELETE FROM flow_sessions WHERE username = %s", (username,))
        return True

    async def user(self, username: str) -> User | None:
        """An account by name."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT username, name, role, password_hash, active FROM flow_users"
                " WHERE username = %s",
                (username,),
            )
        return None if row is None else User(row[0], row[1], row[2], row[3], bool(row[4]))

    async def users(self) -> list[User]:
        """Every account."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                "SELECT username, name, role, password_hash, active FROM flow_users"
                " ORDER BY username"
            )
        return [User(r[0], r[1], r[2], r[3], bool(r[4])) for r in rows]

    async def new_session(self, username: str | None, lifetime_s: float) -> tuple[str, Session]:
        """A session (a visitor's before login); returns the cookie token with it."""
        token, csrf = new_token(), new_token()
        digest = token_hash(token)
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM flow_sessions WHERE expires_at < %s", (now_text(),))
            await tx.execute(
                "INSERT INTO flow_sessions (token_hash, username, csrf, created_at, expires_at)"
                " VALUES (%s, %s, %s, %s, %s)",
                (digest, username, csrf, now_text(), later(lifetime_s)),
            )
        return token, Session(digest, csrf, username)

    async def session(self, token: str) -> Session | None:
        """The live session of a cookie token, with its (active) user."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT s.token_hash, s.csrf, u.username, u.name, u.role FROM flow_sessions s"
                " LEFT JOIN flow_users u ON u.username = s.username AND u.active = 1"
                " WHERE s.token_hash = %s AND s.expires_at > %s",
                (token_hash(token), now_text()),
            )
        return None if row is None else Session(*row)

    async def end_session(self, digest: str) -> None:
        """Log out."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM flow_sessions WHERE token_hash = %s", (digest,))

    # --- audit --------------------------------------------------------------------------
    async def audit(
        self,
        session: Session | None,
        action: str,
        target: str | None = None,
        address: str | None = None,
        **detail: Any,
    ) -> None:
        """Who did what, when, from where."""
        async with self.db.transaction() as tx:
            await self.audit_in(tx, session, action, target, address, **detail)

    async def audit_in(
        self,
        tx: Tx,
        session: Session | None,
        action: str,
        target: str | None = None,
        address: str | None = None,
        **detail: Any,
    ) -> None:
        """``audit`` within a transaction of the action itself."""
        await tx.execute(
            "INSERT INTO flow_audit (audit_id, at, username, role, action, target, detail,"
            " address) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (
                str(uuid6.uuid7()),
                now_text(),
                session.username if session else None,
                session.role if session else None,
                action,
                target,
                _json(detail),
                address,
            ),
        )

    async def audit_log(self, limit: int = 200, target: str | None = None) -> list[dict[str, Any]]:
        """The latest audit entries (of one target)."""
        select = "SELECT at, username, role, action, target, detail, address FROM flow_audit"
        async with self.db.transaction() as tx:
            if target is None:
                rows = await tx.all(f"{select} ORDER BY at DESC LIMIT %s", (limit,))
            else:
                rows = await tx.all(
                    f"{select} WHERE target = %s ORDER BY at DESC LIMIT %s", (target, limit)
                )
        keys = ("at", "username", "role", "action", "target", "detail", "address")
        return [{**dict(zip(keys, r, strict=True)), "detail": json.loads(r[5])} for r in rows]

    # --- bookings -----------------------------------------------------------------------
    async def add_booking(self, code: str, vehicle: dict[str, Any]) -> None:
        """An appointment's vehicle data under its booking code (replaced if present)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO flow_bookings (code, vehicle, created_at) VALUES (%s, %s, %s)"
                " ON CONFLICT (code) DO UPDATE SET vehicle = excluded.vehicle",
                (code, _json(vehicle), now_text()),
            )

    async def booking(self, code: str) -> tuple[dict[str, Any], str | None] | None:
        """(vehicle, serial it was used for) of a booking code."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT vehicle, used_by FROM flow_bookings WHERE code = %s", (code,)
            )
        return None if row is None else (json.loads(row[0]), row[1])

    # --- inspections --------------------------------------------------------------------
    async def register(
        self,
        prefix: str,
        day: str,
        registration: dict[str, Any],
        derived: Derived,
        session: Session,
        owner_token: str,
        owner_lifetime_s: float,
        address: str | None,
    ) -> str:
        """A new inspection with its serial number (prefix + YYMMDD + 4-digit sequence of
        the day) and its first attempt, audited in the same transaction."""
        now = now_text()
        async with self.db.transaction() as tx:
            key = prefix + day
            row = await tx.one(
                "INSERT INTO flow_serials (prefix, last) VALUES (%s, 1) ON CONFLICT (prefix)"
                " DO UPDATE SET last = flow_serials.last + 1 RETURNING last",
                (key,),
            )
            assert row is not None
            if int(row[0]) > 9999:
                raise OverflowError(f"more than 9999 inspections on {day}")
            serial = f"{key}{int(row[0]):04d}"
            await tx.execute(
                f"INSERT INTO flow_inspections ({_INSPECTION_COLUMNS}, owner_hash)"  # noqa: S608
                " VALUES (%s, 1, %s, 'open', %s, %s, %s, NULL, NULL, NULL, NULL, %s, %s)",
                (serial, _json(registration), now, session.username, later(owner_lifetime_s),
                 now, token_hash(owner_token)),
            )  # fmt: skip
            await self._add_attempt(tx, serial, 1, derived)
            code = registration.get("booking_code")
            if code:
                await tx.execute(
                    "UPDATE flow_bookings SET used_by = %s WHERE code = %s", (serial, code)
                )
            await self.audit_in(
                tx, session, "register", serial, address, plate=registration["plate"]
            )
        return serial

    async def _add_attempt(self, tx: Tx, serial: str, attempt: int, derived: Derived) -> None:
        dispatch = "waiting" if derived.lane_items else "none"
        manual = "waiting" if derived.manual_items else "none"
        await tx.execute(
            f"INSERT INTO flow_attempts ({_ATTEMPT_COLUMNS}) VALUES"  # noqa: S608
            " (%s, %s, %s, %s, %s, NULL, %s, NULL, NULL, %s, %s)",
            (serial, attempt, _json(derived.lane_items), _json(derived.manual_items),
             _json(derived.photos), dispatch, manual, now_text()),
        )  # fmt: skip

    async def new_attempt(
        self, serial: str, derived: Derived, session: Session, address: str | None
    ) -> int:
        """The retest (复检): attempt + 1 with only ``derived``'s items."""
        async with self.db.transaction() as tx:
            row = await tx.one("SELECT attempt FROM flow_inspections WHERE serial = %s", (serial,))
            assert row is not None
            attempt = int(row[0]) + 1
            await self._add_attempt(tx, serial, attempt, derived)
            await tx.execute(
                "UPDATE flow_inspections SET attempt = %s, status = 'open', verdict = NULL,"
                " updated_at = %s WHERE serial = %s",
                (attempt, now_text(), serial),
            )
            await self.audit_in(
                tx, session, "retest", serial, address, attempt=attempt,
                lane_items=derived.lane_items, manual_items=derived.manual_items,
            )  # fmt: skip
        return attempt

    async def inspection(self, serial: str) -> Inspection | None:
        """An inspection by serial number."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                f"SELECT {_INSPECTION_COLUMNS} FROM flow_inspections WHERE serial = %s",  # noqa: S608
                (serial,),
            )
        return None if row is None else _inspection(row)

    async def by_owner_token(self, token: str) -> Inspection | None:
        """The inspection an owner's link opens, while the link is valid."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                f"SELECT {_INSPECTION_COLUMNS} FROM flow_inspections"  # noqa: S608
                " WHERE owner_hash = %s AND owner_expires > %s",
                (token_hash(token), now_text()),
            )
        return None if row is None else _inspection(row)

    async def new_owner_token(self, serial: str, token: str, lifetime_s: float) -> None:
        """A new owner link (the old one stops working): the slip reprinted."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE flow_inspections SET owner_hash = %s, owner_expires = %s WHERE serial = %s",
                (token_hash(token), later(lifetime_s), serial),
            )

    async def inspections(self, statuses: tuple[str, ...] = ("open",)) -> list[Inspection]:
        """Inspections in these states, oldest first."""
        marks = ", ".join(["%s"] * len(statuses))
        async with self.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_INSPECTION_COLUMNS} FROM flow_inspections"  # noqa: S608
                f" WHERE status IN ({marks}) ORDER BY created_at",
                statuses,
            )
        return [_inspection(r) for r in rows]

    async def decided(self, limit: int = 20) -> list[Inspection]:
        """The latest decided inspections, newest first."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_INSPECTION_COLUMNS} FROM flow_inspections"  # noqa: S608
                " WHERE status <> 'open' ORDER BY decided_at DESC LIMIT %s",
                (limit,),
            )
        return [_inspection(r) for r in rows]

    async def attempts(self, serial: str) -> list[Attempt]:
        """Every attempt of an inspection, first first."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                f"SELECT {_ATTEMPT_COLUMNS} FROM flow_attempts WHERE serial = %s"  # noqa: S608
                " ORDER BY attempt",
                (serial,),
            )
        return [_attempt(r) for r in rows]

    async def open_attempts(self) -> list[tuple[Inspection, Attempt]]:
        """The current attempt of every open inspection."""
        found = []
        for inspection in await self.inspections():
            attempts = await self.attempts(inspection.serial)
            found.append((inspection, attempts[-1]))
        return found

    async def set_dispatch(
        self, serial: str, attempt: int, lane: str | None, state: str, error: str | None
    ) -> None:
        """Where an attempt's lane items went."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE flow_attempts SET lane = %s, dispatch_state = %s, dispatch_error = %s,"
                " dispatched_at = %s WHERE serial = %s AND attempt = %s",
                (lane, state, error, now_text(), serial, attempt),
            )

    async def set_manual_state(self, serial: str, attempt: int, state: str) -> None:
        """The handheld's part of an attempt: waiting, done, sent_back."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE flow_attempts SET manual_state = %s WHERE serial = %s AND attempt = %s",
                (state, serial, attempt),
            )

    async def approve(
        self,
        serial: str,
        verdict: str,
        session: Session,
        owner_expires: str,
        pdf: bytes,
        sha256: str,
        address: str | None,
        **detail: Any,
    ) -> bool:
        """The decision, its report and its audit entry in one transaction; False when the
        inspection is no longer open (approved meanwhile by someone else)."""
        now = now_text()
        async with self.db.transaction() as tx:
            row = await tx.one("SELECT status FROM flow_inspections WHERE serial = %s", (serial,))
            if row is None or row[0] != "open":
                return False
            await tx.execute(
                "UPDATE flow_inspections SET status = 'approved', verdict = %s, decided_by = %s,"
                " decided_at = %s, updated_at = %s, owner_expires = %s WHERE serial = %s",
                (verdict, session.username, now, now, owner_expires, serial),
            )
            await tx.execute(
                "INSERT INTO flow_reports (serial, sha256, pdf, created_at, created_by)"
                " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (serial) DO UPDATE SET"
                " sha256 = excluded.sha256, pdf = excluded.pdf,"
                " created_at = excluded.created_at, created_by = excluded.created_by",
                (serial, sha256, pdf, now, session.username),
            )
            await self.audit_in(tx, session, "approved", serial, address, verdict=verdict,
                                report_sha256=sha256, **detail)  # fmt: skip
        return True

    # --- photos, lane locks, reports ------------------------------------------------------
    async def add_photo(
        self, serial: str, attempt: int, code: str, sha256: str, mime: str, data: bytes,
        username: str,
    ) -> None:  # fmt: skip
        """A photo of the manual inspection (kept once per content)."""
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO flow_photos (sha256, serial, attempt, code, mime, data, taken_by,"
                " taken_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (sha256, serial, attempt, code, mime, data, username, now_text()),
            )

    async def photos(self, serial: str) -> list[tuple[int, str, str, str]]:
        """(attempt, code, sha256, taken_at) of an inspection's photos."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                "SELECT attempt, code, sha256, taken_at FROM flow_photos WHERE serial = %s"
                " ORDER BY attempt, code, taken_at",
                (serial,),
            )
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    async def photo(self, serial: str, sha256: str) -> tuple[str, bytes] | None:
        """(mime, bytes) of one photo."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT mime, data FROM flow_photos WHERE serial = %s AND sha256 = %s",
                (serial, sha256),
            )
        return None if row is None else (row[0], bytes(row[1]))

    async def lock_lane(self, lane: str, reason: str | None, username: str) -> None:
        """Lock a lane for dispatch (reason) or unlock it (None)."""
        async with self.db.transaction() as tx:
            await tx.execute("DELETE FROM flow_lane_locks WHERE lane = %s", (lane,))
            if reason is not None:
                await tx.execute(
                    "INSERT INTO flow_lane_locks (lane, reason, username, at)"
                    " VALUES (%s, %s, %s, %s)",
                    (lane, reason, username, now_text()),
                )

    async def lane_locks(self) -> dict[str, str]:
        """Locked lanes and why."""
        async with self.db.transaction() as tx:
            rows = await tx.all("SELECT lane, reason FROM flow_lane_locks")
        return {r[0]: r[1] for r in rows}

    async def report(self, serial: str) -> tuple[str, bytes, str] | None:
        """(sha256, pdf, created_at) of an inspection's report."""
        async with self.db.transaction() as tx:
            row = await tx.one(
                "SELECT sha256, pdf, created_at FROM flow_reports WHERE serial = %s", (serial,)
            )
        return None if row is None else (row[0], bytes(row[1]), row[2])
