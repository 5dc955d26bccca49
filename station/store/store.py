"""The record store: what the receiver writes (records, alarms, gateway keys and states)
and what ``status`` and ``export`` read. The decisions are ``station.checks``'; this
module looks up their facts and writes their outcome, one transaction per batch.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.integrity import public_key_from_text
from station.checks import (
    Alarm,
    AlarmKind,
    Arrival,
    Decision,
    Facts,
    judge,
    key_alarm,
    lane_claimed,
    state_forgery,
)
from station.store import partitions as monthly
from station.store.db import Database, StoreUnavailable, Tx, open_database
from station.store.gaps import Gap, find_gaps
from station.store.schema import SCHEMA_VERSION, TABLES

SETUP_LOCK: Final = 0x6C616E65  # PostgreSQL advisory lock: one receiver creates the tables


def now_text() -> str:
    """UTC now, as stored (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def payload_text(payload: bytes) -> str:
    """A payload as stored: its text, or ``base64:`` + its bytes when it is not clean
    UTF-8 (PostgreSQL text holds no NUL either). Evidence is kept byte for byte."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        text = "\x00"
    if "\x00" in text:
        return "base64:" + base64.b64encode(payload).decode()
    return text


@functools.lru_cache(maxsize=1024)
def _parsed_key(text: str) -> Ed25519PublicKey:
    return public_key_from_text(text)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one arriving record."""

    arrival: Arrival
    decision: Decision
    alarms: list[Alarm] = field(default_factory=list)

    @property
    def acknowledged(self) -> bool:
        """Stored (now or before): the gateway may let go of it."""
        return self.decision is not Decision.REJECT


class RecordStore:
    """Records, alarms and gateways in one database, written by ``receiver``."""

    def __init__(
        self,
        db: Database,
        receiver: str,
        url: str,
        partitions: str = "none",
        transactions: str = "per_gateway",
    ) -> None:
        self.db = db
        self.receiver = receiver
        self._url = url
        self.partitions = partitions  # "monthly": the regional layout (store/partitions.py)
        self.transactions = transactions  # of ``ingest``: "per_gateway" or "per_batch"
        self._months_ensured: tuple[int, int] | None = None

    @classmethod
    async def open(
        cls,
        url: str,
        receiver: str,
        partitions: str = "none",
        transactions: str = "per_gateway",
    ) -> RecordStore:
        """Connect to the database at ``url`` and create its tables if needed."""
        store = cls(await open_database(url), receiver, url, partitions, transactions)
        await store.setup()
        return store

    async def reconnect(self) -> None:
        """A fresh connection after the database failed (raises ``StoreUnavailable``)."""
        await self.db.close()
        self.db = await open_database(self._url)

    async def close(self) -> None:
        """Close the connection."""
        await self.db.close()

    async def setup(self) -> None:
        """Create the tables (idempotent; safe with several receivers starting)."""
        async with self.db.transaction() as tx:
            if self.db.dialect == "postgresql":
                await tx.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            if self.partitions == "monthly":
                await self._setup_partitioned(tx)
            for statement in TABLES:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO meta (name, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (name) DO NOTHING",
                (str(SCHEMA_VERSION),),
            )
        await self.maintain()

    async def _setup_partitioned(self, tx: Tx) -> None:
        if self.db.dialect != "postgresql":
            raise StoreUnavailable("database.partitions: monthly needs PostgreSQL")
        row = await tx.one("SELECT relkind FROM pg_class WHERE oid = to_regclass('records')")
        if row is not None and row[0] != "p":
            raise StoreUnavailable("records exists unpartitioned: database.partitions is monthly")
        for statement in monthly.statements():
            await tx.execute(statement)

    async def maintain(self, now: datetime | None = None) -> None:
        """Partitioned: create the months from the last to ``MONTHS_AHEAD`` ahead, once a
        month (at start and from the sweep); otherwise nothing."""
        now = now or datetime.now(UTC)
        if self.partitions != "monthly" or self._months_ensured == (now.year, now.month):
            return
        back = monthly.MONTHS_BACK if self._months_ensured is None else 0
        async with self.db.transaction() as tx:
            await tx.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
            for year, month in monthly.months_around(now, back, monthly.MONTHS_AHEAD):
                await tx.execute(monthly.partition_for(year, month))
        self._months_ensured = (now.year, now.month)

    async def pin_keys(self, keys: dict[str, str]) -> None:
        """Trust exactly these keys for these gateways (config ``trust.keys``)."""
        now = now_text()
        async with self.db.transaction() as tx:
            for gateway_id, key in keys.items():
                await tx.execute(
                    "INSERT INTO gateways (gateway_id, public_key, key_source, first_seen,"
                    " last_seen) VALUES (%s, %s, 'pinned', %s, %s) ON CONFLICT (gateway_id)"
                    " DO UPDATE SET public_key = excluded.public_key, key_source = 'pinned'",
                    (gateway_id, key, now, now),
                )
                await tx.execute(  # its birth was refused before the key was pinned
                    "UPDATE alarms SET resolved_at = %s, resolution = 'key pinned'"
                    " WHERE gateway_id = %s AND kind = %s AND record_id IS NULL"
                    " AND resolved_at IS NULL",
                    (now, gateway_id, AlarmKind.UNKNOWN_GATEWAY.value),
                )

    # writing -------------------------------------------------------------------------
    async def ingest(self, arrivals: Sequence[Arrival]) -> list[Outcome]:
        """Judge and store a batch, one transaction per gateway (receivers sharing the load
        wait for each other only on the same gateway), or with ``per_batch`` one for the
        whole batch (one commit for many gateways' records: the region's many lanes);
        outcomes in arrival order."""
        by_gateway: dict[str, list[int]] = {}
        for index, arrival in enumerate(arrivals):
            by_gateway.setdefault(arrival.gateway_id, []).append(index)
        groups = sorted(by_gateway.items())
        outcomes: dict[int, Outcome] = {}
        if self.transactions == "per_batch":
            async with self.db.transaction() as tx:
                await self._ingest_groups(tx, arrivals, groups, outcomes)
        else:
            for group in groups:
                async with self.db.transaction() as tx:
                    await self._ingest_groups(tx, arrivals, [group], outcomes)
        return [outcomes[i] for i in range(len(arrivals))]

    async def _ingest_groups(
        self,
        tx: Tx,
        arrivals: Sequence[Arrival],
        groups: list[tuple[str, list[int]]],
        outcomes: dict[int, Outcome],
    ) -> None:
        """Some gateways' records of the batch (``groups``: gateway id, indexes), their rows
        locked in one sorted ``FOR UPDATE``."""
        gateway_ids = [gateway_id for gateway_id, _ in groups]
        await tx.lock_gateways(gateway_ids)
        facts = await self._gateway_facts(tx, gateway_ids)
        for gateway_id, indexes in groups:
            key, refused = facts.get(gateway_id, (None, False))
            for i in indexes:
                outcomes[i] = await self._ingest_one(tx, arrivals[i], key, refused)

    async def _gateway_facts(
        self, tx: Tx, gateway_ids: list[str]
    ) -> dict[str, tuple[Ed25519PublicKey, bool]]:
        """The trusted key of each gateway that has one, and whether records of it were
        refused before its key was trusted (their alarms close as they come)."""
        marks = ", ".join(["%s"] * len(gateway_ids))  # placeholders only: no value in the SQL
        rows = await tx.all(
            f"SELECT gateway_id, public_key FROM gateways WHERE gateway_id IN ({marks})"  # noqa: S608
            " AND public_key IS NOT NULL",
            gateway_ids,
        )
        if not rows:
            return {}
        refused = await tx.all(
            f"SELECT DISTINCT gateway_id FROM alarms WHERE gateway_id IN ({marks})"  # noqa: S608
            " AND kind = %s AND record_id IS NOT NULL AND resolved_at IS NULL",
            [*gateway_ids, AlarmKind.UNKNOWN_GATEWAY.value],
        )
        was_refused = {row[0] for row in refused}
        return {row[0]: (_parsed_key(row[1]), row[0] in was_refused) for row in rows}

    async def _ingest_one(
        self, tx: Tx, arrival: Arrival, key: Ed25519PublicKey | None, refused: bool
    ) -> Outcome:
        gateway_id, seq = arrival.gateway_id, arrival.seq
        row = await tx.one(
            "SELECT (SELECT hash FROM records WHERE record_id = %s),"
            " (SELECT record_id FROM records WHERE gateway_id = %s AND seq = %s),"
            " (SELECT hash FROM records WHERE gateway_id = %s AND seq = %s),"
            " (SELECT prev_hash FROM records WHERE gateway_id = %s AND seq = %s)",
            (arrival.record_id, gateway_id, seq, gateway_id, seq - 1, gateway_id, seq + 1),
        )
        assert row is not None  # a SELECT without FROM always returns its one row
        judgement = judge(arrival, Facts(key, *row))
        if judgement.decision in (Decision.STORE, Decision.STORE_SUSPECT):
            ok = judgement.decision is Decision.STORE
            await self._insert_record(tx, arrival, judgement.hash, "ok" if ok else "suspect")
            if refused:
                await tx.execute(
                    "UPDATE alarms SET resolved_at = %s, resolution = %s WHERE record_id = %s"
                    " AND kind = %s AND resolved_at IS NULL",
                    (now_text(), "stored once its gateway's key was trusted", arrival.record_id,
                     AlarmKind.UNKNOWN_GATEWAY.value),
                )  # fmt: skip
        await self.raise_alarms(judgement.alarms, tx)
        return Outcome(arrival, judgement.decision, judgement.alarms)

    async def _insert_record(self, tx: Tx, arrival: Arrival, digest: str, status: str) -> None:
        r = arrival.record
        await tx.execute(
            "INSERT INTO records (record_id, gateway_id, seq, station, lane, kind,"
            " inspection_id, item_code, attempt, verdict, status, hash, prev_hash, payload,"
            " received_at, receiver) VALUES"
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                arrival.record_id,
                arrival.gateway_id,
                arrival.seq,
                r["station"],
                r["lane"],
                r.get("kind", "item"),
                r.get("inspection_id"),
                r["item_code"],
                r.get("attempt", 1),
                r["verdict"],
                status,
                digest,
                r.get("prev_hash", ""),
                payload_text(arrival.payload),
                now_text(),
                self.receiver,
            ),
        )

    async def raise_alarms(self, alarms: Iterable[Alarm], tx: Tx | None = None) -> None:
        """Store alarms (in ``tx``, or a transaction of their own); a known one counts up."""
        alarms = list(alarms)
        if not alarms:
            return
        if tx is None:
            async with self.db.transaction() as own:
                await self.raise_alarms(alarms, own)
            return
        now = now_text()
        for alarm in alarms:
            payload = payload_text(alarm.payload) if alarm.payload is not None else None
            await tx.execute(
                "INSERT INTO alarms (dedupe, kind, gateway_id, lane, seq, seq_last, record_id,"
                " detail, payload, first_seen, last_seen, occurrences, receiver) VALUES"
                " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 1, %s) ON CONFLICT (dedupe)"
                " DO UPDATE SET last_seen = excluded.last_seen,"
                " occurrences = alarms.occurrences + 1",
                (
                    alarm.dedupe,
                    alarm.kind.value,
                    alarm.gateway_id,
                    alarm.lane,
                    alarm.seq,
                    alarm.seq_last,
                    alarm.record_id,
                    alarm.detail,
                    payload,
                    now,
                    now,
                    self.receiver,
                ),
            )

    async def register_state(
        self, lane: str, state: dict[str, Any], payload: bytes, trust_first_use: bool
    ) -> Alarm | None:
        """Note a gateway's birth or will; register its key on first use (tofu).

        A state counts only when the gateway's trusted key signed it (on first use: the
        key it announces, which proves the gateway holds it); anything else is a
        ``forged_state`` alarm and changes nothing. A lane belongs to the first gateway
        that registered a key on it: another gateway id announcing itself there is a
        ``lane_claimed`` alarm and gets no key on first use (a replaced edge box is
        pinned in ``trust.keys`` by a technician).
        """
        gateway_id = str(state["gateway_id"])
        announced = state.get("public_key")
        now = now_text()
        async with self.db.transaction() as tx:
            # two receivers may see a new gateway's birth at once: insert, then lock
            await tx.execute(
                "INSERT INTO gateways (gateway_id, first_seen, last_seen) VALUES (%s, %s, %s)"
                " ON CONFLICT (gateway_id) DO NOTHING",
                (gateway_id, now, now),
            )
            await tx.lock_gateways([gateway_id])
            row = await tx.one(
                "SELECT public_key, key_source FROM gateways WHERE gateway_id = %s", (gateway_id,)
            )
            assert row is not None  # inserted above
            trusted, source = row
            if trusted is not None and announced and announced != trusted:
                # another key for a known gateway (a re-keyed box, or an impostor): alarmed,
                # and its state is not taken (the trusted key did not sign it)
                pinned = source == "pinned"
                changed = key_alarm(gateway_id, lane, trusted, announced, payload, pinned)
                await self.raise_alarms([changed] if changed else [], tx)
                return changed
            forged = state_forgery(gateway_id, lane, state, trusted or announced, payload)
            if forged is not None:
                await self.raise_alarms([forged], tx)
                return forged
            if trusted is None and announced and trust_first_use:
                owner = await tx.one(
                    "SELECT gateway_id FROM gateways WHERE station = %s AND lane = %s"
                    " AND gateway_id <> %s AND public_key IS NOT NULL",
                    (state.get("station"), lane, gateway_id),
                )
                if owner is not None:
                    claimed = lane_claimed(gateway_id, lane, str(owner[0]), payload)
                    await self.raise_alarms([claimed], tx)
                    return claimed
                trusted, source = announced, "first_use"
            await tx.execute(
                "UPDATE gateways SET station = %s, lane = %s, online = %s, session_id = %s,"
                " state_payload = %s, last_seen = %s, public_key = %s, key_source = %s"
                " WHERE gateway_id = %s",
                (
                    state.get("station"),
                    lane,
                    1 if state.get("online") else 0,
                    state.get("session_id"),
                    payload_text(payload),
                    now,
                    trusted,
                    source,
                    gateway_id,
                ),
            )
            alarm = None
            if announced:
                pinned = source == "pinned"
                alarm = key_alarm(gateway_id, lane, trusted, announced, payload, pinned)
                await self.raise_alarms([alarm] if alarm else [], tx)
        return alarm

    async def sweep_gaps(self, grace_s: float) -> list[Alarm]:
        """Alarm the sequence gaps older than ``grace_s``; resolve gaps filled late."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=grace_s)).isoformat(timespec="microseconds")
        alarms: list[Alarm] = []
        async with self.db.transaction() as tx:
            rows = await tx.all("SELECT gateway_id, contiguous_seq FROM gateways")
            await tx.lock_gateways([r[0] for r in rows])
            for gateway_id, watermark in rows:
                alarms.extend(await self._sweep_one(tx, gateway_id, watermark, cutoff))
            await self._resolve_filled(tx)
        return alarms

    async def _sweep_one(
        self, tx: Tx, gateway_id: str, watermark: int | None, cutoff: str
    ) -> list[Alarm]:
        rows = await tx.all(
            "SELECT seq, received_at, lane FROM records WHERE gateway_id = %s AND seq > %s"
            " ORDER BY seq",
            (gateway_id, -1 if watermark is None else watermark),
        )
        if not rows:
            return []
        sweep = find_gaps(watermark, [(s, at) for s, at, _ in rows], cutoff)
        if sweep.watermark != watermark:
            await tx.execute(
                "UPDATE gateways SET contiguous_seq = %s WHERE gateway_id = %s",
                (sweep.watermark, gateway_id),
            )
        alarms = [_gap_alarm(gateway_id, rows[0][2], gap) for gap in sweep.gaps]
        await self.raise_alarms(alarms, tx)
        return alarms

    async def _resolve_filled(self, tx: Tx) -> None:
        """A gap whose records all arrived after all (very late) is resolved, not erased."""
        gaps = await tx.all(
            "SELECT dedupe, gateway_id, seq, seq_last FROM alarms"
            " WHERE kind = %s AND resolved_at IS NULL",
            (AlarmKind.SEQUENCE_GAP.value,),
        )
        for dedupe, gateway_id, first, last in gaps:
            row = await tx.one(
                "SELECT COUNT(*) FROM records WHERE gateway_id = %s AND seq BETWEEN %s AND %s",
                (gateway_id, first, last),
            )
            if row is not None and row[0] == last - first + 1:
                await tx.execute(
                    "UPDATE alarms SET resolved_at = %s, resolution = %s WHERE dedupe = %s",
                    (now_text(), "the missing records arrived late", dedupe),
                )

    # reading -------------------------------------------------------------------------
    async def open_alarm_counts(self) -> dict[str, int]:
        """Unresolved alarms by kind."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                "SELECT kind, COUNT(*) FROM alarms WHERE resolved_at IS NULL GROUP BY kind"
            )
        return {kind: int(count) for kind, count in rows}

    async def inspection_records(self, inspection_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(status, record) of an inspection's records, in gateway sequence order."""
        async with self.db.transaction() as tx:
            rows = await tx.all(
                "SELECT status, payload FROM records WHERE inspection_id = %s"
                " ORDER BY gateway_id, seq",
                (inspection_id,),
            )
        return [(status, json.loads(payload)) for status, payload in rows]


def _gap_alarm(gateway_id: str, lane: str, gap: Gap) -> Alarm:
    count = gap.last - gap.first + 1
    span = f"seq {gap.first}" if count == 1 else f"seq {gap.first}..{gap.last}"
    return Alarm(
        AlarmKind.SEQUENCE_GAP,
        f"{span} missing ({count} record{'s' if count > 1 else ''}): deleted or lost",
        gateway_id=gateway_id,
        lane=lane,
        seq=gap.first,
        seq_last=gap.last,
    )
