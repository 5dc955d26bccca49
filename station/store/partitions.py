"""The regional database's ``records``: partitioned by month, indexed for the regulator
(PostgreSQL only; ``database.partitions: monthly``, docs/scale.md).

A record id is a UUIDv7, whose text begins with the millisecond it was made (48 bits in
hex) and so sorts by time. Partitioning by range of ``record_id`` therefore cuts the table
by month *and* keeps ``record_id`` the primary key across every partition: the database
itself refuses a second copy, as the station's does. (A partition key must be part of
every unique key; a month taken from another column would leave ``record_id`` unique
per month only.) ``(gateway_id, seq)`` cannot be unique across partitions for the same
reason: every writer holds its gateway's row lock (``FOR UPDATE``) while it checks and
inserts, which keeps it unique, and its index serves those look-ups.

Ids outside the months created (a gateway clock years off, an id that is no UUIDv7) go to
the default partition, so an insert never fails for want of a partition; months are
created ``MONTHS_AHEAD`` in advance, so the default stays (nearly) empty and a new month
can always be created.

The regulator's columns are generated from the payload as stored (the evidence stays the
one source): ``finished_at`` as a timestamp, for "every record of a station on a day" and
"failed items of a day"; ``plate`` (the records of an inspection carry the vehicle's) for
"every inspection of a vehicle".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

#: months created after the current one (at start and by every receiver's sweep)
MONTHS_AHEAD: Final = 2
#: months created before the current one at start (records still arriving late)
MONTHS_BACK: Final = 1

# parsing the stored payload never fails an insert: a value that is not a time is NULL
FUNCTIONS: Final = (
    r"""
    CREATE OR REPLACE FUNCTION lanegw_record_time(payload text, field text)
    RETURNS timestamptz LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    SET timezone TO 'UTC' AS $$
    BEGIN
        RETURN (payload::json ->> field)::timestamptz;
    EXCEPTION WHEN others THEN  -- a \u0000 anywhere in the text stops ->> short
        BEGIN
            RETURN (replace(payload, '\u0000', '')::json ->> field)::timestamptz;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END;
    END $$
    """,
    r"""
    CREATE OR REPLACE FUNCTION lanegw_record_text(payload text, field text)
    RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
    BEGIN
        RETURN payload::json ->> field;
    EXCEPTION WHEN others THEN
        BEGIN
            RETURN replace(payload, '\u0000', '')::json ->> field;
        EXCEPTION WHEN others THEN
            RETURN NULL;
        END;
    END $$
    """,
)

RECORDS: Final = """
    CREATE TABLE IF NOT EXISTS records (
        record_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
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
        finished_at TIMESTAMPTZ
            GENERATED ALWAYS AS (lanegw_record_time(payload, 'finished_at')) STORED,
        plate TEXT GENERATED ALWAYS AS (lanegw_record_text(payload, 'plate')) STORED
    ) PARTITION BY RANGE (record_id)
"""
#: a regional database made before records carried the plate gets its column
PLATE_COLUMN: Final = (
    "ALTER TABLE records ADD COLUMN IF NOT EXISTS plate TEXT"
    " GENERATED ALWAYS AS (lanegw_record_text(payload, 'plate')) STORED"
)

# on the partitioned table: every partition gets them, present and future
INDEXES: Final = (
    # the store's look-ups: a record's neighbours in its gateway's chain, the gap sweep
    "CREATE INDEX IF NOT EXISTS records_gateway_seq ON records (gateway_id, seq)",
    # a station's records of a day (or a lane's: station, lane in the filter)
    "CREATE INDEX IF NOT EXISTS records_station_day ON records (station, finished_at)",
    # failed items of a day, province-wide or per item code
    "CREATE INDEX IF NOT EXISTS records_failed ON records (finished_at, item_code)"
    " WHERE verdict = 'fail' AND kind = 'item'",
    # every record of a vehicle (a regulator's first question about a plate), newest first
    "CREATE INDEX IF NOT EXISTS records_plate ON records (plate, finished_at)"
    " WHERE plate IS NOT NULL",
)

DEFAULT: Final = "CREATE TABLE IF NOT EXISTS records_default PARTITION OF records DEFAULT"


def statements() -> tuple[str, ...]:
    """The partitioned ``records`` with its indexes; run before the station's tables
    (whose ``CREATE TABLE IF NOT EXISTS records`` then leaves it as it is)."""
    return (*FUNCTIONS, RECORDS, PLATE_COLUMN, *INDEXES, DEFAULT)


def uuid7_floor(moment: datetime) -> str:
    """The smallest UUIDv7 text made at or after ``moment`` (to the millisecond)."""
    digits = f"{int(moment.timestamp() * 1000):012x}"
    return f"{digits[:8]}-{digits[8:]}-0000-0000-000000000000"


def month_start(year: int, month: int) -> datetime:
    """The first instant of a month (UTC), months counted past December."""
    year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
    return datetime(year, month, 1, tzinfo=UTC)


def partition_for(year: int, month: int) -> str:
    """``CREATE TABLE`` of one month's partition."""
    start, end = month_start(year, month), month_start(year, month + 1)
    return (
        f"CREATE TABLE IF NOT EXISTS records_{start:%Y_%m} PARTITION OF records"
        f" FOR VALUES FROM ('{uuid7_floor(start)}') TO ('{uuid7_floor(end)}')"
    )


def months_around(now: datetime, back: int, ahead: int) -> list[tuple[int, int]]:
    """(year, month) from ``back`` months before ``now``'s to ``ahead`` after it."""
    return [
        (start.year, start.month)
        for start in (month_start(now.year, now.month + n) for n in range(-back, ahead + 1))
    ]
