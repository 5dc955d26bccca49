"""FLV-1000 flowmeter codec (protocols.md §3.4): frames built by the stated rule (our notes
carry no literal example bytes; the manual's own examples break its rule), verify-log-
don't-reject checksums, round trips, resync."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.checksums import neg_sum8
from drivers.errors import LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.flv1000 import (
    MEASUREMENTS,
    Ack,
    Command,
    Measurement,
    Nak,
    ReplyDecoder,
    Request,
    RequestDecoder,
    Status,
    StatusBits,
    Version,
    encode_reply,
    encode_request,
)
from tests.drivers.codec_helpers import feed_in_chunks

# §3.4 layout, CS = (-Σ) & 0xFF over every byte before it (re-computed by hand)
READ_ALL = bytes.fromhex("86 03 77")
# O2 16.50 %, 101.3 kPa, 35.2 °C, 105.0 L/s actual
ALL_REPLY = bytes.fromhex("06 86 0C 06 72 03 F5 01 60 04 1A 79")
STATUS_REPLY = bytes.fromhex("06 88 07 11 00 00 5A")  # flow out of range + O2 warming


def test_rule_frames() -> None:
    assert encode_request(Command.ALL_ACTUAL) == READ_ALL
    assert ALL_REPLY[-1] == neg_sum8(ALL_REPLY[:-1])
    reply = Measurement(Command.ALL_ACTUAL, (16.5, 101.3, 35.2, 105.0))
    assert encode_reply(reply) == ALL_REPLY
    assert decode_all(ReplyDecoder(), ALL_REPLY) == ([reply], [])
    assert reply.named() == {
        "o2_diluted_pct_vol": 16.5,
        "pressure_kpa": 101.3,
        "temperature_c": 35.2,
        "flow_actual_l_s": 105.0,
    }


def test_status_flags() -> None:
    (status,), _ = decode_all(ReplyDecoder(), STATUS_REPLY)
    assert isinstance(status, Status) and status.checksum_ok
    assert status.bits == StatusBits.FLOW_OUT_OF_RANGE | StatusBits.O2_WARMING


def test_a_checksum_against_the_rule_is_flagged_not_rejected() -> None:
    off = ALL_REPLY[:-1] + bytes((ALL_REPLY[-1] ^ 0x21,))
    (reply,), errors = decode_all(ReplyDecoder(), off)
    assert errors == []
    assert reply == Measurement(Command.ALL_ACTUAL, (16.5, 101.3, 35.2, 105.0), checksum_ok=False)
    (request,), _ = decode_all(RequestDecoder(), bytes.fromhex("86 03 00"))
    assert request == Request(Command.ALL_ACTUAL, b"", checksum_ok=False)


def test_negative_temperature_and_calibration_requests() -> None:
    cold = Measurement(Command.TEMPERATURE, (-5.5,))
    assert decode_all(ReplyDecoder(), encode_reply(cold)) == ([cold], [])
    frame = encode_request(Command.CAL_O2_SPAN, 20.9)
    assert frame == bytes.fromhex("A1 05 08 2A") + bytes((neg_sum8(bytes.fromhex("A1 05 08 2A")),))
    (request,), _ = decode_all(RequestDecoder(), frame)
    assert request.reference == 20.9 and request.checksum_ok
    with pytest.raises(LocalProtocolError):
        encode_request(Command.CAL_O2_SPAN)
    with pytest.raises(LocalProtocolError):
        encode_request(Command.STATUS, 1.0)
    with pytest.raises(LocalProtocolError):
        encode_reply(Measurement(Command.O2, (700.0,)))


def test_nak_version_ack_and_resync() -> None:
    stream = (
        b"\x00\x06\x99"
        + bytes((0x15,))
        + encode_reply(Version("V2.1"))
        + b"\x06\x86\x05"
        + encode_reply(Ack(Command.CAL_O2_ZERO))
        + ALL_REPLY
    )
    got = feed_in_chunks(ReplyDecoder(), stream, list(range(len(stream))))
    assert got == [
        Nak(),
        Version("V2.1"),
        Ack(Command.CAL_O2_ZERO),
        Measurement(Command.ALL_ACTUAL, (16.5, 101.3, 35.2, 105.0)),
    ]
    decoder = ReplyDecoder()
    decoder.feed(ALL_REPLY[:5])
    assert decoder.next_message() is NEED_DATA


values = st.integers(0, 0xFFFF)


@given(st.sampled_from(sorted(MEASUREMENTS)), st.data(), st.binary(max_size=30))
def test_measurement_round_trip_after_garbage(
    command: Command, data: st.DataObject, junk: bytes
) -> None:
    quantities = MEASUREMENTS[command]
    raws = [
        data.draw(st.integers(-0x8000 if q.signed else 0, 0x7FFF if q.signed else 0xFFFF))
        for q in quantities
    ]
    reply = Measurement(
        command, tuple(round(r / q.divisor, 2) for r, q in zip(raws, quantities, strict=True))
    )
    frame = encode_reply(reply)
    got = feed_in_chunks(ReplyDecoder(), junk + frame + frame, [2, 7])
    assert got[-2:] == [reply, reply]
