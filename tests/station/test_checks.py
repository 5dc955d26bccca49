"""The receiver's decisions, pure: parsing at the edge, judging a record on the facts
around it, and finding sequence gaps."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from gateway.integrity import public_key_from_text, record_hash
from station.checks import (
    AlarmKind,
    Arrival,
    Decision,
    Facts,
    judge,
    key_alarm,
    parse_arrival,
)
from station.store.gaps import Gap, Sweep, find_gaps
from tests.station.signed import STATION, SigningGateway, forged


def arrival(payload: bytes, lane: str = "L1") -> Arrival:
    parsed = parse_arrival(lane, STATION, payload)
    assert isinstance(parsed, Arrival), parsed
    return parsed


def test_a_valid_record_is_stored_and_a_replayed_copy_is_a_duplicate() -> None:
    gw = SigningGateway("gw-1", "L1")
    first = arrival(gw.record())
    key = public_key_from_text(gw.public_key)
    stored = judge(first, Facts(key))
    assert stored.decision is Decision.STORE and not stored.alarms
    assert stored.hash == record_hash(first.record)
    # the same record again, flagged as replayed (not signed): identical body
    again = arrival(forged(first.payload, replayed=True))
    assert judge(again, Facts(key, hash_at_id=stored.hash)).decision is Decision.DUPLICATE


def test_forged_values_fail_the_signature_and_are_not_stored() -> None:
    gw = SigningGateway("gw-1", "L1")
    record = arrival(forged(gw.record(), verdict="fail"))
    judgement = judge(record, Facts(public_key_from_text(gw.public_key)))
    assert judgement.decision is Decision.REJECT
    assert [a.kind for a in judgement.alarms] == [AlarmKind.BAD_SIGNATURE]
    assert judgement.alarms[0].payload == record.payload  # the evidence kept


def test_another_gateways_key_does_not_verify() -> None:
    gw, other = SigningGateway("gw-1", "L1"), SigningGateway("gw-2", "L1")
    judgement = judge(arrival(gw.record()), Facts(public_key_from_text(other.public_key)))
    assert judgement.alarms[0].kind is AlarmKind.BAD_SIGNATURE


def test_no_key_means_unknown_gateway_and_no_ack() -> None:
    judgement = judge(arrival(SigningGateway("gw-9", "L1").record()), Facts(None))
    assert judgement.decision is Decision.REJECT
    assert judgement.alarms[0].kind is AlarmKind.UNKNOWN_GATEWAY


def test_chain_links_are_checked_both_ways() -> None:
    gw = SigningGateway("gw-1", "L1")
    key = public_key_from_text(gw.public_key)
    one, two, three = (arrival(gw.record()) for _ in range(3))
    h1, h2 = record_hash(one.record), record_hash(two.record)
    assert (
        judge(two, Facts(key, hash_before=h1, prev_hash_after=three.record["prev_hash"])).decision
        is Decision.STORE
    )
    # the neighbour before is another record than the one this links to
    broken = judge(two, Facts(key, hash_before=h2))
    assert broken.decision is Decision.STORE_SUSPECT
    assert [(a.kind, a.seq) for a in broken.alarms] == [(AlarmKind.CHAIN_BREAK, 2)]
    # the stored record after does not link to this one
    after = judge(two, Facts(key, hash_before=h1, prev_hash_after="f" * 64))
    assert [(a.kind, a.seq) for a in after.alarms] == [(AlarmKind.CHAIN_BREAK, 3)]


def test_a_first_record_must_start_the_chain() -> None:
    gw = SigningGateway("gw-1", "L1")
    gw.prev_hash = "a" * 64  # a gateway whose chain was restarted by hand
    judgement = judge(arrival(gw.record()), Facts(public_key_from_text(gw.public_key)))
    assert judgement.decision is Decision.STORE_SUSPECT
    assert judgement.alarms[0].kind is AlarmKind.CHAIN_BREAK


def test_a_second_record_at_a_stored_id_or_seq_is_a_conflict() -> None:
    gw = SigningGateway("gw-1", "L1")
    key = public_key_from_text(gw.public_key)
    record = arrival(gw.record())
    by_id = judge(record, Facts(key, hash_at_id="0" * 64))
    by_seq = judge(record, Facts(key, id_at_seq="0190-other"))
    for judgement in (by_id, by_seq):
        assert judgement.decision is Decision.REJECT
        assert judgement.alarms[0].kind is AlarmKind.CONFLICT
    assert "0190-other" in by_seq.alarms[0].detail


def test_garbage_and_wrong_lane_are_malformed_with_a_reason() -> None:
    cases = {
        b"\xff\x00not json": "not a result record",
        b"[1, 2]": "not a result record",
        json.dumps({"record_id": "x"}).encode(): "seq: Field required",
    }
    for payload, reason in cases.items():
        alarm = parse_arrival("L1", STATION, payload)
        assert not isinstance(alarm, Arrival)
        assert alarm.kind is AlarmKind.MALFORMED and reason in alarm.detail, alarm.detail
        assert alarm.payload == payload
    on_l2 = parse_arrival("L2", STATION, SigningGateway("gw-1", "L1").record())
    assert not isinstance(on_l2, Arrival)
    assert "published on lane L2" in on_l2.detail


def test_an_oversized_payload_is_refused_and_cut() -> None:
    payload = b"{" + b" " * (2 * 1024 * 1024) + b"}"
    alarm = parse_arrival("L1", STATION, payload)
    assert not isinstance(alarm, Arrival) and alarm.kind is AlarmKind.MALFORMED
    assert "more than a record's" in alarm.detail
    assert alarm.payload is not None and len(alarm.payload) == 64 * 1024


def test_key_alarms() -> None:
    assert key_alarm("gw", "L1", "k1", "k1", b"", pinned=False) is None
    changed = key_alarm("gw", "L1", "k1", "k2", b"{}", pinned=True)
    assert changed is not None and changed.kind is AlarmKind.KEY_CHANGED
    assert "pinned" in changed.detail
    unknown = key_alarm("gw", "L1", None, "k2", b"{}", pinned=False)
    assert unknown is not None and unknown.kind is AlarmKind.UNKNOWN_GATEWAY


OLD, NEW, CUTOFF = "2026-01-01T00:00:00", "2026-01-01T00:10:00", "2026-01-01T00:05:00"


def test_gaps_wait_for_the_grace_period() -> None:
    # seq 3 missing, the record above it still young: nothing yet, watermark at the gap
    young = find_gaps(0, [(1, OLD), (2, OLD), (4, NEW)], CUTOFF)
    assert young.gaps == [] and young.watermark == 2
    old = find_gaps(2, [(4, OLD), (5, OLD), (9, OLD)], CUTOFF)
    assert old.gaps == [Gap(3, 3), Gap(6, 8)] and old.watermark == 9


def test_a_gateway_first_seen_mid_stream_starts_at_its_lowest_record() -> None:
    assert find_gaps(None, [(40, OLD), (41, OLD)], CUTOFF).watermark == 41
    assert find_gaps(None, [(40, NEW)], CUTOFF).watermark is None  # 39 may still come
    assert find_gaps(None, [(2, OLD)], CUTOFF) == Sweep(2, [])  # seq 1 went elsewhere
    assert find_gaps(None, [(1, NEW), (3, OLD)], CUTOFF).gaps == [Gap(2, 2)]


@given(
    present=st.sets(st.integers(1, 200), min_size=1),
    young=st.sets(st.integers(1, 200)),
)
def test_every_missing_seq_is_reported_once_when_old(present: set[int], young: set[int]) -> None:
    """Property: sweeping repeatedly as records age reports each missing seq between the
    first and the last stored exactly once, and never a stored one."""
    seqs = sorted(present | {1})
    rows = [(s, NEW if s in young else OLD) for s in seqs]
    first = find_gaps(None, rows, CUTOFF)
    later = find_gaps(
        first.watermark, [(s, OLD) for s in seqs if s > (first.watermark or 0)], CUTOFF
    )
    reported = [s for gap in first.gaps + later.gaps for s in range(gap.first, gap.last + 1)]
    assert sorted(reported) == sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
    assert len(reported) == len(set(reported))
    assert later.watermark == seqs[-1]
