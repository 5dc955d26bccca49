"""The upload rows on SQLite and PostgreSQL (the ``store`` fixture runs each test on both):
queued once, sent in chain order, claimed by one sender, leases, refusals blocking their
chain until retried, never an accepted row again, the attempts kept as evidence."""

from __future__ import annotations

import json

from station.checks import parse_arrival
from station.store import RecordStore
from station.store.store import now_text
from station.upload.plan import Platforms, plan_device_record, plan_inspection
from station.upload.store import Step, UploadStore
from station.upload.wire import Exchange, Outcome, Reply
from tests.station.signed import STATION, SigningGateway

PAST = "2000-01-01T00:00:00+00:00"
FUTURE = "2999-01-01T00:00:00+00:00"


def step(chain: str, ord_: int, call: str = "18C55") -> Step:
    return Step(f"{chain}/{ord_}/{call}", "psb", chain, ord_, call, {"n": ord_},
                inspection_id=chain.split("/")[-1], lane="L1", item_code="B1", attempt=1)  # fmt: skip


def accepted(key: str = "KEY1") -> Exchange:
    return Exchange("<req/>", Outcome.ACCEPTED, "<resp/>", Reply("1", "成功", key))


async def uploads(store: RecordStore) -> UploadStore:
    up = UploadStore(store, "sender-a")
    await up.setup()
    await up.setup()  # idempotent
    return up


async def test_steps_are_queued_once_and_each_chain_goes_in_order(store: RecordStore) -> None:
    up = await uploads(store)
    steps = [step("psb/A", 3), step("psb/A", 1), step("psb/A", 2), step("psb/B", 5)]
    assert await up.add(steps) == 4
    assert await up.add(steps[:2]) == 0  # planned twice (two receivers): one row each
    due = await up.due(now_text())
    assert [(u.chain, u.ord) for u in due] == [("psb/A", 1), ("psb/B", 5)]  # chain heads only
    head = due[0]
    n = await up.claim(head, "<req/>", FUTURE)
    assert n == 1
    assert [(u.chain, u.ord) for u in await up.due(now_text())] == [("psb/B", 5)]
    await up.finish(head, n, accepted(), now_text(), {"inspregid": "R1"})
    assert [(u.chain, u.ord) for u in await up.due(now_text())] == [("psb/A", 2), ("psb/B", 5)]
    assert await up.context("psb/A") == {"inspregid": "R1"}
    (row,) = await up.listing(inspection_id="A", status="accepted", attempts=True)
    assert (row.keystr, row.code, row.tries) == ("KEY1", "1", 1)
    assert [(a["n"], a["outcome"], a["request"], a["response"]) for a in row.attempts] == [
        (1, "accepted", "<req/>", "<resp/>")
    ]


async def test_a_row_is_claimed_by_one_sender_and_a_dead_senders_lease_runs_out(
    store: RecordStore,
) -> None:
    a, b = await uploads(store), UploadStore(store, "sender-b")
    await a.add([step("psb/A", 1)])
    (row,) = await a.due(now_text())
    assert await a.claim(row, "<req/>", "2999-01-01T00:00:00+00:00") == 1
    assert await b.claim(row, "<req/>", "2999-01-01T00:00:00+00:00") is None  # taken
    assert await b.due(now_text()) == []
    # sender a dies mid-send: its lease ends, b sends again; the evidence says in doubt
    async with store.db.transaction() as tx:
        await tx.execute("UPDATE uploads SET lease_until = %s", (PAST,))
    (again,) = await b.due(now_text())
    assert await b.claim(again, "<req/>", now_text()) == 2
    (listed,) = await b.listing(attempts=True)
    assert [(x["n"], x["outcome"], x["sender"]) for x in listed.attempts] == [
        (1, "in_doubt", "sender-a"),
        (2, "in_doubt", "sender-b"),
    ]


async def test_a_refusal_blocks_its_chain_until_retried_and_accepted_rows_stay(
    store: RecordStore,
) -> None:
    up = await uploads(store)
    await up.add([step("psb/A", 1), step("psb/A", 2)])
    (first,) = await up.due(now_text())
    n = await up.claim(first, "<req/>", now_text())
    assert n is not None
    refused = Exchange("<req/>", Outcome.REFUSED, "<resp/>", Reply("-8105", "无开始记录"))
    await up.finish(first, n, refused, now_text())
    assert await up.due(now_text()) == []  # nothing after a refusal goes
    retried = await up.retry(first.upload_id)
    assert retried is not None and retried.status == "refused"
    (again,) = await up.due(now_text())
    assert again.upload_id == first.upload_id and again.status == "queued"
    n = await up.claim(again, "<req/>", now_text())
    assert n == 2
    await up.finish(again, n, accepted(), now_text())
    kept = await up.retry(first.upload_id)  # accepted: never queued again
    assert kept is not None and kept.status == "accepted"
    assert [u.ord for u in await up.due(now_text())] == [2]
    assert await up.retry("nope") is None
    assert await up.counts() == {"accepted": 1, "queued": 1}


async def test_a_retry_waits_its_backoff_and_a_held_row_waits_for_its_inputs(
    store: RecordStore,
) -> None:
    up = await uploads(store)
    await up.add([step("psb/A", 1)])
    (row,) = await up.due(now_text())
    n = await up.claim(row, "<req/>", now_text())
    assert n is not None
    down = Exchange("<req/>", Outcome.RETRY, None, error="ClientConnectorError")
    await up.finish(row, n, down, "2999-01-01T00:00:00+00:00")
    assert await up.due(now_text()) == []  # not before its next try
    (listed,) = await up.listing(status="retrying", attempts=True)
    assert listed.message == "ClientConnectorError" and listed.attempts[0]["outcome"] == "retry"
    await up.hold(listed, "held", "the vehicle's identity is not known yet", PAST)
    (held,) = await up.due(now_text())
    assert (held.status, held.message) == ("held", "the vehicle's identity is not known yet")


async def test_stored_records_are_planned_once(store: RecordStore) -> None:
    up = await uploads(store)
    gw = SigningGateway("lanegw-4401001-L1", "L1")
    birth = gw.birth()
    await store.register_state("L1", json.loads(birth), birth, True)
    payloads = [gw.record(item_code="B1", kind="item"), gw.record(item_code="check:leak",
                kind="check", inspection_id=None,
                devices=[{"id": "analyser", "device_class": "gas_analyser", "protocol": "nha503"}])]  # fmt: skip
    arrivals = [parse_arrival("L1", STATION, p) for p in payloads]
    await store.ingest(arrivals)  # type: ignore[arg-type]
    pending = await up.unplanned(await up.since())
    assert sorted(kind for _, _, kind in pending) == ["check", "item"]
    (iid,) = {i for _, i, _ in pending if i}
    records = await up.records_of(iid)
    found = plan_inspection(records, {r for r, i, _ in pending if i}, Platforms())
    assert [s.call for s in found.steps] == ["18C55", "18C81", "18C58"]
    await up.add(found.steps, found.planned)
    (check_id,) = [r for r, i, _ in pending if i is None]
    check = plan_device_record(await up.record(check_id) or {}, Platforms())
    assert [(s.call, s.inputs["kind"], s.inputs["device"]) for s in check.steps] == [
        ("uploadInspStmDeviceRecord", "leak", "analyser")
    ]
    await up.add(check.steps, check.planned)
    assert await up.unplanned(await up.since()) == []
    assert len(await up.checks()) == 1
    await up.save_locks("L1", {"analyser": ["daily leak check not uploaded"]}, "s1")
    assert await up.sent_locks("L1") == ({"analyser": ["daily leak check not uploaded"]}, "s1")
    assert await up.all_locks() == {"L1": {"analyser": ["daily leak check not uploaded"]}}


async def test_the_windows_registration_completes_the_vehicle(store: RecordStore) -> None:
    """The station flow's registration (flow_inspections, station/flow) gives the plate
    type and the engine number the gateway's start message lacks; without the table, or
    without a row for the inspection, the start message alone."""
    up = await uploads(store)
    start = {"plate": "粤A12345", "vin": "LSVAU2180N2183294", "category": "passenger_car",
             "attempt": 1, "items": "B1,TSI"}  # fmt: skip
    await up.save_vehicle("44010012026112001", "L1", start)
    assert (await up.vehicle("44010012026112001") or {})["plate"] == "粤A12345"
    assert await up.vehicle("44010012026112002") is None
    registration = {"plate": "粤B54321", "plate_type": "52", "vin": "LSVAU2180N2183294",
                    "engine_no": "E12345", "fuel": "hybrid", "kind": "car"}  # fmt: skip
    async with store.db.transaction() as tx:  # the flow's table, as far as read here
        await tx.execute(
            "CREATE TABLE flow_inspections (serial TEXT PRIMARY KEY, registration TEXT NOT NULL)"
        )
        await tx.execute(
            "INSERT INTO flow_inspections (serial, registration) VALUES (%s, %s), (%s, %s)",
            ("44010012026112001", json.dumps(registration, ensure_ascii=False),
             "44010012026112003", "not json"),
        )  # fmt: skip
    vehicle = await up.vehicle("44010012026112001")
    assert vehicle is not None
    assert (vehicle["plate"], vehicle["plate_type"], vehicle["engine_no"], vehicle["fuel"]) == (
        "粤B54321",
        "52",
        "E12345",
        "hybrid",
    )
    assert (vehicle["category"], vehicle["attempt"], vehicle["lane"]) == ("passenger_car", 1, "L1")
    assert await up.vehicle("44010012026112003") is None  # an unreadable registration: none
