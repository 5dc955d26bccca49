"""The two databases behind the store, behind one small interface.

SQL is written once, in the subset both speak (``%s`` placeholders, ``ON CONFLICT``);
the SQLite side turns the placeholders into ``?``. Each transaction is serialised per
gateway: PostgreSQL locks the gateways' rows (``FOR UPDATE``, in a fixed order, so two
receivers never deadlock), SQLite takes its write lock at ``BEGIN IMMEDIATE``.
SQLite runs in the event loop: its transactions are short, and WAL with
``synchronous=FULL`` makes a commit durable before the ack goes out.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import psycopg

from gateway.errors import GatewayError

Row = tuple[Any, ...]
BUSY_TIMEOUT_MS = 10_000


class StoreUnavailable(GatewayError):
    """The database failed a transaction (unreachable, full, refused a write): nothing of
    it was committed, so nothing of it is acknowledged."""


class Tx(Protocol):
    """One open transaction."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...
    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...
    async def lock_gateways(self, gateway_ids: Sequence[str]) -> None: ...


class Database(Protocol):
    """A connection that opens transactions."""

    dialect: str

    def transaction(self) -> contextlib.AbstractAsyncContextManager[Tx]: ...
    async def close(self) -> None: ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql.replace("%s", "?"), tuple(params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self._conn.execute(sql.replace("%s", "?"), tuple(params)).fetchone()
        return row

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._conn.execute(sql.replace("%s", "?"), tuple(params)).fetchall())

    async def lock_gateways(self, gateway_ids: Sequence[str]) -> None:
        """BEGIN IMMEDIATE already holds the database's write lock."""


class SqliteDatabase:
    """An SQLite file; several receivers may share it (one writer at a time)."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1e3)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open {path}: {exc}") from None
        self._lock = asyncio.Lock()  # the receiver and the gap sweep share the connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._lock, self._transaction() as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Tx]:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"sqlite: {exc}") from None
        try:
            yield _SqliteTx(self._conn)
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StoreUnavailable(f"sqlite: {exc}") from None
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._conn.execute("ROLLBACK")
            raise StoreUnavailable(f"sqlite commit: {exc}") from None

    async def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


class _PostgresTx:
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._conn.execute(sql, tuple(params))

    async def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        cursor = await self._conn.execute(sql, tuple(params))
        return await cursor.fetchone()

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cursor = await self._conn.execute(sql, tuple(params))
        return await cursor.fetchall()

    async def lock_gateways(self, gateway_ids: Sequence[str]) -> None:
        await self._conn.execute(
            "SELECT gateway_id FROM gateways WHERE gateway_id = ANY(%s) "
            "ORDER BY gateway_id FOR UPDATE",
            (sorted(set(gateway_ids)),),
        )


class PostgresDatabase:
    """A PostgreSQL database (psycopg 3, async); shared by every receiver of a station."""

    dialect = "postgresql"

    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()  # one transaction at a time on the connection

    @classmethod
    async def connect(cls, url: str) -> PostgresDatabase:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from None
        return cls(conn)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        try:
            async with self._lock, self._conn.transaction():
                yield _PostgresTx(self._conn)
        except psycopg.Error as exc:  # the transaction was rolled back
            raise StoreUnavailable(f"PostgreSQL: {exc}") from None

    async def close(self) -> None:
        with contextlib.suppress(psycopg.Error):  # closing a broken connection
            await self._conn.close()


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///abs/path`` or ``sqlite:rel/path`` URL; None for others."""
    if not url.startswith("sqlite:"):
        return None
    return Path(url.removeprefix("sqlite:").removeprefix("//"))  # sqlite:///abs -> /abs


async def open_database(url: str) -> Database:
    """``sqlite:///abs/path``, ``sqlite:rel/path`` or ``postgresql://...``."""
    path = sqlite_path(url)
    if path is None:
        return await PostgresDatabase.connect(url)
    return SqliteDatabase(path)
