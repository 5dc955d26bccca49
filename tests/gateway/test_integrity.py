"""Signed, chained records: tampering, deletion and reordering are detected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.integrity import GENESIS_HASH, KeyFileError, Sealer, load_or_create_key
from gateway.outbox_store import OutboxStore
from gateway.records import Measurement, ResultRecord, Verdict, utc_now
from gateway.verify import verify


def build(seq: int) -> ResultRecord:
    now = utc_now()
    return ResultRecord(
        record_id=f"rec-{seq}",
        seq=seq,
        session_id="s",
        gateway_id="gw-1",
        station="st",
        lane="L1",
        item_code="S1",
        verdict=Verdict.PASS,
        started_at=now,
        finished_at=now,
        measurements=[Measurement(name="speed", value=37.6 + seq / 10, unit="km/h")],
    )


@pytest.fixture
def chain(tmp_path: Path) -> tuple[list[dict[str, Any]], str]:
    sealer = Sealer(load_or_create_key(tmp_path / "gateway.key"))
    box = OutboxStore(tmp_path / "outbox.sqlite3", 10_000_000)
    for _ in range(6):
        box.add(build, offline=False, seal=sealer.seal)
    records = [json.loads(p.wire_payload()) for p in box.pending(0, 100)]
    return records, sealer.public_key


def test_key_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "gateway.key"
    first = Sealer(load_or_create_key(path))
    assert path.stat().st_mode & 0o777 == 0o600
    assert Sealer(load_or_create_key(path)).public_key == first.public_key
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_or_create_key(path)


def test_intact_chain_verifies(chain: tuple[list[dict[str, Any]], str]) -> None:
    records, key = chain
    assert records[0]["prev_hash"] == GENESIS_HASH
    (report,) = verify(records + records[:2], {}, key)  # resent duplicates are fine
    assert report.ok and report.records == 6 and report.duplicates == 2


def test_altered_value_is_a_bad_signature_and_a_break(
    chain: tuple[list[dict[str, Any]], str],
) -> None:
    records, key = chain
    records[2]["measurements"][0]["value"] = 45.0  # a man in the middle "corrects" a value
    (report,) = verify(records, {}, key)
    assert report.bad_signatures == [3] and report.chain_breaks == [4] and not report.ok


def test_deleted_record_is_a_gap(chain: tuple[list[dict[str, Any]], str]) -> None:
    records, key = chain
    (report,) = verify(records[:3] + records[4:], {}, key)
    assert report.missing == [4] and not report.bad_signatures


def test_reordered_records_are_reported(chain: tuple[list[dict[str, Any]], str]) -> None:
    records, key = chain
    records[1], records[3] = records[3], records[1]
    (report,) = verify(records, {}, key)
    assert report.out_of_order and not report.missing and not report.chain_breaks


def test_forged_record_with_another_key_fails(
    tmp_path: Path, chain: tuple[list[dict[str, Any]], str]
) -> None:
    records, key = chain
    forger = Sealer(load_or_create_key(tmp_path / "forger.key"))
    forged = json.loads(forger.seal({**records[5], "seq": 7, "record_id": "rec-7"}, "x").payload)
    (report,) = verify([*records, forged], {}, key)
    assert report.bad_signatures == [7] and report.chain_breaks == [7]


def test_verify_command_reads_a_mosquitto_capture(
    tmp_path: Path, chain: tuple[list[dict[str, Any]], str]
) -> None:
    records, key = chain
    birth = {"online": True, "gateway_id": "gw-1", "public_key": key}
    lines = [f"lanegw/st/L1/state {json.dumps(birth)}"]
    lines += [f"lanegw/st/L1/results {json.dumps(r, ensure_ascii=False)}" for r in records]
    capture = tmp_path / "capture.txt"
    capture.write_text("\n".join(lines))
    cmd = [sys.executable, "-m", "gateway", "verify", str(capture)]
    good = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and "6 records" in good.stdout
    capture.write_text("\n".join(lines[:3] + lines[4:]))
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 3 and "missing seq: 3" in bad.stdout  # done, found problems
