"""What the receiver decides about an arriving record: pure functions, no I/O.

``parse_arrival`` validates a message at the edge (JSON, the record schema, the topic it
came on). ``judge`` decides, from the facts the store looked up in its transaction (the
gateway's key, what is already stored at that record id and sequence number, the
neighbours in the chain), whether the record is stored, and which alarms it raises.
A record with a valid signature is authentic and is stored even when it breaks the
chain (then as ``suspect``, next to its alarm); one that cannot be verified is not
stored, only kept as an alarm's evidence, and is not acknowledged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError
from pydantic_core import from_json

from gateway.integrity import (
    GENESIS_HASH,
    message_signed_by,
    public_key_from_text,
    record_hash,
    signature_valid,
)
from gateway.records import ResultRecord

#: the largest result record taken (a brake item with its curve is about 10 kB)
MAX_RECORD_BYTES: Final = 1024 * 1024
#: what is kept of an oversized payload as evidence
EVIDENCE_CUT: Final = 64 * 1024


class AlarmKind(enum.StrEnum):
    """Why something was not merged with good data."""

    MALFORMED = "malformed"  # not a record of our schema, or on another lane's topic
    UNKNOWN_GATEWAY = "unknown_gateway"  # no trusted key for its gateway
    BAD_SIGNATURE = "bad_signature"  # forged or altered
    CONFLICT = "conflict"  # another record already holds this id or sequence number
    CHAIN_BREAK = "chain_break"  # prev_hash does not link to the stored neighbour
    SEQUENCE_GAP = "sequence_gap"  # records missing between stored ones (deleted?)
    KEY_CHANGED = "key_changed"  # a gateway announced another key than the trusted one
    FORGED_STATE = "forged_state"  # a state (birth, will) its gateway's key did not sign
    LANE_CLAIMED = "lane_claimed"  # a second gateway id announced itself on a bound lane
    UPLOAD_REFUSED = "upload_refused"  # a regulator's platform refused an upload (or it
    # cannot be written from its data): the request and the answer are the evidence
    REGULATOR_LOCK = "regulator_lock"  # a lane device locked as the platform would lock it


class Decision(enum.StrEnum):
    """What happens to a record."""

    STORE = "store"  # stored as ok; acknowledged
    STORE_SUSPECT = "store_suspect"  # authentic but breaks the chain; stored, alarmed, acked
    DUPLICATE = "duplicate"  # already stored, identical: acknowledged again
    REJECT = "reject"  # not stored, alarmed, not acknowledged


@dataclass(frozen=True, slots=True)
class Alarm:
    """A problem with its evidence (the raw payload, when a message caused it)."""

    kind: AlarmKind
    detail: str
    gateway_id: str | None = None
    lane: str | None = None
    seq: int | None = None
    seq_last: int | None = None
    record_id: str | None = None
    payload: bytes | None = None

    @property
    def dedupe(self) -> str:
        """One alarm per problem: a resent record raises its alarm once (and counts)."""
        where = self.record_id or (str(self.seq) if self.seq is not None else "")
        return f"{self.kind}:{self.gateway_id or ''}:{self.lane or ''}:{where}"


@dataclass(frozen=True, slots=True)
class Arrival:
    """A record as received, validated against the schema and its topic."""

    lane: str  # from the topic: where the ack goes
    record: dict[str, Any]  # the parsed JSON, hashed and verified as is
    payload: bytes

    @property
    def gateway_id(self) -> str:
        """The gateway that claims to have produced the record."""
        return str(self.record["gateway_id"])

    @property
    def record_id(self) -> str:
        """The record's id (the ack's unit)."""
        return str(self.record["record_id"])

    @property
    def seq(self) -> int:
        """The gateway's sequence number."""
        return int(self.record["seq"])


def parse_arrival(lane: str, station: str, payload: bytes) -> Arrival | Alarm:
    """Validate a message on ``{root}/{station}/{lane}/results``."""
    if len(payload) > MAX_RECORD_BYTES:  # kept as evidence, cut: a record is never this big
        detail = f"{len(payload)} bytes, more than a record's {MAX_RECORD_BYTES}"
        return Alarm(AlarmKind.MALFORMED, detail, lane=lane, payload=payload[:EVIDENCE_CUT])
    try:
        # pydantic-core's parser stops at a nesting depth of 200 with a ValueError, where
        # json.loads recurses until RecursionError (a 200 kB "[[[[..." killed the receiver)
        record = from_json(payload)
        ResultRecord.model_validate(record)
    except (ValueError, ValidationError) as exc:
        first = exc.errors(include_url=False)[0] if isinstance(exc, ValidationError) else None
        reason = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        detail = f"not a result record: {reason}"
        return Alarm(AlarmKind.MALFORMED, detail, lane=lane, payload=payload)
    if record["lane"] != lane or record["station"] != station:
        detail = f"record of {record['station']}/{record['lane']} published on lane {lane}"
        return Alarm(
            AlarmKind.MALFORMED,
            detail,
            gateway_id=str(record["gateway_id"]),
            lane=lane,
            record_id=str(record["record_id"]),
            payload=payload,
        )
    return Arrival(lane, record, payload)


@dataclass(frozen=True, slots=True)
class Facts:
    """What the store holds around an arriving record, read inside its transaction."""

    key: Ed25519PublicKey | None
    hash_at_id: str | None = None  # hash of the stored record with this record id
    id_at_seq: str | None = None  # record id stored at this gateway's seq
    hash_before: str | None = None  # hash of the stored record at seq - 1
    prev_hash_after: str | None = None  # prev_hash of the stored record at seq + 1


@dataclass(frozen=True, slots=True)
class Judgement:
    """The decision, the record's hash and the alarms to raise."""

    decision: Decision
    hash: str
    alarms: list[Alarm] = field(default_factory=list)


def judge(arrival: Arrival, facts: Facts) -> Judgement:
    """Decide about one record (see the module docstring for the rules)."""
    digest = record_hash(arrival.record)
    if facts.key is None:
        return _reject(arrival, digest, AlarmKind.UNKNOWN_GATEWAY, "no trusted key for gateway")
    if not signature_valid(arrival.record, facts.key):
        return _reject(arrival, digest, AlarmKind.BAD_SIGNATURE, "signature does not verify")
    if facts.hash_at_id is not None:
        if facts.hash_at_id == digest:
            return Judgement(Decision.DUPLICATE, digest)
        return _reject(arrival, digest, AlarmKind.CONFLICT, "another record has this id")
    if facts.id_at_seq is not None:
        detail = f"seq {arrival.seq} is already record {facts.id_at_seq}"
        return _reject(arrival, digest, AlarmKind.CONFLICT, detail)
    breaks = _chain_breaks(arrival, digest, facts)
    decision = Decision.STORE_SUSPECT if breaks else Decision.STORE
    return Judgement(decision, digest, breaks)


def _chain_breaks(arrival: Arrival, digest: str, facts: Facts) -> list[Alarm]:
    seq, prev_hash = arrival.seq, arrival.record.get("prev_hash")
    problems: list[tuple[int, str]] = []
    if seq == 1 and prev_hash != GENESIS_HASH:
        problems.append((seq, "the first record does not start the chain"))
    if facts.hash_before is not None and prev_hash != facts.hash_before:
        problems.append((seq, f"prev_hash does not match record {seq - 1}"))
    if facts.prev_hash_after is not None and facts.prev_hash_after != digest:
        problems.append((seq + 1, f"record {seq + 1} does not link to this one"))
    return [
        Alarm(
            AlarmKind.CHAIN_BREAK,
            detail,
            gateway_id=arrival.gateway_id,
            lane=arrival.lane,
            seq=at,
            record_id=arrival.record_id,
            payload=arrival.payload,
        )
        for at, detail in problems
    ]


def _reject(arrival: Arrival, digest: str, kind: AlarmKind, detail: str) -> Judgement:
    alarm = Alarm(
        kind,
        detail,
        gateway_id=arrival.gateway_id,
        lane=arrival.lane,
        seq=arrival.seq,
        record_id=arrival.record_id,
        payload=arrival.payload,
    )
    return Judgement(Decision.REJECT, digest, [alarm])


def key_alarm(
    gateway_id: str, lane: str, trusted: str | None, announced: str, payload: bytes, pinned: bool
) -> Alarm | None:
    """An alarm when a birth message announces a key other than the trusted one."""
    if trusted == announced:
        return None
    if trusted is None:
        detail = "gateway not in trust.keys (trust mode pinned)"
        return Alarm(AlarmKind.UNKNOWN_GATEWAY, detail, gateway_id, lane, payload=payload)
    source = "pinned" if pinned else "first-use"
    detail = f"announced key {announced[:12]}... is not the {source} key {trusted[:12]}..."
    # the announced key stands in the record_id slot: one alarm per key seen
    return Alarm(
        AlarmKind.KEY_CHANGED, detail, gateway_id, lane, record_id=announced, payload=payload
    )


def state_forgery(
    gateway_id: str, lane: str, state: dict[str, Any], key_text: str | None, payload: bytes
) -> Alarm | None:
    """A ``forged_state`` alarm unless ``key_text`` (the trusted key, or on first use the
    announced one) signed the state. With no key at all nothing can be checked: the
    unknown gateway is alarmed by ``key_alarm`` and its records are not believed."""
    if key_text is None:
        return None
    try:
        key = public_key_from_text(key_text)
    except ValueError:
        return Alarm(AlarmKind.FORGED_STATE, "announced key is not an Ed25519 key",
                     gateway_id, lane, payload=payload)  # fmt: skip
    if message_signed_by(state, [key]):
        return None
    online = "online" if state.get("online") else "offline"
    detail = f"{online} state not signed by the gateway's key {key_text[:12]}...: ignored"
    return Alarm(AlarmKind.FORGED_STATE, detail, gateway_id, lane, payload=payload)


def lane_claimed(gateway_id: str, lane: str, owner: str, payload: bytes) -> Alarm:
    """A second gateway id on a lane that already belongs to ``owner``."""
    detail = (
        f"gateway {gateway_id} announced itself on lane {lane}, which belongs to {owner}: "
        "not trusted (pin it in trust.keys if the edge box was replaced)"
    )
    return Alarm(AlarmKind.LANE_CLAIMED, detail, gateway_id, lane, payload=payload)
