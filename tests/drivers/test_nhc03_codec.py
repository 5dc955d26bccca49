"""NHC-03 dyno codec (protocols.md §3.2): request layout ``08 · cmd · 07 · p1 p2 p3 · sum``,
the 9-byte real-time reply, one-byte acks, round trips and resync."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.checksums import sum8
from drivers.errors import ChecksumError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.nhc03 import (
    Ack,
    Cmd,
    Nak,
    Realtime,
    ReplyDecoder,
    Request,
    RequestDecoder,
    Variable,
    Word,
    encode_read_variable,
    encode_reply,
    encode_request,
    encode_write_variable,
)
from tests.drivers.codec_helpers import feed_in_chunks

# §3.2 request layout, sum8 re-computed by hand
READ_REALTIME = bytes.fromhex("08 43 07 00 00 00 52")
WRITE_POWER_10KW = bytes.fromhex("08 46 07 E4 03 E8 24")  # variable 228 = 1000 (10.00 kW)
CONSTANT_POWER = bytes.fromhex("08 37 07 00 00 00 46")  # control word '7'
# 10.00 kW, 1440.5 N, 25.00 km/h
REALTIME = bytes.fromhex("06 03 E8 05 A0 05 09 C4 68")


def test_request_frames() -> None:
    assert encode_request(Cmd.REALTIME) == READ_REALTIME
    assert encode_write_variable(Variable.POWER_TARGET, 1000) == WRITE_POWER_10KW
    assert encode_request(Cmd.CONSTANT_POWER) == CONSTANT_POWER
    assert encode_read_variable(200)[:4] == bytes.fromhex("08 45 07 C8")
    got, errors = decode_all(RequestDecoder(), READ_REALTIME + WRITE_POWER_10KW)
    assert errors == []
    assert got == [Request(Cmd.REALTIME), Request(Cmd.WRITE_VARIABLE, 228, 0x03, 0xE8)]
    assert got[1].variable == 228 and got[1].word == 1000


def test_realtime_reply() -> None:
    reply = Realtime(10.0, 1440.5, 25.0)
    assert encode_reply(reply) == REALTIME
    assert decode_all(ReplyDecoder(Cmd.REALTIME), REALTIME) == ([reply], [])
    bad = REALTIME[:-1] + b"\x00"
    _, errors = decode_all(ReplyDecoder(Cmd.REALTIME), bad)
    assert errors and isinstance(errors[0], ChecksumError)


def test_one_byte_replies_take_the_last_byte() -> None:
    assert decode_all(ReplyDecoder(Cmd.LIFT_UP), b"\x06") == ([Ack()], [])
    assert decode_all(ReplyDecoder(Cmd.LIFT_UP), b"\x15") == ([Nak()], [])
    messages, errors = decode_all(ReplyDecoder(Cmd.MOTOR_ON), b"\x06\x06")
    assert messages == [Ack()] and len(errors) == 1
    assert decode_all(ReplyDecoder(Cmd.STATUS), b"\x15") == ([Nak()], [])


def test_word_reply_and_resync() -> None:
    word = encode_reply(Word(0x3103))
    stream = b"\x99\x06\x00" + word + REALTIME[:3]
    got = feed_in_chunks(ReplyDecoder(Cmd.STATUS), stream, list(range(len(stream))))
    assert got == [Word(0x3103)]
    decoder = ReplyDecoder(Cmd.STATUS)
    decoder.feed(word[:2])
    assert decoder.next_message() is NEED_DATA


def test_out_of_range_is_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_write_variable(300, 1)
    with pytest.raises(LocalProtocolError):
        encode_write_variable(200, 70000)
    with pytest.raises(LocalProtocolError):
        encode_reply(Realtime(-1.0, 0.0, 0.0))
    with pytest.raises(LocalProtocolError):
        encode_request(Cmd.REALTIME, 256)


@given(
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF * 10 + 9), st.integers(0, 0xFFFF),
    st.binary(max_size=30),
)  # fmt: skip
def test_realtime_round_trip_after_garbage(power: int, force: int, speed: int, junk: bytes) -> None:
    reply = Realtime(power / 100, round(force / 10, 1), speed / 100)
    frame = encode_reply(reply)
    assert frame[-1] == sum8(frame[:-1])
    got = feed_in_chunks(ReplyDecoder(Cmd.REALTIME), junk + frame, [1, 5])
    assert got[-1] == reply


@given(st.sampled_from(list(Cmd)), st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))
def test_request_round_trip(cmd: Cmd, p1: int, p2: int, p3: int) -> None:
    frame = encode_request(cmd, p1, p2, p3)
    assert decode_all(RequestDecoder(), b"\x01" + frame)[0] == [Request(cmd, p1, p2, p3)]
