"""The state check and recovery in-process (the daemon's refusals are in
tests/hostile/test_corrupt_state.py): the high-water record's edge cases, the cases a
daemon run does not reach quickly, the lock, the finished-inspection memory."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from gateway.config import LaneConfig, load_config
from gateway.inspection.finished import FinishedInspections
from gateway.integrity import GENESIS_HASH, Sealer, load_or_create_key
from gateway.outbox_store import OutboxStore
from gateway.records import ResultRecord, Verdict, utc_now
from gateway.sequence import read_high_water, write_high_water
from gateway.state import StateBusy, StateLock, assess
from gateway.state_recovery import RecoveryRefused, recover
from tests.harness import write_config


def make(seq: int) -> ResultRecord:
    now = utc_now()
    return ResultRecord(
        record_id=f"rec-{seq}",
        seq=seq,
        session_id="s",
        gateway_id="g",
        station="st",
        lane="L1",
        item_code="S1",
        verdict=Verdict.PASS,
        started_at=now,
        finished_at=now,
    )


def produced(state: Path, count: int) -> Sealer:
    """A state directory whose gateway produced ``count`` records (as the daemon does)."""
    sealer = Sealer(load_or_create_key(state / "gateway.key"))
    store = OutboxStore(state / "outbox.sqlite3", 10_000_000)
    store.bind_key(sealer.public_key)
    for _ in range(count):
        store.add(make, offline=True, seal=sealer.seal)
    store.close()
    return sealer


def lane(tmp_path: Path) -> LaneConfig:
    path = write_config(
        tmp_path / "lane.yaml",
        tmp_path / "state",
        1883,
        buses=[{"id": "com1", "url": "socket://127.0.0.1:9"}],
        devices=[{"id": "s", "class": "speedometer_tester", "protocol": "tlch10", "bus": "com1"}],
    )
    return load_config(path)


def test_a_fresh_state_and_a_record_one_behind_are_consistent(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert assess(state).ok  # nothing at all: the first start
    produced(state, 3)
    hw = read_high_water(state / "sequence.json")
    assert hw is not None and (hw.last_seq, hw.waiting_from) == (3, 1)
    # a crash between the outbox's commit and the file's replacement: one behind, accepted
    write_high_water(state / "sequence.json", hw.__class__(2, "a" * 64, 1, hw.public_key))
    assert assess(state).ok


def test_a_rolled_back_outbox_is_caught_and_never_erases_the_evidence(tmp_path: Path) -> None:
    state = tmp_path / "state"
    sealer = produced(state, 3)
    ahead = read_high_water(state / "sequence.json")
    assert ahead is not None
    write_high_water(state / "sequence.json", ahead.__class__(9, "b" * 64, 2, ahead.public_key))
    assert assess(state).codes == ["sequence_behind"]
    store = OutboxStore(state / "outbox.sqlite3", 10_000_000)
    store.add(make, offline=True, seal=sealer.seal)  # a tool that ignores the check
    store.close()
    recorded = read_high_water(state / "sequence.json")
    assert recorded is not None and recorded.last_seq == 9  # not lowered to 4


def test_same_seq_on_another_chain_is_a_replaced_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    produced(state, 2)
    hw = read_high_water(state / "sequence.json")
    assert hw is not None
    write_high_water(state / "sequence.json", hw.__class__(2, "c" * 64, 1, hw.public_key))
    assert assess(state).codes == ["outbox_replaced"]


def test_a_damaged_sequence_file_is_set_aside_by_recovery(tmp_path: Path) -> None:
    config = lane(tmp_path)
    produced(config.state_dir, 2)
    (config.state_dir / "sequence.json").write_text('{"format": 1, "last_seq": "x"}')
    assert assess(config.state_dir).codes == ["sequence_damaged"]
    done = recover(config, "Li Wei")
    assert done.record is not None and done.record.recovery is not None
    assert done.record.seq == 3 and done.record.recovery.lost_seq_first is None
    assert not done.record.recovery.chain_restarts  # linked to record 2 (from the outbox)
    assert [p.name.split(".damaged-")[0] for p in done.kept_aside] == ["sequence.json"]
    assert assess(config.state_dir).ok
    stored = OutboxStore(config.state_dir / "outbox.sqlite3", 10_000_000)
    (pending,) = [p for p in stored.pending(0, 10) if p.seq == 3]
    body = json.loads(pending.payload)
    assert body["kind"] == "recovery" and body["recovery"]["technician"] == "Li Wei"
    assert "recovery" not in json.loads(stored.pending(0, 1)[0].payload)  # absent on others
    stored.close()


def test_when_outbox_and_sequence_are_both_gone_the_station_s_seq_is_asked(
    tmp_path: Path,
) -> None:
    config = lane(tmp_path)
    produced(config.state_dir, 2)
    for name in ("outbox.sqlite3", "outbox.sqlite3-wal", "outbox.sqlite3-shm", "sequence.json"):
        (config.state_dir / name).unlink(missing_ok=True)
    with pytest.raises(RecoveryRefused, match="--last-seq"):
        recover(config, "Li Wei")
    done = recover(config, "Li Wei", last_seq=7, note="outbox deleted by a cleanup script")
    assert done.record is not None and done.record.recovery is not None
    declared = done.record.recovery
    stored = OutboxStore(config.state_dir / "outbox.sqlite3", 10_000_000)
    (pending,) = stored.pending(0, 10)
    stored.close()
    assert pending.seq == 8 and json.loads(pending.payload)["prev_hash"] == GENESIS_HASH
    assert declared.chain_restarts and (declared.lost_seq_first, declared.lost_seq_last) == (1, 7)
    assert declared.note == "outbox deleted by a cleanup script"
    assert recover(config, "Li Wei").record is None  # consistent now: nothing to do


def test_an_exposed_key_is_for_chmod_not_for_recovery(tmp_path: Path) -> None:
    config = lane(tmp_path)
    produced(config.state_dir, 1)
    (config.state_dir / "gateway.key").chmod(0o644)
    assert assess(config.state_dir).codes == ["key_exposed"]
    with pytest.raises(RecoveryRefused, match="chmod 600"):
        recover(config, "Li Wei")


def test_one_process_per_state_directory(tmp_path: Path) -> None:
    first = StateLock(tmp_path, "lanegw daemon gw-1")
    first.acquire()
    assert "lanegw daemon gw-1" in (StateLock(tmp_path, "check").held_elsewhere() or "")
    with pytest.raises(StateBusy, match="lanegw daemon gw-1"):
        StateLock(tmp_path, "lanegw state recover").acquire()
    first.release()
    assert StateLock(tmp_path, "check").held_elsewhere() is None


async def test_finished_inspections_are_remembered_across_a_reopen(tmp_path: Path) -> None:
    book = FinishedInspections(tmp_path / "inspections.sqlite3")
    assert book.last_attempt("44010012026112001") is None
    await book.remember("44010012026112001", 2)
    await book.remember("44010012026112001", 1)  # an older attempt never lowers it
    book.close()
    again = FinishedInspections(tmp_path / "inspections.sqlite3")
    assert again.last_attempt("44010012026112001") == 2
    again.close()


def test_a_crash_during_the_first_start_is_not_an_alarm(tmp_path: Path) -> None:
    """The daemon's first start: outbox made, "nothing produced" recorded, then the key;
    killed right after the key, the next start must not see a key next to an empty
    outbox as a loss."""
    state = tmp_path / "state"
    store = OutboxStore(state / "outbox.sqlite3", 10_000_000)
    store.record_high_water()
    store.close()
    load_or_create_key(state / "gateway.key")
    assert assess(state).ok
    (state / "sequence.json").unlink()  # without that record the same files are a loss
    assert assess(state).codes == ["outbox_missing"]


def test_files_made_by_a_recovery_as_root_belong_to_the_daemon_s_user(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.fail("run as root (CI does): a recovery as root must give files back")
    config = lane(tmp_path)
    produced(config.state_dir, 2)
    daemon_user = 65534  # nobody: stands for lanegw
    os.chown(config.state_dir, daemon_user, daemon_user)
    (config.state_dir / "gateway.key").unlink()
    recover(config, "Li Wei")
    owners = {p.name: p.stat().st_uid for p in config.state_dir.iterdir() if p.is_file()}
    assert owners and set(owners.values()) == {daemon_user}, owners
    assert {"gateway.key", "outbox.sqlite3", "sequence.json", "lanegw.lock"} <= set(owners)
