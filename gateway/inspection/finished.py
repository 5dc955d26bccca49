"""Which inspections this lane has finished, kept across restarts.

An order replayed after its inspection finished (a station resending, a script's loop,
an attacker's replay) must not run again as the same attempt: it would produce a second
set of records for one (inspection, attempt), and a later summary would silently
supersede the first. The runner refuses it unless the attempt number is new (a retest
is attempt n + 1). The highest finished attempt of each inspection id is kept in
``{state_dir}/inspections.sqlite3`` (WAL, ``synchronous=FULL``: a commit survives a power
cut), the newest ``KEEP`` ids; the runner writes on a worker thread, once per finished
inspection, so the commit's fsync never stalls the event loop; lookups are in memory.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Final

import structlog

log = structlog.get_logger("lanegw.inspection")

#: inspection ids remembered (a lane does a few hundred a day: years of them)
KEEP: Final = 100_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS finished (
    inspection_id TEXT PRIMARY KEY,
    attempt INTEGER NOT NULL,
    finished_at REAL NOT NULL
);
"""


class FinishedInspections:
    """The highest finished attempt per inspection id, durable."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        rows = self._db.execute("SELECT inspection_id, attempt FROM finished").fetchall()
        self._attempts: dict[str, int] = {str(i): int(a) for i, a in rows}
        self._lock = asyncio.Lock()  # one write at a time (the worker thread owns the db)

    def last_attempt(self, inspection_id: str) -> int | None:
        """The highest attempt of ``inspection_id`` that finished (None: none did)."""
        return self._attempts.get(inspection_id)

    async def remember(self, inspection_id: str, attempt: int) -> None:
        """Record a finished inspection (durable when this returns)."""
        previous = self._attempts.get(inspection_id, 0)
        self._attempts[inspection_id] = max(previous, attempt)
        prune = len(self._attempts) > KEEP + KEEP // 100  # now and then, not every time
        async with self._lock:
            try:
                kept = await asyncio.to_thread(self._write, inspection_id, attempt, prune)
            except sqlite3.Error as exc:  # a full disk: kept in memory, refused until restart
                log.error("finished_inspection_not_stored", inspection_id=inspection_id,
                          error=str(exc))  # fmt: skip
                return
        if kept is not None:
            self._attempts = kept

    def _write(self, inspection_id: str, attempt: int, prune: bool) -> dict[str, int] | None:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT INTO finished (inspection_id, attempt, finished_at) VALUES (?, ?, ?)"
                " ON CONFLICT(inspection_id) DO UPDATE SET"
                " attempt = MAX(attempt, excluded.attempt), finished_at = excluded.finished_at",
                (inspection_id, attempt, time.time()),
            )
            if not prune:
                return None
            self._db.execute(
                "DELETE FROM finished WHERE inspection_id IN (SELECT inspection_id FROM finished"
                " ORDER BY finished_at DESC LIMIT -1 OFFSET ?)",
                (KEEP,),
            )
            rows = self._db.execute("SELECT inspection_id, attempt FROM finished").fetchall()
        return {str(i): int(a) for i, a in rows}

    def close(self) -> None:
        """Close the database."""
        self._db.close()
