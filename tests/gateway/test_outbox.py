"""The outbox: numbering that survives restarts, removal, the byte bound, the wire form."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from gateway.errors import OutboxFull
from gateway.outbox import Outbox
from gateway.outbox_store import OutboxStore
from gateway.records import ResultRecord, Verdict, utc_now


def make(seq: int, item: str = "S1") -> ResultRecord:
    now = utc_now()
    return ResultRecord(
        record_id=f"rec-{seq}",
        seq=seq,
        session_id="s",
        gateway_id="g",
        station="st",
        lane="L1",
        item_code=item,
        verdict=Verdict.PASS,
        started_at=now,
        finished_at=now,
    )


def test_sequence_survives_reopen_without_gaps(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    box = OutboxStore(path, 10_000_000)
    first = [box.add(make, offline=False).seq for _ in range(3)]
    box.remove(first[:2])
    box.close()
    box = OutboxStore(path, 10_000_000)
    assert box.stats().depth == 1
    assert [box.add(make, offline=False).seq for _ in range(2)] == [4, 5]
    assert [p.seq for p in box.pending(0, 10)] == [3, 4, 5]


def test_pending_is_ordered_and_windowed(tmp_path: Path) -> None:
    box = OutboxStore(tmp_path / "o.sqlite3", 10_000_000)
    for _ in range(10):
        box.add(make, offline=False)
    assert [p.seq for p in box.pending(0, 4)] == [1, 2, 3, 4]
    assert [p.seq for p in box.pending(4, 100)] == [5, 6, 7, 8, 9, 10]


def test_remove_by_record_id_ignores_unknown(tmp_path: Path) -> None:
    box = OutboxStore(tmp_path / "o.sqlite3", 10_000_000)
    box.add(make, offline=False)
    box.add(make, offline=False)
    assert box.remove_ids(["rec-1", "nope"]) == (1, 0)
    stats = box.stats()
    assert (stats.depth, stats.last_seq) == (1, 2)
    assert stats.bytes == len(box.pending(0, 10)[0].payload)


def test_wire_payload_carries_replayed_flag(tmp_path: Path) -> None:
    box = OutboxStore(tmp_path / "o.sqlite3", 10_000_000)
    box.add(make, offline=True)
    box.add(make, offline=False)
    offline, online = box.pending(0, 10)
    assert json.loads(offline.wire_payload())["replayed"] is True
    assert json.loads(online.wire_payload())["replayed"] is False
    box.mark_sent([online.seq])
    resent = box.pending(1, 10)[0]
    assert ResultRecord.model_validate_json(resent.wire_payload()).replayed is True


def test_alarm_refuses_new_work_but_accepts_records(tmp_path: Path) -> None:
    box = OutboxStore(tmp_path / "o.sqlite3", max_bytes=64 * 1024, alarm_fraction=0.5)
    while not box.alarm:
        box.add(make, offline=True)
    with pytest.raises(OutboxFull, match="new inspections are refused"):
        box.require_room()
    depth = box.stats().depth
    box.add(make, offline=True)  # a running inspection's record is still kept
    assert box.stats().depth == depth + 1
    box.remove([p.seq for p in box.pending(0, 10_000)])
    box.require_room()
    assert not box.alarm


def test_oldest_age_is_kept_without_a_query(tmp_path: Path) -> None:
    box = OutboxStore(tmp_path / "o.sqlite3", 10_000_000)
    assert box.stats().oldest_age_s == 0.0
    first = box.add(make, offline=False)
    box.add(make, offline=False)
    queries: list[str] = []
    box._db.set_trace_callback(queries.append)
    assert box.stats().oldest_age_s >= 0.0 and box.stats().depth == 2
    assert queries == [], "stats() runs no SQL (it was a full scan per second at 100k records)"
    box.remove([first.seq])
    assert box.stats().depth == 1 and box.stats().oldest_age_s >= 0.0
    box.close()
    reopened = OutboxStore(tmp_path / "o.sqlite3", 10_000_000)
    assert reopened.stats().depth == 1 and reopened.stats().oldest_age_s > 0.0


async def test_every_sqlite_call_runs_on_the_outbox_thread(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3", 10_000_000)
    threads: set[str] = set()
    box.store._db.set_trace_callback(lambda _sql: threads.add(threading.current_thread().name))
    records = [await box.add(make, offline=False) for _ in range(5)]
    assert box.changed.is_set()
    assert [p.seq for p in await box.pending(0, 10)] == [1, 2, 3, 4, 5]
    await box.mark_sent([1, 2])
    assert await box.remove([1]) == 1
    assert await box.oldest_seq() == 2
    assert threads and all(name.startswith("outbox") for name in threads), threads
    assert threading.current_thread().name not in threads
    # acks: queued without waiting, applied by the apply_acks task, many in one go
    delivered: list[int] = []
    box.on_acked = delivered.append
    box.sent_through = 5  # all five were handed to the broker (acks for unsent ones: none)
    async with asyncio.TaskGroup() as group:
        applier = group.create_task(box.apply_acks())
        for record in records[1:4]:
            box.forget_acked([record.record_id])
        box.forget_acked(["unknown-id"])
        while box.stats().depth != 1:
            await asyncio.sleep(0.01)
        applier.cancel()
    assert sum(delivered) == 3 and len(delivered) <= 2, delivered
    box.forget_acked([records[4].record_id])  # queued at shutdown: applied by aclose
    await box.aclose()
    assert OutboxStore(tmp_path / "o.sqlite3", 10_000_000).stats().depth == 0
