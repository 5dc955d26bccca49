"""The durable outbox as the event loop sees it: every SQLite call on the outbox's thread.

A commit is an fsync (1–9 ms on an edge box's flash) and a query over a backlog of
100,000 records is not free either; run on the event loop, they stall polling and MQTT
for that long. So ``Outbox`` owns one worker thread and runs every call of its
``OutboxStore`` there, in submission order: a read submitted after a write sees it, as
if it had run on the loop. Counters (depth, bytes, oldest age, alarm) are read without
a query. See ``gateway.outbox_store`` for what is stored and when a record counts.

Acknowledgements are the one call the MQTT dispatcher must not wait for (an ack must
never queue behind anything): ``forget_acked`` queues the ids and returns; the task
``apply_acks`` (run in the gateway's TaskGroup) deletes them, and the ids of acks that
arrive while a deletion runs go together in the next transaction.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import structlog

from gateway.outbox_store import (
    MIN_FREE_BYTES,
    OutboxStats,
    OutboxStore,
    PendingRecord,
    SealFn,
)
from gateway.records import ResultRecord

__all__ = ["MIN_FREE_BYTES", "Outbox", "OutboxStats", "PendingRecord"]

log = structlog.get_logger("lanegw.outbox")

T = TypeVar("T")


class Outbox:
    """The gateway's outbox; its SQLite work runs on its own thread."""

    def __init__(self, path: Path, max_bytes: int, alarm_fraction: float = 0.8) -> None:
        self.store = OutboxStore(path, max_bytes, alarm_fraction)
        self.path = path
        self.max_bytes = max_bytes
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        #: set when records may be waiting (cleared by the deliverer before it looks)
        self.changed = asyncio.Event()
        if self.store.depth:
            self.changed.set()
        self._acked: list[str] = []  # acknowledged ids not yet deleted
        #: the highest seq handed to the broker by this process: an ack for a record above
        #: it cannot be genuine (the station never had it), so it deletes nothing
        self.sent_through = 0
        self._acks_waiting = asyncio.Event()
        #: called with the number of records each ack deletion removed
        self.on_acked: Callable[[int], None] = lambda _removed: None
        #: called with the number of acked records kept because they were never sent
        self.on_unsent_acked: Callable[[int], None] = lambda _count: None

    async def _run(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._worker, call)

    # producing -------------------------------------------------------------------------
    async def add(
        self, build: Callable[[int], ResultRecord], *, offline: bool, seal: SealFn | None = None
    ) -> ResultRecord:
        """Number, seal, store and commit one record; returns it once it is durable.

        Raises ``OutboxFull`` when the disk refuses the write (the caller keeps the
        record and retries).
        """
        record = await self._run(
            functools.partial(self.store.add, build, offline=offline, seal=seal)
        )
        self.changed.set()
        return record

    # delivering ------------------------------------------------------------------------
    async def pending(self, after_seq: int, limit: int) -> list[PendingRecord]:
        """Up to ``limit`` records with ``seq > after_seq``, oldest first."""
        return await self._run(functools.partial(self.store.pending, after_seq, limit))

    async def oldest_seq(self) -> int | None:
        """The sequence number of the oldest record still waiting, if any."""
        return await self._run(self.store.oldest_seq)

    async def mark_sent(self, seqs: Iterable[int]) -> None:
        """Count a delivery attempt (records kept until the server acknowledges them)."""
        await self._run(functools.partial(self.store.mark_sent, list(seqs)))

    async def remove(self, seqs: Iterable[int]) -> int:
        """Delete delivered records by sequence number; returns how many went."""
        return await self._run(functools.partial(self.store.remove, list(seqs)))

    def forget_acked(self, record_ids: Iterable[str]) -> None:
        """Queue the deletion of acknowledged records and return at once."""
        self._acked.extend(record_ids)
        self._acks_waiting.set()

    async def apply_acks(self) -> None:
        """Delete acknowledged records as acks come in, forever (a task of the gateway)."""
        while True:
            await self._acks_waiting.wait()
            await self._delete_acked()

    async def _delete_acked(self) -> None:
        self._acks_waiting.clear()
        while self._acked:
            ids, self._acked = self._acked, []
            call = functools.partial(self.store.remove_ids, ids, self.sent_through)
            removed, unsent = await self._run(call)
            self.on_acked(removed)
            if unsent:
                log.warning("ack_for_unsent_records_ignored", records=unsent)
                self.on_unsent_acked(unsent)

    # state (no query) ------------------------------------------------------------------
    def require_room(self) -> None:
        """Raise ``OutboxFull`` when new inspections must be refused (alarm, disk full)."""
        self.store.require_room()

    def free_bytes(self) -> int:
        """Bytes free for this process on the outbox's file system."""
        return self.store.free_bytes()

    @property
    def alarm(self) -> bool:
        """True once the bytes waiting reach the alarm threshold."""
        return self.store.alarm

    @property
    def alarm_bytes(self) -> int:
        """Bytes at which the alarm starts."""
        return self.store.alarm_bytes

    @property
    def last_seq(self) -> int:
        """The sequence number of the last record produced."""
        return self.store.last_seq

    def stats(self) -> OutboxStats:
        """Depth, bytes and oldest age, for status and metrics."""
        return self.store.stats()

    async def aclose(self) -> None:
        """Apply the queued acks, then checkpoint and close the database on its thread."""
        try:
            await self._delete_acked()
        finally:
            await self._run(self.store.close)
            self._worker.shutdown(wait=True)
