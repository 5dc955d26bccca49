"""The station database's tables, in SQL both SQLite and PostgreSQL accept.

Payloads are kept exactly as received (the evidence: a record's hash and signature are
checked on them). Times are UTC ISO 8601 text with microseconds, so they sort as text.
"""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = 1

TABLES: Final = (
    """
    CREATE TABLE IF NOT EXISTS meta (
        name TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )
    """,
    # one row per gateway: its trusted key, its last state, and the sequence number up
    # to which its records are known to be complete (or their gaps alarmed)
    """
    CREATE TABLE IF NOT EXISTS gateways (
        gateway_id TEXT PRIMARY KEY,
        station TEXT,
        lane TEXT,
        public_key TEXT,
        key_source TEXT,
        online INTEGER NOT NULL DEFAULT 0,
        session_id TEXT,
        state_payload TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        contiguous_seq BIGINT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS records (
        record_id TEXT PRIMARY KEY,
        gateway_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        station TEXT NOT NULL,
        lane TEXT NOT NULL,
        kind TEXT NOT NULL,
        inspection_id TEXT,
        item_code TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        verdict TEXT NOT NULL,
        status TEXT NOT NULL,
        hash TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at TEXT NOT NULL,
        receiver TEXT NOT NULL,
        UNIQUE (gateway_id, seq)
    )
    """,
    "CREATE INDEX IF NOT EXISTS records_inspection ON records (inspection_id)",
    # one row per problem (dedupe), counting its occurrences: a record resent every
    # minute raises one alarm, not a thousand
    """
    CREATE TABLE IF NOT EXISTS alarms (
        dedupe TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        gateway_id TEXT,
        lane TEXT,
        seq BIGINT,
        seq_last BIGINT,
        record_id TEXT,
        detail TEXT NOT NULL,
        payload TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        occurrences INTEGER NOT NULL,
        receiver TEXT NOT NULL,
        resolved_at TEXT,
        resolution TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS alarms_open ON alarms (resolved_at, kind)",
    "CREATE INDEX IF NOT EXISTS alarms_record ON alarms (record_id)",
)
