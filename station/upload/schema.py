"""The uploader's tables, in SQL both SQLite and PostgreSQL accept (as
``station.store.schema``); created by ``UploadStore.setup``. Times are UTC ISO 8601 text."""

from __future__ import annotations

from typing import Final

TABLES: Final = (
    """
    CREATE TABLE IF NOT EXISTS uploads (
        upload_id TEXT PRIMARY KEY,
        step_key TEXT NOT NULL UNIQUE,
        platform TEXT NOT NULL,
        chain TEXT NOT NULL,
        ord BIGINT NOT NULL,
        call TEXT NOT NULL,
        inspection_id TEXT,
        lane TEXT,
        item_code TEXT,
        attempt INTEGER,
        inputs TEXT NOT NULL,
        status TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        next_try_at TEXT NOT NULL,
        lease_until TEXT,
        claimed_by TEXT,
        keystr TEXT,
        code TEXT,
        message TEXT,
        request TEXT,
        response TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        accepted_at TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS uploads_chain ON uploads (chain, ord)",
    "CREATE INDEX IF NOT EXISTS uploads_status ON uploads (status, next_try_at)",
    "CREATE INDEX IF NOT EXISTS uploads_inspection ON uploads (inspection_id)",
    # every exchange with a platform, as sent and as answered (the evidence)
    """
    CREATE TABLE IF NOT EXISTS upload_attempts (
        upload_id TEXT NOT NULL,
        n INTEGER NOT NULL,
        tried_at TEXT NOT NULL,
        finished_at TEXT,
        outcome TEXT NOT NULL,
        detail TEXT,
        request TEXT NOT NULL,
        response TEXT,
        sender TEXT NOT NULL,
        PRIMARY KEY (upload_id, n)
    )
    """,
    # the records already turned into steps
    """
    CREATE TABLE IF NOT EXISTS upload_planned (
        record_id TEXT PRIMARY KEY,
        planned_at TEXT NOT NULL
    )
    """,
    # the vehicle of an inspection, from its start (plate, VIN: result records carry none)
    """
    CREATE TABLE IF NOT EXISTS upload_vehicles (
        inspection_id TEXT PRIMARY KEY,
        lane TEXT,
        plate TEXT,
        vin TEXT,
        category TEXT,
        attempt INTEGER,
        items TEXT,
        seen_at TEXT NOT NULL
    )
    """,
    # values an answer gave that later calls of the chain send (inspregid, ...)
    """
    CREATE TABLE IF NOT EXISTS upload_context (
        chain TEXT NOT NULL,
        name TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (chain, name)
    )
    """,
    # the regulator locks last sent to each lane
    """
    CREATE TABLE IF NOT EXISTS upload_locks (
        lane TEXT PRIMARY KEY,
        locks TEXT NOT NULL,
        session_id TEXT,
        sent_at TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS upload_records_received ON records (received_at)",
)
