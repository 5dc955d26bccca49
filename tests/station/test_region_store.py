"""The regional database (``database.partitions: monthly``) on a real PostgreSQL: records
partitioned by the month of their UUIDv7, the record id still unique across partitions,
the regulator's columns and indexes, and two regional writers storing each record once."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
import yaml

from gateway.errors import ConfigError
from station.checks import Arrival, Decision, parse_arrival
from station.config import load_station_config
from station.store import RecordStore, StoreUnavailable
from station.store.partitions import MONTHS_AHEAD, month_start, months_around, uuid7_floor
from tests.station.postgres import Postgres
from tests.station.signed import STATION, SigningGateway


def arrivals(gw: SigningGateway, *payloads: bytes) -> list[Arrival]:
    parsed = [parse_arrival(gw.lane, gw.station, p) for p in payloads]
    assert all(isinstance(p, Arrival) for p in parsed), parsed
    return parsed  # type: ignore[return-value]


async def registered(store: RecordStore, gw: SigningGateway) -> None:
    state = json.loads(gw.birth())
    assert await store.register_state(gw.lane, state, gw.birth(), trust_first_use=True) is None


async def rows(store: RecordStore, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with store.db.transaction() as tx:
        return await tx.all(sql, params)


@pytest.fixture
async def region(postgres: Postgres) -> AsyncIterator[RecordStore]:
    opened = await RecordStore.open(postgres.database(), "region-a", "monthly")
    yield opened
    await opened.close()


def test_month_bounds_are_uuid7_prefixes() -> None:
    start = month_start(2026, 12)
    assert (start, month_start(2026, 13)) == (
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    floor = uuid7_floor(start)
    assert floor == f"{int(start.timestamp() * 1000):012x}"[:8] + floor[8:]
    assert floor.endswith("-0000-0000-000000000000") and len(floor) == 36
    assert months_around(datetime(2026, 1, 15, tzinfo=UTC), 1, 2) == [
        (2025, 12), (2026, 1), (2026, 2), (2026, 3),
    ]  # fmt: skip


async def test_records_go_to_their_month_and_are_stored_once(region: RecordStore) -> None:
    gw = SigningGateway("lanegw-4401001-L1", "L1")
    await registered(region, gw)
    batch = arrivals(gw, *(gw.record() for _ in range(4)))
    assert [o.decision for o in await region.ingest(batch)] == [Decision.STORE] * 4
    again = await region.ingest([batch[2], *batch])
    assert {o.decision for o in again} == {Decision.DUPLICATE}
    now = datetime.now(UTC)
    placed = await rows(region, "SELECT tableoid::regclass::text, COUNT(*) FROM records GROUP BY 1")
    assert placed == [(f"records_{now:%Y_%m}", 4)]
    # the database refuses a second row with a record id, whatever partition it would go to
    record_id = batch[0].record_id
    with pytest.raises(StoreUnavailable, match="duplicate key"):
        async with region.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO records (record_id, gateway_id, seq, station, lane, kind,"
                " item_code, attempt, verdict, status, hash, prev_hash, payload, received_at,"
                " receiver) SELECT record_id, gateway_id, seq + 1000, station, lane, kind,"
                " item_code, attempt, verdict, status, hash, prev_hash, payload, received_at,"
                " receiver FROM records WHERE record_id = %s",
                (record_id,),
            )
    # the regulator's time column, generated from the evidence
    finished = json.loads(batch[0].payload)["finished_at"]
    stored = await rows(region, "SELECT finished_at FROM records WHERE record_id = %s", record_id)
    assert stored == [(datetime.fromisoformat(finished),)]


async def test_the_months_ahead_exist_and_odd_ids_go_to_the_default(region: RecordStore) -> None:
    now = datetime.now(UTC)
    partitions = (
        "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'records'::regclass"
    )
    names = {str(r[0]) for r in await rows(region, partitions)}
    expected = {f"records_{y:04d}_{m:02d}" for y, m in months_around(now, 1, MONTHS_AHEAD)}
    assert names == {*expected, "records_default"}
    gw = SigningGateway("lanegw-4401001-L2", "L2")
    await registered(region, gw)
    # an id that is no UUIDv7, and a value PostgreSQL's jsonb would refuse: stored anyway
    odd = gw.record(record_id="legacy-0001", item_name="nul \u0000 inside")
    assert [o.decision for o in await region.ingest(arrivals(gw, odd))] == [Decision.STORE]
    placed = await rows(region, "SELECT tableoid::regclass::text, finished_at IS NOT NULL"
                        " FROM records")  # fmt: skip
    assert placed == [("records_default", True)]
    await region.maintain()  # nothing to do within the month: no error, no new table
    assert {str(r[0]) for r in await rows(region, partitions)} == names
    # a month later, the sweep's call creates the month now MONTHS_AHEAD ahead
    await region.maintain(month_start(now.year, now.month + 1))
    later = month_start(now.year, now.month + 1 + MONTHS_AHEAD)
    assert {str(r[0]) for r in await rows(region, partitions)} == {*names, f"records_{later:%Y_%m}"}


async def test_failed_items_of_a_day_by_station(region: RecordStore) -> None:
    a = SigningGateway("lanegw-4401001-L1", "L1")
    b = SigningGateway("lanegw-4401002-L1", "L1", station="4401002")
    for gw in (a, b):
        await registered(region, gw)
    await region.ingest(arrivals(a, a.record(verdict="fail"), a.record(), a.record(verdict="fail")))
    await region.ingest(arrivals(b, b.record(verdict="fail"), b.record()))
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    failed = await rows(
        region,
        "SELECT station, COUNT(*) FROM records WHERE verdict = 'fail' AND kind = 'item'"
        " AND finished_at >= %s AND finished_at < %s + interval '1 day'"
        " GROUP BY station ORDER BY station",
        today,
        today,
    )
    assert failed == [(STATION, 2), ("4401002", 1)]


async def test_every_record_of_a_plate_is_found_by_its_index(region: RecordStore) -> None:
    a = SigningGateway("lanegw-4401001-L1", "L1")
    b = SigningGateway("lanegw-4401002-L1", "L1", station="4401002")
    for gw in (a, b):
        await registered(region, gw)
    await region.ingest(arrivals(a, a.record(plate="粤A12345"), a.record(plate="粤B00001")))
    await region.ingest(arrivals(b, b.record("44010022026112901", plate="粤A12345"), b.record()))
    found = await rows(
        region,
        "SELECT station, inspection_id FROM records WHERE plate = %s ORDER BY station",
        "粤A12345",
    )
    assert found == [(STATION, "44010012026112901"), ("4401002", "44010022026112901")]
    indexes = await rows(
        region,
        "SELECT indexname FROM pg_indexes WHERE tablename LIKE 'records_%%'"
        " AND indexdef LIKE '%%(plate, finished_at)%%'",
    )
    assert len(indexes) >= 1 + MONTHS_AHEAD  # each month's partition has it


async def test_two_regional_writers_store_each_record_once(postgres: Postgres) -> None:
    """Two receivers' connections, one transaction per batch of several gateways each,
    ingest overlapping batches at once: no deadlock, each record once, no false alarm."""
    url = postgres.database()
    a = await RecordStore.open(url, "region-a", "monthly", "per_batch")
    b = await RecordStore.open(url, "region-b", "monthly", "per_batch")
    try:
        gateways = [SigningGateway(f"lanegw-4401001-L{n}", f"L{n}") for n in range(1, 4)]
        records: list[Arrival] = []
        for gw in gateways:
            await registered(a, gw)
        for _ in range(20):  # interleaved, as a shared subscription hands them out
            for gw in gateways:
                records += arrivals(gw, gw.record())

        async def feed(store: RecordStore, part: list[Arrival]) -> list[Decision]:
            decisions = []
            for i in range(0, len(part), 7):
                decisions += [o.decision for o in await store.ingest(part[i : i + 7])]
                await asyncio.sleep(0)
            return decisions

        left, right = await asyncio.gather(feed(a, records[:40]), feed(b, records[20:]))
        assert (left + right).count(Decision.STORE) == 60
        assert (left + right).count(Decision.DUPLICATE) == 20
        counted = await rows(a, "SELECT gateway_id, COUNT(*), COUNT(DISTINCT seq), MAX(seq)"
                             " FROM records GROUP BY 1 ORDER BY 1")  # fmt: skip
        assert counted == [(gw.gateway_id, 20, 20, 20) for gw in gateways]
        assert await rows(a, "SELECT COUNT(*) FROM alarms") == [(0,)]
        assert await a.sweep_gaps(grace_s=0) == []
    finally:
        await a.close()
        await b.close()


async def test_an_unpartitioned_records_table_is_refused(postgres: Postgres) -> None:
    url = postgres.database()
    station = await RecordStore.open(url, "station")  # the station layout
    await station.close()
    with pytest.raises(StoreUnavailable, match="unpartitioned"):
        await RecordStore.open(url, "region", "monthly")
    with psycopg.connect(url) as conn:
        kind = conn.execute("SELECT relkind FROM pg_class WHERE relname = 'records'").fetchone()
    assert kind == ("r",)


def test_the_region_example_config_is_valid() -> None:
    example = Path(__file__).parents[2] / "config" / "region.example.yaml"
    config = load_station_config(example)
    assert config.regional and config.client_id.startswith("lanegw-region-")
    assert (config.database.partitions, config.database.transactions) == ("monthly", "per_batch")
    assert config.mqtt.acknowledge and not config.web.enabled


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"web": {"enabled": True}}, "set web.enabled false on a regional receiver"),
        ({"database": {"url": "sqlite:x.db", "partitions": "monthly"}}, "needs a postgresql"),
        ({"station": "4401+"}, "station"),
    ],
)
def test_regional_config_mistakes_are_refused(
    tmp_path: Path, changes: dict[str, object], error: str
) -> None:
    config = {"station": "+", "web": {"enabled": False}, **changes}
    path = tmp_path / "region.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as info:
        load_station_config(path)
    assert error in " ".join(map(str, info.value.problems))
