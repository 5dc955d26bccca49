"""Fixtures of the station tests: one PostgreSQL cluster for the session, a fresh
database per test, and stores on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from station.store import RecordStore
from tests.station.postgres import Postgres


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    cluster = Postgres()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:{tmp_path}/station.sqlite3"
    cluster: Postgres = request.getfixturevalue("postgres")
    return cluster.database()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[RecordStore]:
    opened = await RecordStore.open(database_url, "test-receiver")
    yield opened
    await opened.close()
