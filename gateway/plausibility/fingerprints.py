"""Curve fingerprints seen on this lane, kept across restarts, to spot replayed curves."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS curves (
    fingerprint TEXT PRIMARY KEY,
    evidence TEXT NOT NULL,
    inspection_id TEXT,
    item_code TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    seen_at TEXT NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class SeenCurve:
    """Where a fingerprint was first recorded."""

    evidence: str
    inspection_id: str | None
    item_code: str
    attempt: int
    seen_at: str


class FingerprintBook:
    """The first occurrence of every curve fingerprint, the newest ``capacity`` kept."""

    def __init__(self, path: Path, capacity: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._capacity = capacity

    def remember(
        self,
        fingerprint: str,
        evidence: str,
        inspection_id: str | None,
        item_code: str,
        attempt: int = 1,
    ) -> SeenCurve | None:
        """Record the fingerprint; return its earlier occurrence in another measurement.

        The same item of the same attempt seen again (its record retried) is the same
        measurement, not a repeat; the evidence hash does not tell, as a replayed curve
        with its sample times makes the very same evidence document.
        """
        row = self._db.execute(
            "SELECT evidence, inspection_id, item_code, attempt, seen_at FROM curves "
            "WHERE fingerprint=?",
            (fingerprint,),
        ).fetchone()
        if row is not None:
            seen = SeenCurve(*row)
            same = (seen.inspection_id, seen.item_code, seen.attempt) == (
                inspection_id,
                item_code,
                attempt,
            )
            return None if same else seen
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._db.execute(
            "INSERT INTO curves VALUES (?, ?, ?, ?, ?, ?)",
            (fingerprint, evidence, inspection_id, item_code, attempt, now),
        )
        self._db.execute(
            "DELETE FROM curves WHERE rowid <= (SELECT max(rowid) FROM curves) - ?",
            (self._capacity,),
        )
        return None

    def close(self) -> None:
        """Close the database."""
        self._db.close()
