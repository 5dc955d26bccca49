"""The record store on both databases (SQLite file, real PostgreSQL server): stored
once, alarms with their evidence, keys on first use, gaps, and two writers at once."""

from __future__ import annotations

import asyncio
import base64
import json

from station.checks import AlarmKind, Arrival, Decision, parse_arrival
from station.status import read_status
from station.store import RecordStore
from tests.station.signed import STATION, SigningGateway, forged


def arrivals(*payloads: bytes, lane: str = "L1") -> list[Arrival]:
    parsed = [parse_arrival(lane, STATION, p) for p in payloads]
    assert all(isinstance(p, Arrival) for p in parsed)
    return parsed  # type: ignore[return-value]


async def registered(store: RecordStore, gw: SigningGateway) -> None:
    state = json.loads(gw.birth())
    assert await store.register_state(gw.lane, state, gw.birth(), trust_first_use=True) is None


async def count(store: RecordStore, sql: str, *params: object) -> int:
    async with store.db.transaction() as tx:
        row = await tx.one(sql, params)
    assert row is not None
    return int(row[0])


async def test_records_are_stored_once_and_duplicates_are_acked_again(store: RecordStore) -> None:
    gw = SigningGateway("gw-1", "L1")
    await registered(store, gw)
    batch = arrivals(*(gw.record() for _ in range(5)))
    outcomes = await store.ingest(batch)
    assert [o.decision for o in outcomes] == [Decision.STORE] * 5
    again = await store.ingest([batch[1], batch[3], *batch])  # resent, and twice in one batch
    assert {o.decision for o in again} == {Decision.DUPLICATE}
    assert all(o.acknowledged for o in again)
    assert await count(store, "SELECT COUNT(*) FROM records") == 5
    stored = await store.inspection_records("44010012026112901")
    assert [r["seq"] for _, r in stored] == [1, 2, 3, 4, 5]
    assert stored[0][1] == json.loads(batch[0].payload)  # kept as received


async def test_forgeries_and_unknown_gateways_become_alarms_not_records(store: RecordStore) -> None:
    gw, stranger = SigningGateway("gw-1", "L1"), SigningGateway("gw-x", "L1")
    await registered(store, gw)
    fake = forged(gw.record(), verdict="fail")
    outcomes = await store.ingest(arrivals(fake, stranger.record()))
    assert [o.decision for o in outcomes] == [Decision.REJECT, Decision.REJECT]
    assert not any(o.acknowledged for o in outcomes)
    # the same forgery again counts, it does not add a second alarm
    await store.ingest(arrivals(fake))
    status = await read_status(store)
    kinds = {a.kind: a for a in status.alarms}
    assert set(kinds) == {"bad_signature", "unknown_gateway"}
    assert kinds["bad_signature"].occurrences == 2
    assert await count(store, "SELECT COUNT(*) FROM records") == 0
    evidence = await count(
        store, "SELECT COUNT(*) FROM alarms WHERE kind = %s AND payload = %s",
        "bad_signature", fake.decode(),
    )  # fmt: skip
    assert evidence == 1


async def test_binary_garbage_is_kept_as_evidence(store: RecordStore) -> None:
    garbage = b"\x00\xff\xfe junk"
    alarm = parse_arrival("L1", STATION, garbage)
    assert not isinstance(alarm, Arrival)
    await store.raise_alarms([alarm])
    async with store.db.transaction() as tx:
        row = await tx.one("SELECT kind, payload FROM alarms")
    assert row is not None and row[0] == AlarmKind.MALFORMED.value
    assert base64.b64decode(row[1].removeprefix("base64:")) == garbage


async def test_a_key_is_trusted_on_first_use_and_a_new_one_is_alarmed(store: RecordStore) -> None:
    gw = SigningGateway("gw-1", "L1")
    await registered(store, gw)
    impostor = SigningGateway("gw-1", "L1")  # same id, other key
    alarm = await store.register_state(
        "L1", json.loads(impostor.birth()), impostor.birth(), trust_first_use=True
    )
    assert alarm is not None and alarm.kind is AlarmKind.KEY_CHANGED
    # the first key stays trusted: the impostor's records do not verify
    outcome = (await store.ingest(arrivals(impostor.record())))[0]
    assert outcome.alarms[0].kind is AlarmKind.BAD_SIGNATURE
    assert (await store.ingest(arrivals(gw.record())))[0].decision is Decision.STORE


async def test_pinned_keys_win_and_unpinned_gateways_are_unknown(store: RecordStore) -> None:
    gw, other = SigningGateway("gw-1", "L1"), SigningGateway("gw-2", "L2")
    await store.pin_keys({"gw-1": gw.public_key})
    for g in (gw, other):
        alarm = await store.register_state(g.lane, json.loads(g.birth()), g.birth(), False)
        assert (alarm is None) == (g is gw)
    assert (await store.ingest(arrivals(gw.record())))[0].decision is Decision.STORE
    rejected = (await store.ingest(arrivals(other.record(), lane="L2")))[0]
    assert rejected.alarms[0].kind is AlarmKind.UNKNOWN_GATEWAY
    status = await read_status(store)
    lines = {g.gateway_id: g for g in status.gateways}
    assert lines["gw-1"].key_source == "pinned" and lines["gw-1"].records == 1
    assert lines["gw-2"].key is None
    assert {a.kind for a in status.alarms} == {"unknown_gateway"}
    # a technician pins gw-2's key: its record, sent again, is stored; the alarm closes
    await store.pin_keys({"gw-2": other.public_key})
    assert (await store.ingest([rejected.arrival]))[0].decision is Decision.STORE
    assert (await read_status(store)).open_alarms == 0


async def test_a_deleted_record_is_a_gap_and_its_late_arrival_resolves_it(
    store: RecordStore,
) -> None:
    gw = SigningGateway("gw-1", "L1")
    await registered(store, gw)
    one, two, three, four = (gw.record() for _ in range(4))
    await store.ingest(arrivals(one, two, four))
    assert await store.sweep_gaps(grace_s=3600) == []  # may still come
    gaps = await store.sweep_gaps(grace_s=0)
    assert [(a.kind, a.seq, a.seq_last) for a in gaps] == [(AlarmKind.SEQUENCE_GAP, 3, 3)]
    assert await store.sweep_gaps(grace_s=0) == []  # reported once
    assert (await read_status(store)).open_alarms == 1
    await store.ingest(arrivals(three))
    await store.sweep_gaps(grace_s=0)
    assert (await read_status(store)).open_alarms == 0
    resolved = await count(
        store,
        "SELECT COUNT(*) FROM alarms WHERE resolution = %s",
        "the missing records arrived late",
    )
    assert resolved == 1


async def test_a_record_that_breaks_the_chain_is_stored_as_suspect(store: RecordStore) -> None:
    gw = SigningGateway("gw-1", "L1")
    await registered(store, gw)
    first = gw.record()
    gw.prev_hash = "e" * 64  # the gateway's chain state was tampered with
    outcomes = await store.ingest(arrivals(first, gw.record()))
    assert [o.decision for o in outcomes] == [Decision.STORE, Decision.STORE_SUSPECT]
    status = await read_status(store)
    assert status.gateways[0].suspect == 1
    assert [a.kind for a in status.alarms] == ["chain_break"]


async def test_two_writers_store_each_record_once(database_url: str) -> None:
    """Two receivers' connections ingest overlapping batches of one gateway at once."""
    gw = SigningGateway("gw-1", "L1")
    records = arrivals(*(gw.record() for _ in range(60)))
    a = await RecordStore.open(database_url, "receiver-a")
    b = await RecordStore.open(database_url, "receiver-b")
    try:
        await registered(a, gw)

        async def feed(store: RecordStore, part: list[Arrival]) -> list[Decision]:
            decisions = []
            for i in range(0, len(part), 7):
                decisions += [o.decision for o in await store.ingest(part[i : i + 7])]
                await asyncio.sleep(0)
            return decisions

        left, right = await asyncio.gather(feed(a, records[:40]), feed(b, records[20:]))
        assert (left + right).count(Decision.STORE) == 60
        assert (left + right).count(Decision.DUPLICATE) == 20
        assert await count(a, "SELECT COUNT(*) FROM records") == 60
        assert await count(a, "SELECT COUNT(*) FROM alarms") == 0  # no false chain break
        assert await a.sweep_gaps(grace_s=0) == []
    finally:
        await a.close()
        await b.close()


async def test_recent_inspections_newest_first_with_the_latest_summary(store: RecordStore) -> None:
    from station.inspections import recent_inspections

    l1, l2 = SigningGateway("gw-1", "L1"), SigningGateway("gw-2", "L2")
    for gw in (l1, l2):
        await registered(store, gw)
    await store.ingest(arrivals(l1.record("A"), l1.record("A", kind="summary", item_code="summary",
                                                          verdict="fail")))  # fmt: skip
    await store.ingest(arrivals(l1.record("A", attempt=2, kind="summary", item_code="summary")))
    await store.ingest(arrivals(l2.record("B"), lane="L2"))
    every = await recent_inspections(store, 10)
    assert [(i.inspection_id, i.lane, i.items, i.verdict) for i in every] == [
        ("B", "L2", 1, None),  # its summary has not arrived
        ("A", "L1", 1, "pass"),  # the retest's summary, not the first one's
    ]
    assert [i.inspection_id for i in await recent_inspections(store, 10, lane="L1")] == ["A"]
    assert len(await recent_inspections(store, 1)) == 1


async def test_recent_inspections_by_plate(store: RecordStore) -> None:
    """The plate each record carries is listed, and picks one vehicle's inspections."""
    from station.inspections import recent_inspections

    gw = SigningGateway("gw-1", "L1")
    await registered(store, gw)
    await store.ingest(arrivals(gw.record("A", plate="粤A12345")))
    await store.ingest(arrivals(gw.record("B", plate="粤B54321")))
    await store.ingest(arrivals(gw.record("C")))  # a gateway that sends no plate
    every = await recent_inspections(store, 10)
    assert [(i.inspection_id, i.plate) for i in every] == [
        ("C", None),
        ("B", "粤B54321"),
        ("A", "粤A12345"),
    ]
    mine = await recent_inspections(store, 10, plate="粤A12345")
    assert [i.inspection_id for i in mine] == ["A"]
    assert await recent_inspections(store, 10, plate="粤Z00000") == []
