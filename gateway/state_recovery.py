"""A technician's recovery of an inconsistent state directory, and the record saying so.

``lanegw state recover --accept-loss --technician NAME`` (daemon stopped) repairs what
``gateway.state`` found, keeping every damaged file aside (``NAME.damaged-<time>``),
never deleting one, and then commits one signed record of kind ``recovery`` to the
outbox. The daemon delivers it like any record, so the station sees an explained gap
instead of an alarm it cannot interpret:

- numbering continues after the highest seq ever produced (from ``sequence.json``, the
  outbox, or ``--last-seq`` read from the station when both are gone): no seq is used
  twice;
- the chain continues from the last hash when it is known (``sequence.json``); when it
  is not, the recovery record carries 64 zeros as ``prev_hash`` and
  ``recovery.chain_restarts``;
- ``recovery.lost_seq_first..lost_seq_last``: the records that may be lost (those of them
  the station did not receive are gone); a new key names the previous one.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import uuid6

from gateway.config import LaneConfig
from gateway.errors import GatewayError
from gateway.integrity import GENESIS_HASH, Sealer, create_key, load_key
from gateway.outbox_store import OutboxStore
from gateway.records import ResultRecord, StateRecovery, Verdict, utc_now
from gateway.sequence import SEQUENCE_FILE
from gateway.state import (
    KEY_FILE,
    NOT_RECOVERABLE,
    OUTBOX_FILE,
    StateLock,
    StateReport,
    assess,
)

#: problems that lose the outbox's records (the file is set aside, a new one is made)
OUTBOX_LOST: Final = frozenset({"outbox_damaged", "outbox_replaced"})
KEY_REPLACED: Final = frozenset({"key_missing", "key_mismatch", "key_unusable"})


class RecoveryRefused(GatewayError):
    """The recovery cannot go ahead (a problem it cannot repair, a missing argument)."""


@dataclass(slots=True)
class Recovery:
    """What a recovery did."""

    problems: list[str]
    record: ResultRecord | None = None
    kept_aside: list[Path] = field(default_factory=list)
    new_public_key: str | None = None

    @property
    def needed(self) -> bool:
        """False when the state was consistent (nothing done)."""
        return bool(self.problems)


def recover(
    config: LaneConfig, technician: str, last_seq: int | None = None, note: str | None = None
) -> Recovery:
    """Repair the state of ``config``'s gateway and commit the recovery record.

    Holds the state directory's lock (refused while the daemon runs).
    """
    lock = StateLock(config.state_dir, f"lanegw state recover by {technician}")
    lock.acquire()
    try:
        return _recover(config, technician, last_seq, note)
    finally:
        lock.release()
        _give_back(config.state_dir)


def _give_back(state_dir: Path) -> None:
    """Files made by a recovery run as root belong to the state directory's owner (the
    daemon's user), or the daemon could not open them."""
    if os.geteuid() != 0:
        return
    owner = state_dir.stat()
    for path in state_dir.iterdir():
        info = path.lstat()
        if path.is_file() and (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)


def _recover(
    config: LaneConfig, technician: str, last_seq: int | None, note: str | None
) -> Recovery:
    report = assess(config.state_dir)
    if report.ok:
        return Recovery([])
    fixed_by_hand = [p for p in report.problems if p.code in NOT_RECOVERABLE]
    if fixed_by_hand:
        raise RecoveryRefused("; ".join(f"{p.message}. {p.remedy}" for p in fixed_by_hand))
    produced = _last_produced(report, last_seq)
    lost = _lost_range(report, produced)
    prev_hash, restarts = _chain_after(report, produced)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    done = Recovery(report.codes)
    codes = set(report.codes)
    if codes & OUTBOX_LOST or not report.outbox.present:
        done.kept_aside += _set_aside(config.state_dir / OUTBOX_FILE, stamp, with_wal=True)
    if "sequence_damaged" in codes:
        done.kept_aside += _set_aside(config.state_dir / SEQUENCE_FILE, stamp)
    previous_key = _previous_key(report)
    key_path = config.state_dir / KEY_FILE
    if codes & KEY_REPLACED:
        done.kept_aside += _set_aside(key_path, stamp)
        key = create_key(key_path)
    else:
        key = load_key(key_path) or create_key(key_path)
    sealer = Sealer(key)
    if sealer.public_key != previous_key:
        done.new_public_key = sealer.public_key
    declared = StateRecovery(
        problems=report.codes,
        lost_seq_first=lost[0] if lost else None,
        lost_seq_last=lost[1] if lost else None,
        chain_restarts=restarts,
        previous_public_key=previous_key if done.new_public_key else None,
        technician=technician,
        note=note,
        kept_aside=[path.name for path in done.kept_aside],
    )
    store = OutboxStore(config.state_dir / OUTBOX_FILE, config.outbox.max_bytes)
    try:
        store.high_water_at_open = None  # the recovery decides the numbering, not the file
        store.continue_from(max(produced, store.last_seq), prev_hash)
        store.bind_key(sealer.public_key)
        done.record = store.add(
            lambda seq: _record(config, seq, declared), offline=True, seal=sealer.seal
        )
    finally:
        store.close()
    return done


def _last_produced(report: StateReport, given: int | None) -> int:
    """The highest seq this gateway may have produced."""
    known = [report.outbox.last_seq] if report.outbox.damaged is None else []
    if report.high_water is not None:
        known.append(report.high_water.last_seq)
    if given is not None:
        return max([given, *known])
    if report.high_water is None and (report.codes_of(OUTBOX_LOST | {"outbox_missing"})):
        raise RecoveryRefused(_ask_last_seq())
    return max(known)


def _ask_last_seq() -> str:
    return (
        f"the outbox's records and {SEQUENCE_FILE} are both gone, so the last seq this"
        " gateway produced is unknown:"
        " read it on the station (`lanegw station status`, column 'last seq') and pass"
        " --last-seq N (when unsure, a larger number: a gap is explained, a reused seq"
        " is not)"
    )


def _lost_range(report: StateReport, produced: int) -> tuple[int, int] | None:
    """The seqs that may be lost, first and last (None: nothing lost)."""
    hw, outbox, codes = report.high_water, report.outbox, set(report.codes)
    if codes & OUTBOX_LOST or "outbox_missing" in codes:
        if hw is None:
            return (1, produced) if produced else None  # how far it got is all we know
        # waiting_from: the oldest record waiting at the last commit (None: none was)
        first = hw.last_seq + 1 if hw.waiting_from is None else hw.waiting_from
        return (first, produced) if first <= produced else None
    if "sequence_behind" in codes and hw is not None:
        first = outbox.last_seq + 1
        if hw.waiting_from is not None:
            first = max(first, hw.waiting_from)
        return (first, produced) if first <= produced else None
    return None


def _chain_after(report: StateReport, produced: int) -> tuple[str, bool]:
    """The hash the recovery record links to, and whether the chain restarts."""
    hw, outbox = report.high_water, report.outbox
    if hw is not None and hw.last_seq == produced:
        return hw.last_hash, False
    usable = outbox.damaged is None and "outbox_replaced" not in report.codes
    if usable and outbox.present and outbox.last_seq == produced:
        return outbox.last_hash, False
    if produced == 0:
        return GENESIS_HASH, False
    return GENESIS_HASH, True


def _previous_key(report: StateReport) -> str | None:
    hw = report.high_water
    return (hw.public_key if hw else None) or report.outbox.public_key or report.public_key


def _set_aside(path: Path, stamp: str, *, with_wal: bool = False) -> list[Path]:
    """Rename ``path`` (and its -wal/-shm) to ``*.damaged-<stamp>``; nothing is deleted."""
    moved = []
    for source in _with_companions(path, with_wal):
        if source.exists():
            target = source.with_name(f"{source.name}.damaged-{stamp}")
            shutil.move(source, target)
            moved.append(target)
    return moved


def _with_companions(path: Path, with_wal: bool) -> Iterator[Path]:
    yield path
    if with_wal:
        yield path.with_name(path.name + "-wal")
        yield path.with_name(path.name + "-shm")


def _record(config: LaneConfig, seq: int, declared: StateRecovery) -> ResultRecord:
    now = utc_now()
    return ResultRecord(
        record_id=str(uuid6.uuid7()),
        seq=seq,
        session_id=str(uuid6.uuid7()),
        gateway_id=config.client_id,
        station=config.station,
        lane=config.lane,
        kind="recovery",
        item_code="recovery",
        item_name="state recovery",
        verdict=Verdict.NOT_JUDGED,
        reason=describe(declared),
        recovery=declared,
        started_at=now,
        finished_at=now,
    )


def describe(declared: StateRecovery) -> str:
    """The recovery in one sentence, for the record's ``reason`` and the CLI."""
    parts = [f"state recovered by {declared.technician} ({', '.join(declared.problems)})"]
    if declared.lost_seq_first is not None:
        parts.append(
            f"records {declared.lost_seq_first}..{declared.lost_seq_last} not received by the"
            " station are lost"
        )
    if declared.chain_restarts:
        parts.append("the hash chain restarts here")
    if declared.previous_public_key:
        parts.append(f"new signing key (previous {declared.previous_public_key})")
    return "; ".join(parts)
