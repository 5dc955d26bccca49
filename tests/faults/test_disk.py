"""Fault: the disk holding the daemon's state (outbox, evidence, key) runs full.

The state directory lives on a small tmpfs mounted for the test; "disk full" is a
ballast file written until the kernel says ENOSPC, "space returns" is deleting it.
(The outbox's own byte bound is tested in tests/gateway/test_server_ack.py.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uuid6

from gateway.errors import OutboxFull
from gateway.evidence import EvidenceStore
from gateway.outbox_store import OutboxStore
from gateway.records import Measurement, ResultRecord, Verdict
from tests.faults.rig import (
    SPEED_RANGE,
    Station,
    Totals,
    check_delivered,
    depth,
    integrity,
    running_lane,
    send_command,
    station_running,
    submit,
    until,
)
from tests.harness import order
from tests.mosquitto import Mosquitto


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.fail(
            "the disk-full test mounts a tmpfs and so must run as root (CI does); "
            "run the suite as root"
        )
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(disk)],
        check=True,
        capture_output=True,
    )
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], check=False).returncode:
            subprocess.run(["umount", "-l", str(disk)], check=True)  # busy: detach anyway


def fill(disk: Path) -> Path:
    """Write a ballast file until the file system has no byte left."""
    ballast = disk / "ballast"
    with open(ballast, "wb", buffering=0) as handle:
        for size in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    handle.write(bytes(size))
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    stat = os.statvfs(disk)
    assert stat.f_bavail * stat.f_frsize == 0
    return ballast


async def test_disk_full_refuses_new_inspections_and_keeps_records(
    tmp_path: Path, mosquitto: Mosquitto, small_disk: Path, totals: Totals
) -> None:
    """Fault: the state directory's disk fills up while an inspection runs, and stays
    full for a while; then space returns.

    Must hold: the daemon stays up; the running item's record, which cannot be written,
    is held and retried (``record_not_stored_retrying``), not dropped; a new inspection
    is refused with a reason naming the full disk; the outbox stays intact; once space
    returns the held records are stored (no seq gap), delivered, and a new inspection is
    accepted and runs; every record reaches the station and verifies.
    """
    station = Station(mosquitto.port)
    async with (
        station_running(station),
        running_lane(
            tmp_path / "lane",
            "L1",
            mosquitto.port,
            station,
            time_scale=0.3,  # S1 takes ~1.7 s: time to fill the disk while it runs
            state_dir=small_disk / "state",
        ) as lane,
    ):
        await submit(mosquitto.port, "L1", [1])
        await station.wait_for(lambda: len(station.unique("L1")) >= 2, 30, "first inspection")

        await submit(mosquitto.port, "L1", [2])
        second = order(2)["inspection_id"]
        await station.wait_for(
            lambda: any(
                p["inspection_id"] == second and p["step"] == "speedometer_spinning"
                for p in station.of("L1", "progress")
            ),
            20,
            "the second inspection's item running",
        )
        ballast = fill(small_disk)
        totals.fault("disk_full")
        await until(
            lambda: lane.events("record_not_stored_retrying"), 20, "a record held for retry"
        )
        refused = await send_command(mosquitto.port, "L1", "inspect", order(3))
        assert not refused["ok"], refused
        assert "refused" in refused["error"] and (
            "free" in refused["error"] or "full" in refused["error"]
        ), refused["error"]
        await until(
            lambda: len(lane.events("record_not_stored_retrying")) >= 3, 20, "retries"
        )  # the disk stays full for a few retries
        assert lane.daemon.proc is not None and lane.daemon.proc.returncode is None
        assert integrity(lane.outbox) == "ok"
        assert len(station.unique("L1")) == 2  # nothing of the second inspection yet

        ballast.unlink()  # space returns
        await station.wait_for(
            lambda: len(station.unique("L1")) >= 4, 30, "the held records once space returned"
        )
        accepted = await send_command(mosquitto.port, "L1", "inspect", order(4))
        assert accepted["ok"], accepted
        await station.wait_for(lambda: len(station.unique("L1")) >= 6, 30, "a new inspection")
        await until(lambda: depth(lane.outbox) == 0, 10, "an empty outbox")

        records = station.unique("L1")
        assert [(r["seq"], r["inspection_id"][-3:]) for r in records] == [
            (1, "001"), (2, "001"), (3, "002"), (4, "002"), (5, "004"), (6, "004")
        ]  # fmt: skip
        items = [r for r in records if r["kind"] == "item"]
        assert all(r["verdict"] == "pass" for r in items), [r["reason"] for r in items]
        for item in items:
            assert SPEED_RANGE[0] < float(item["measurements"][0]["value"]) < SPEED_RANGE[1]
        evidence = EvidenceStore(lane.state_dir / "evidence")
        for item in items:  # the evidence the disk refused was written before its record
            assert item["evidence"], "S1 keeps its raw frames as evidence"
            for ref in item["evidence"]:
                assert evidence.get(ref["sha256"])["kind"] == ref["kind"]
        check_delivered(station, lane, totals)


def test_outbox_on_a_full_disk_refuses_and_retries(small_disk: Path, totals: Totals) -> None:
    """Fault: the disk under the outbox (real SQLite, WAL, on the tmpfs) is full while a
    record is added, delivered records are deleted and a delivery attempt is counted.

    Must hold: ``add`` raises ``OutboxFull`` and changes nothing (the caller keeps the
    record); ``require_room`` refuses new inspections naming the disk; deleting
    delivered records keeps them and retries later instead of raising; once space
    returns the next ``add`` gets the next seq (no gap), the pending deletion happens,
    and the database passes its integrity check.
    """
    outbox = OutboxStore(small_disk / "outbox.sqlite3", max_bytes=8 * 1024 * 1024)
    try:
        for _ in range(3):
            outbox.add(draft, offline=False)
        ballast = fill(small_disk)
        totals.fault("disk_full")
        with pytest.raises(OutboxFull, match="disk is full"):
            outbox.add(draft, offline=False)
        with pytest.raises(OutboxFull, match="refused"):
            outbox.require_room()
        assert outbox.remove([1, 2]) == 0  # kept, not lost, not an error
        outbox.mark_sent([3])
        assert [r.seq for r in outbox.pending(0, 10)] == [1, 2, 3]
        assert outbox.last_seq == 3

        ballast.unlink()
        record = outbox.add(draft, offline=False)
        assert record.seq == 4
        assert [r.seq for r in outbox.pending(0, 10)] == [3, 4]  # the deletion was retried
        outbox.require_room()
        assert integrity(outbox.path) == "ok"
    finally:
        outbox.close()


def draft(seq: int) -> ResultRecord:
    now = datetime.now(UTC)
    return ResultRecord(
        record_id=str(uuid6.uuid7()),
        seq=seq,
        session_id="s",
        gateway_id="g",
        station="4401001",
        lane="L1",
        kind="item",
        inspection_id="44010012026112001",
        item_code="S1",
        verdict=Verdict.PASS,
        measurements=[Measurement(name="pad", value="x" * 3000)],
        started_at=now,
        finished_at=now,
    )
