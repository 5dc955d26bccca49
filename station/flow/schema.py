"""The flow's tables, next to the receiver's (station/store/schema.py), in SQL both
SQLite and PostgreSQL accept; ``{blob}`` is each one's type for bytes. Times are UTC
ISO 8601 text (they sort as text); structured values are JSON text."""

from __future__ import annotations

from typing import Final

TABLES: Final = (
    # accounts: argon2id hashes only; a user is disabled, never deleted (the audit names it)
    """
    CREATE TABLE IF NOT EXISTS flow_users (
        username TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
    )
    """,
    # sessions: the cookie holds a random token, the table its SHA-256
    """
    CREATE TABLE IF NOT EXISTS flow_sessions (
        token_hash TEXT PRIMARY KEY,
        username TEXT,
        csrf TEXT NOT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS flow_audit (
        audit_id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        username TEXT,
        role TEXT,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT NOT NULL,
        address TEXT
    )
    """,
    "CREATE INDEX IF NOT EXISTS flow_audit_at ON flow_audit (at)",
    # the daily sequence of the serial numbers (检验流水号)
    """
    CREATE TABLE IF NOT EXISTS flow_serials (
        prefix TEXT PRIMARY KEY,
        last INTEGER NOT NULL
    )
    """,
    # appointments (预约, 18C07): a booking code fills the registration form
    """
    CREATE TABLE IF NOT EXISTS flow_bookings (
        code TEXT PRIMARY KEY,
        vehicle TEXT NOT NULL,
        created_at TEXT NOT NULL,
        used_by TEXT
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS flow_inspections (
        serial TEXT PRIMARY KEY,
        attempt INTEGER NOT NULL,
        registration TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL,
        owner_hash TEXT NOT NULL,
        owner_expires TEXT NOT NULL,
        verdict TEXT,
        decided_by TEXT,
        decided_at TEXT,
        note TEXT,
        updated_at TEXT NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS flow_inspections_owner ON flow_inspections (owner_hash)",
    # one row per 检验次数: the items of that attempt, where it went, its state
    """
    CREATE TABLE IF NOT EXISTS flow_attempts (
        serial TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        lane_items TEXT NOT NULL,
        manual_items TEXT NOT NULL,
        photos TEXT NOT NULL,
        lane TEXT,
        dispatch_state TEXT NOT NULL,
        dispatch_error TEXT,
        dispatched_at TEXT,
        manual_state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (serial, attempt)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS flow_photos (
        sha256 TEXT NOT NULL,
        serial TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        code TEXT NOT NULL,
        mime TEXT NOT NULL,
        data {blob} NOT NULL,
        taken_by TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        PRIMARY KEY (serial, attempt, code, sha256)
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS flow_lane_locks (
        lane TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        username TEXT NOT NULL,
        at TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE IF NOT EXISTS flow_reports (
        serial TEXT PRIMARY KEY,
        sha256 TEXT NOT NULL,
        pdf {blob} NOT NULL,
        created_at TEXT NOT NULL,
        created_by TEXT NOT NULL
    )
    """,
)


def statements(dialect: str) -> list[str]:
    """The CREATE statements for ``dialect`` ('sqlite' or 'postgresql')."""
    blob = "BYTEA" if dialect == "postgresql" else "BLOB"
    return [table.replace("{blob}", blob) for table in TABLES]
