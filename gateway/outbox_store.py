"""The outbox's SQLite file: a record counts as produced only once it is committed here.

This is the synchronous storage; ``gateway.outbox.Outbox`` runs it on the outbox's own
thread so that no commit (an fsync, 1–9 ms) and no query blocks the event loop.

SQLite in WAL mode with ``synchronous=FULL``: a commit is on disk before ``add`` returns,
so a SIGKILL or power cut right after loses nothing that counted. A row leaves only when
it was delivered (PUBACK, or the server's ack, per config). The per-gateway sequence
number is kept in the same database and advanced in the same transaction as the insert,
so it survives restarts without gaps.

The bound is on bytes: past ``alarm_fraction`` of ``max_bytes`` the outbox is in alarm
and the gateway refuses to start new inspections; records of inspections already
running are still accepted (results are never dropped). A full disk counts the same:
new inspections are refused while less than ``MIN_FREE_BYTES`` are free or the last
record could not be written (its producer keeps it and retries); a delivered record
that cannot be deleted stays and its deletion is retried.

Every commit of a record also replaces ``sequence.json`` next to the outbox (the
high-water record, ``gateway.sequence``), on this same thread, after the transaction:
an outbox that later loses committed records (a deleted ``-wal``, a restored backup) is
then caught at start (``gateway.state``) instead of reusing their sequence numbers. A
file that is not a sound SQLite database raises ``OutboxDamaged``, never a bare
``sqlite3`` error.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog

from gateway.errors import GatewayError, OutboxFull
from gateway.integrity import GENESIS_HASH, Sealed
from gateway.records import ResultRecord
from gateway.sequence import (
    SEQUENCE_FILE,
    HighWater,
    SequenceFileError,
    read_high_water,
    write_high_water,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    seq INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    produced_offline INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value NOT NULL);
"""


log = structlog.get_logger("lanegw.outbox")

#: free space on the outbox's disk below which new inspections are refused
MIN_FREE_BYTES: Final = 1024 * 1024

#: signs a record (parsed JSON) and links it to the previous hash
SealFn = Callable[[dict[str, Any], str], Sealed]


class OutboxDamaged(GatewayError):
    """The outbox file is not a sound SQLite database (truncated, overwritten, corrupt)."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"{path} is damaged ({detail}): the gateway will not start on it, since the"
            " records waiting in it would be lost silently. Stop the daemon, copy the"
            " state directory aside, then restore the outbox from a backup, or run"
            " `lanegw state recover --accept-loss --technician NAME` (the file is kept"
            " aside, its undelivered records are declared lost in a signed record)"
        )
        self.path = path
        self.detail = detail


@dataclass(frozen=True, slots=True)
class PendingRecord:
    """A record waiting for delivery, as stored (payload is the JSON without ``replayed``)."""

    seq: int
    record_id: str
    payload: bytes
    created_at: float
    replayed: bool

    def wire_payload(self) -> bytes:
        """The published JSON: the stored object with the ``replayed`` flag appended."""
        flag = b',"replayed":true}' if self.replayed else b',"replayed":false}'
        return self.payload[:-1] + flag


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """Depth, size and age of what waits for delivery."""

    depth: int
    bytes: int
    oldest_age_s: float
    last_seq: int
    alarm: bool


class OutboxStore:
    """The SQLite outbox of one gateway.

    Used by one thread at a time: the outbox's worker thread in the daemon, the caller's
    thread in tools and tests. The counters it keeps (depth, bytes, oldest record's age,
    last sequence number) are plain attributes, so another thread may read them at any
    moment without a query.
    """

    def __init__(self, path: Path, max_bytes: int, alarm_fraction: float = 0.8) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self.alarm_bytes = int(max_bytes * alarm_fraction)
        self.high_water_path = path.with_name(SEQUENCE_FILE)
        # opened here, used on the outbox's worker thread afterwards (never two at once)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise OutboxDamaged(path, str(exc)) from None
        try:
            self._open()
        except (sqlite3.DatabaseError, ValueError, TypeError) as exc:  # TypeError: bad meta
            self._db.close()
            raise OutboxDamaged(path, str(exc)) from None
        try:
            #: the high-water record as found at open (None: none, or unreadable)
            self.high_water_at_open: HighWater | None = read_high_water(self.high_water_path)
        except SequenceFileError:
            self.high_water_at_open = None  # gateway.state reports it; not our decision
        self._high_water_error: str | None = None
        self._write_error: str | None = None  # why the last record could not be stored
        self._unremoved: list[tuple[str, list[int] | list[str]]] = []  # deletions to retry

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._check_integrity()
        self._db.executescript(_SCHEMA)
        self._last_seq = int(self._meta("last_seq", 0))
        self._last_hash = str(self._meta("last_hash", GENESIS_HASH))
        key = self._meta("public_key", "")
        #: the public key the records are signed with, as recorded (None: not recorded)
        self.public_key: str | None = str(key) if key else None
        depth, size = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM records"
        ).fetchone()
        self._depth = int(depth)
        self._bytes = int(size)
        self._oldest_created: float | None = None
        self._oldest_seq: int | None = None
        self._find_oldest()

    def _find_oldest(self) -> None:
        """Remember the oldest waiting record's time and seq (by the primary key: no scan)."""
        row = self._db.execute(
            "SELECT created_at, seq FROM records ORDER BY seq LIMIT 1"
        ).fetchone()
        self._oldest_created = None if row is None else float(row[0])
        self._oldest_seq = None if row is None else int(row[1])

    def _check_integrity(self) -> None:
        (result,) = self._db.execute("PRAGMA quick_check").fetchone()
        if result != "ok":
            raise sqlite3.DatabaseError(f"outbox {self.path} failed its integrity check: {result}")

    def _meta(self, key: str, default: int | str) -> int | str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    # producing -------------------------------------------------------------------------
    def add(
        self, build: Callable[[int], ResultRecord], *, offline: bool, seal: SealFn | None = None
    ) -> ResultRecord:
        """Number, seal, store and commit one record; returns it once it is durable.

        ``build`` gets the sequence number and returns the record; ``seal`` signs it and
        links it to the previous record's hash (kept here, in the same transaction).
        Raises ``OutboxFull`` when the disk refuses the write (the caller keeps the
        record and retries).
        """
        seq = self._last_seq + 1
        record = build(seq)
        data = json.loads(record.model_dump_json(exclude={"replayed"}))
        if seal is not None:
            sealed = seal(data, self._last_hash)
            payload, new_hash = sealed.payload, sealed.hash
        else:
            payload, new_hash = json.dumps(data, separators=(",", ":")).encode(), self._last_hash
        created = time.time()
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(
                    "INSERT INTO records (seq, record_id, payload, created_at, produced_offline)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (seq, record.record_id, payload, created, int(offline)),
                )
                self._set_meta([("last_seq", seq), ("last_hash", new_hash)])
        except sqlite3.OperationalError as exc:
            self._write_error = str(exc)
            raise OutboxFull(f"outbox write failed: {exc}") from exc
        self._write_error = None
        self._last_seq = seq
        self._last_hash = new_hash
        self._depth += 1
        self._bytes += len(payload)
        if self._oldest_created is None:
            self._oldest_created = created
            self._oldest_seq = seq
        self._record_high_water()
        self._retry_deletions()
        return record

    # the high-water record ---------------------------------------------------------------
    def _record_high_water(self) -> None:
        """Write ``sequence.json`` for the state committed now (after the transaction).

        A failure is logged, never raised: the record is committed, and a high-water
        record behind the outbox is accepted at start. Never written lower than what it
        said at open: a rolled-back outbox must not erase the evidence of its loss.
        """
        found = self.high_water_at_open
        if found is not None and found.last_seq > self._last_seq:
            log.error(
                "sequence_record_not_lowered",
                outbox_last_seq=self._last_seq,
                recorded_last_seq=found.last_seq,
            )
            return
        record = HighWater(self._last_seq, self._last_hash, self._oldest_seq, self.public_key)
        try:
            write_high_water(self.high_water_path, record)
        except OSError as exc:
            if self._high_water_error is None:
                log.warning("sequence_record_not_written", error=str(exc))
            self._high_water_error = str(exc)
            return
        if self._high_water_error is not None:
            log.info("sequence_record_written_again", last_seq=self._last_seq)
        self._high_water_error = None

    def record_high_water(self) -> None:
        """Write ``sequence.json`` for the state as it is (before a key exists: a crash
        right after the key is made then leaves a record saying nothing was produced)."""
        self._record_high_water()

    def bind_key(self, public_key: str) -> None:
        """Record the public key the records are signed with (in the outbox and in
        ``sequence.json``); called at start, once the key was checked against both."""
        if public_key != self.public_key:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._set_meta([("public_key", public_key)])
            self.public_key = public_key
        self.high_water_at_open = None  # checked and accepted: from now on we write it
        self._record_high_water()

    def continue_from(self, last_seq: int, last_hash: str) -> None:
        """Continue numbering after ``last_seq`` (and chaining after ``last_hash``):
        the recovery of lost state, so that no sequence number is used twice."""
        if last_seq < self._last_seq:
            raise ValueError(f"cannot go back from seq {self._last_seq} to {last_seq}")
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._set_meta([("last_seq", last_seq), ("last_hash", last_hash)])
        self._last_seq, self._last_hash = last_seq, last_hash

    def _set_meta(self, items: list[tuple[str, int | str]]) -> None:
        self._db.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            items,
        )

    def newest_payload(self) -> bytes | None:
        """The stored JSON of the newest waiting record (to check its signature)."""
        row = self._db.execute("SELECT payload FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else bytes(row[0])

    # delivering ------------------------------------------------------------------------
    def pending(self, after_seq: int, limit: int) -> list[PendingRecord]:
        """Up to ``limit`` records with ``seq > after_seq``, oldest first."""
        rows = self._db.execute(
            "SELECT seq, record_id, payload, created_at, produced_offline, attempts"
            " FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        ).fetchall()
        return [
            PendingRecord(seq, rid, bytes(payload), created, bool(offline or attempts))
            for seq, rid, payload, created, offline, attempts in rows
        ]

    def oldest_seq(self) -> int | None:
        """The sequence number of the oldest record still waiting, if any."""
        if not self._depth:
            return None
        (seq,) = self._db.execute("SELECT MIN(seq) FROM records").fetchone()
        return None if seq is None else int(seq)

    def mark_sent(self, seqs: Iterable[int]) -> None:
        """Count a delivery attempt (records kept until the server acknowledges them)."""
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")  # one transaction (one fsync), not one per row
                self._db.executemany(
                    "UPDATE records SET attempts = attempts + 1 WHERE seq = ?",
                    [(s,) for s in seqs],
                )
        except sqlite3.OperationalError as exc:  # disk full: the count is only a flag
            log.warning("outbox_write_failed", action="mark_sent", error=str(exc))

    def remove(self, seqs: Iterable[int]) -> int:
        """Delete delivered records by sequence number; returns how many went."""
        return self._delete("seq", list(seqs))

    def remove_ids(self, record_ids: Iterable[str], max_seq: int | None = None) -> tuple[int, int]:
        """Delete records the server acknowledged; unknown ids are ignored.

        With ``max_seq``, a record above it (not sent yet: an ack for it is forged or
        confused) is kept. Returns (removed, kept as not sent).
        """
        ids = list(record_ids)
        unsent = 0
        if max_seq is not None and ids:
            unsent = self._count_unsent(ids, max_seq)
            if unsent:
                ids = self._sent_only(ids, max_seq)
        return self._delete("record_id", ids), unsent

    def _count_unsent(self, ids: list[str], max_seq: int) -> int:
        total = 0
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            (count,) = self._db.execute(
                f"SELECT COUNT(*) FROM records WHERE seq > ? AND record_id IN ({marks})",  # noqa: S608
                [max_seq, *chunk],
            ).fetchone()
            total += int(count)
        return total

    def _sent_only(self, ids: list[str], max_seq: int) -> list[str]:
        kept: list[str] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self._db.execute(
                f"SELECT record_id FROM records WHERE seq <= ? AND record_id IN ({marks})",  # noqa: S608
                [max_seq, *chunk],
            ).fetchall()
            kept.extend(row[0] for row in rows)
        return kept

    def _delete(self, column: str, keys: list[int] | list[str]) -> int:
        return self._retry_deletions() + self._delete_now(column, keys)

    def _retry_deletions(self) -> int:
        """Delete what could not be deleted before (the disk was full)."""
        retry, self._unremoved = self._unremoved, []
        return sum(self._delete_now(column, keys) for column, keys in retry)

    def _delete_now(self, column: str, keys: list[int] | list[str]) -> int:
        if not keys:
            return 0
        try:
            return self._delete_rows(column, keys)
        except sqlite3.OperationalError as exc:  # disk full: keep them, delete them later
            log.warning("outbox_write_failed", action="delete", records=len(keys), error=str(exc))
            self._unremoved.append((column, keys))
            return 0

    def _delete_rows(self, column: str, keys: list[int] | list[str]) -> int:
        removed = 0
        freed = 0
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")  # all chunks in one transaction (one fsync)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                (size,) = self._db.execute(
                    f"SELECT COALESCE(SUM(LENGTH(payload)), 0) FROM records"  # noqa: S608
                    f" WHERE {column} IN ({marks})",
                    chunk,
                ).fetchone()
                cursor = self._db.execute(
                    f"DELETE FROM records WHERE {column} IN ({marks})",  # noqa: S608
                    chunk,
                )
                removed += cursor.rowcount
                freed += int(size)
        self._depth -= removed
        self._bytes -= freed
        if removed:
            self._find_oldest()
        return removed

    # state -----------------------------------------------------------------------------
    def require_room(self) -> None:
        """Raise ``OutboxFull`` when the outbox is in alarm or its disk is full (refuse
        new inspections)."""
        if self.alarm:
            raise OutboxFull(
                f"outbox holds {self._bytes} bytes, over {self.alarm_bytes} of {self.max_bytes}:"
                " new inspections are refused until the station receives the backlog"
            )
        if self._write_error is not None:
            raise OutboxFull(
                f"the outbox cannot store records ({self._write_error}):"
                " new inspections are refused until it can"
            )
        free = self.free_bytes()
        if free < MIN_FREE_BYTES:
            raise OutboxFull(
                f"the disk holding the outbox has {free} bytes free, less than"
                f" {MIN_FREE_BYTES}: new inspections are refused until space returns"
            )

    def free_bytes(self) -> int:
        """Bytes free for this process on the outbox's file system."""
        stat = os.statvfs(self.path.parent)
        return stat.f_bavail * stat.f_frsize

    @property
    def alarm(self) -> bool:
        """True once the bytes waiting reach the alarm threshold."""
        return self._bytes >= self.alarm_bytes

    @property
    def last_seq(self) -> int:
        """The sequence number of the last record produced."""
        return self._last_seq

    @property
    def last_hash(self) -> str:
        """The chain hash of the last record produced."""
        return self._last_hash

    @property
    def depth(self) -> int:
        """Records waiting."""
        return self._depth

    def stats(self) -> OutboxStats:
        """Depth, bytes and oldest age, for status and metrics (no query: kept counters)."""
        created = self._oldest_created
        oldest = 0.0 if created is None or not self._depth else max(0.0, time.time() - created)
        return OutboxStats(self._depth, self._bytes, oldest, self._last_seq, self.alarm)

    def close(self) -> None:
        """Checkpoint and close the database."""
        self._db.close()
