"""``lanegw verify``: check a stream or archive of records for gaps, breaks and forgeries.

Input is JSON lines: records, and optionally birth messages (which carry the gateway's
public key), either bare or as ``mosquitto_sub -v`` prints them (``topic payload``).
Per gateway it reports records whose signature does not verify, missing sequence
numbers (a deleted record), chain breaks (a record altered, or inserted), records that
arrive out of order, and conflicting copies of one record id. Identical duplicates
(at-least-once delivery) are expected and only counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gateway.integrity import (
    GENESIS_HASH,
    canonical_body,
    public_key_from_text,
    record_hash,
    signature_valid,
)


@dataclass
class GatewayReport:
    """What was found for one gateway."""

    gateway_id: str
    records: int = 0
    duplicates: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    missing: list[int] = field(default_factory=list)
    chain_breaks: list[int] = field(default_factory=list)
    bad_signatures: list[int] = field(default_factory=list)
    out_of_order: list[int] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    unverified: bool = False  # no public key known for this gateway

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        problems = (
            self.missing,
            self.chain_breaks,
            self.bad_signatures,
            self.out_of_order,
            self.conflicts,
        )
        return not any(problems) and not self.unverified


def parse_lines(lines: Iterable[str]) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Records in stream order, and public keys by gateway id from birth messages."""
    records: list[dict[str, Any]] = []
    keys: dict[str, str] = {}
    for line in lines:
        text = line.strip()
        if not text:
            continue
        if not text.startswith("{"):
            text = text.partition(" ")[2]  # mosquitto_sub -v: "topic payload"
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        if "record_id" in item and "seq" in item:
            records.append(item)
        elif item.get("online") and item.get("public_key"):
            keys[str(item["gateway_id"])] = str(item["public_key"])
    return records, keys


def verify(
    records: list[dict[str, Any]], keys: dict[str, str], default_key: str | None = None
) -> list[GatewayReport]:
    """Check every gateway's records; one report per gateway, in order of appearance."""
    by_gateway: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_gateway.setdefault(str(record.get("gateway_id")), []).append(record)
    reports = []
    for gateway_id, stream in by_gateway.items():
        text = keys.get(gateway_id, default_key)
        key = public_key_from_text(text) if text else None
        reports.append(_verify_one(gateway_id, stream, key))
    return reports


def _verify_one(
    gateway_id: str, stream: list[dict[str, Any]], key: Ed25519PublicKey | None
) -> GatewayReport:
    report = GatewayReport(gateway_id, unverified=key is None)
    unique: dict[int, dict[str, Any]] = {}
    seen_ids: dict[str, bytes] = {}
    highest = 0
    for record in stream:
        seq, body = int(record["seq"]), canonical_body(record)
        previous = seen_ids.get(record["record_id"])
        if previous is not None:
            report.duplicates += 1
            if previous != body:
                report.conflicts.append(record["record_id"])
            continue
        seen_ids[record["record_id"]] = body
        if seq <= highest:
            report.out_of_order.append(seq)
        highest = max(highest, seq)
        if key is not None and not signature_valid(record, key):
            report.bad_signatures.append(seq)
        unique[seq] = record
    _check_chain(report, unique)
    return report


def _check_chain(report: GatewayReport, unique: dict[int, dict[str, Any]]) -> None:
    if not unique:
        return
    seqs = sorted(unique)
    report.records = len(seqs)
    report.first_seq, report.last_seq = seqs[0], seqs[-1]
    present = set(seqs)
    report.missing = [s for s in range(seqs[0], seqs[-1] + 1) if s not in present]
    if seqs[0] == 1 and unique[1].get("prev_hash") != GENESIS_HASH:
        report.chain_breaks.append(1)
    for seq in seqs[1:]:
        before = unique.get(seq - 1)
        if before is not None and unique[seq].get("prev_hash") != record_hash(before):
            report.chain_breaks.append(seq)
