"""FLB-100 codec: the manual's worked examples (protocols.md §2.1), derived frames, properties."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from drivers.checksums import neg_sum8
from drivers.errors import ChecksumError, FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.flb100 import (
    COMMANDS,
    MAX_LEN,
    Ack,
    CheckValue,
    Command,
    FreeAccelCurve,
    FreeAccelReply,
    FreeAccelState,
    LastFreeAccel,
    Nak,
    Realtime,
    Request,
    RequestDecoder,
    Response,
    ResponseDecoder,
    StatusFlags,
    StatusReply,
    SteadyResult,
    encode_request,
    encode_response,
)
from tests.drivers.codec_helpers import feed_in_chunks

NONE_YET = bytes.fromhex("06 07 04 00 00 00 EF")
RUNNING = bytes.fromhex("06 05 04 0F E2")
# derived (checksums re-computed by hand)
DONE = bytes.fromhex("06 0E 04 00 54 00 5A 00 55 00 50 00 52 43")  # avg 0.84; 0.90 0.85 0.80 0.82
DONE_REPLY = FreeAccelReply(FreeAccelState.DONE, 0.84, (0.9, 0.85, 0.8, 0.82))
REALTIME = bytes.fromhex("06 0D 02 00 7B 01 9C 41 00 50 02 EE 52")
REALTIME_REPLY = Realtime(1.23, 41.2, 65, 80, 750)


def responses(data: bytes) -> tuple[list[Response], list[FrameError]]:
    return decode_all(ResponseDecoder(), data)


def test_manual_request_examples() -> None:
    assert encode_request(Command.STATUS) == bytes.fromhex("02 04 01 F9")
    assert encode_request(Command.REALTIME) == bytes.fromhex("02 04 02 F8")
    # the byte strings of S1's driver verify too
    assert encode_request(Command.LINEARITY_ZERO) == bytes.fromhex("02 04 05 F5")
    assert encode_request(Command.MODE_STEADY) == bytes.fromhex("02 04 07 F3")
    assert encode_request(Command.STEADY_STOP) == bytes.fromhex("02 04 09 F1")
    assert encode_request(Command.FREE_ACCEL_RESULT) == bytes.fromhex("02 04 04 F6")


def test_manual_ack_example() -> None:
    ack = bytes.fromhex("06 04 05 F1")
    assert responses(ack) == ([Ack(Command.LINEARITY_ZERO)], [])
    assert encode_response(Ack(Command.LINEARITY_ZERO)) == ack


def test_free_acceleration_result_frames() -> None:
    assert responses(NONE_YET) == ([FreeAccelReply(FreeAccelState.NONE)], [])
    assert responses(RUNNING) == ([FreeAccelReply(FreeAccelState.RUNNING)], [])
    assert responses(DONE) == ([DONE_REPLY], [])
    assert encode_response(FreeAccelReply(FreeAccelState.NONE)) == NONE_YET
    assert encode_response(FreeAccelReply(FreeAccelState.RUNNING)) == RUNNING
    assert encode_response(DONE_REPLY) == DONE


def test_realtime_layout() -> None:
    assert responses(REALTIME) == ([REALTIME_REPLY], [])
    assert encode_response(REALTIME_REPLY) == REALTIME
    assert len(REALTIME) == 13 and REALTIME[-1] == neg_sum8(REALTIME[:-1])


def test_status_bytes() -> None:
    frame = bytes.fromhex("06 07 01 08 08 00 E2")  # free-accel mode, accelerating
    reply = StatusReply(StatusFlags.FREE_ACCEL_MODE | StatusFlags.ACCELERATING)
    assert responses(frame) == ([reply], [])
    assert encode_response(reply) == frame
    warm = responses(encode_response(StatusReply(StatusFlags.WARMING_UP, 0x7E)))[0][0]
    assert warm == StatusReply(StatusFlags.WARMING_UP, 0x7E)


def test_other_replies() -> None:
    frames: list[tuple[str, Response]] = [
        ("06 0C 03 00 96 01 DB 00 48 00 55 DC", SteadyResult(1.5, 47.5, 72, 85)),
        ("06 06 0D 01 F4 F2", CheckValue(50.0)),
        ("06 08 0E 00 52 0E D8 AC", LastFreeAccel(0.82, 3800)),
        ("15 04 0B DC", Nak(Command.FREE_ACCEL_TRIGGER)),
    ]
    for text, reply in frames:
        assert responses(bytes.fromhex(text)) == ([reply], [])
        assert encode_response(reply) == bytes.fromhex(text)


def test_curve_frame_is_206_bytes() -> None:
    curve = FreeAccelCurve(tuple(i / 10 for i in range(100)), 3800)
    frame = encode_response(curve)
    assert len(frame) == MAX_LEN == 0xCE and frame[1] == 0xCE
    assert responses(frame) == ([curve], [])
    with pytest.raises(LocalProtocolError):
        encode_response(FreeAccelCurve((1.0,), 3800))
    with pytest.raises(LocalProtocolError):
        encode_response(FreeAccelReply(FreeAccelState.DONE, 1.0, (1.0,)))
    with pytest.raises(LocalProtocolError):
        encode_response(Realtime(-1.0, 0.0, 0, 0, 0))


def test_bare_nak() -> None:
    assert responses(b"\x15") == ([Nak()], [])
    messages, errors = responses(b"\x15\x99\x98")
    assert messages == [Nak()] and len(errors) == 1


def test_a_lone_0x15_left_by_a_broken_frame_is_no_nak() -> None:
    frame = bytearray(encode_response(Ack(Command.MODE_DIRECT)))
    frame[-1] = 0x15  # wrong checksum that happens to look like a NAK
    messages, errors = responses(bytes(frame))
    assert messages == [] and isinstance(errors[0], ChecksumError)


def test_resync_over_noise_and_implausible_headers() -> None:
    noise = bytes.fromhex("00 06 FF 15 40 06 07 09")  # 06 FF / 15 40 / 06 07 09 are no headers
    messages, errors = responses(noise + REALTIME + NONE_YET)
    assert messages == [REALTIME_REPLY, FreeAccelReply(FreeAccelState.NONE)]
    assert errors


def test_partial_frames_wait() -> None:
    decoder = ResponseDecoder()
    decoder.feed(REALTIME[:2])
    assert decoder.next_message() is NEED_DATA
    decoder.feed(REALTIME[2:9])
    assert decoder.next_message() is NEED_DATA
    decoder.feed(REALTIME[9:])
    assert decoder.next_message() == REALTIME_REPLY


def test_request_decoder() -> None:
    decoder = RequestDecoder()
    decoder.feed(b"\x03" + encode_request(Command.STATUS) + encode_request(0x30))
    with pytest.raises(FrameError):
        decoder.next_message()  # wrong DID: silence
    assert decoder.next_message() == Request(Command.STATUS)
    unknown = decoder.next_message()
    assert isinstance(unknown, Request) and unknown.cmd == 0x30 and unknown.command is None
    decoder.feed(bytes.fromhex("02 04 01 00") + bytes.fromhex("02 02"))
    with pytest.raises(ChecksumError):
        decoder.next_message()
    with pytest.raises(FrameError):
        decoder.next_message()  # the hunt for the next DID
    assert decoder.next_message() is NEED_DATA  # 02 02 waits for its CMD byte
    decoder.feed(b"\x01")
    with pytest.raises(FrameError):
        decoder.next_message()  # LB 2 is impossible
    assert decoder.next_message() is NEED_DATA
    assert decoder.buffered == 2  # 02 01 may still start a request


def test_a_truncated_frame_does_not_swallow_the_next() -> None:
    ack = encode_response(Ack(Command.LINEARITY_ZERO))
    messages, errors = responses(REALTIME[:3] + ack)
    assert messages == [Ack(Command.LINEARITY_ZERO)] and len(errors) == 1


def test_command_table() -> None:
    assert set(COMMANDS) == set(Command)
    assert COMMANDS[Command.FREE_ACCEL_RESULT] == {5, 7, 14}
    assert COMMANDS[Command.FREE_ACCEL_CURVE] == {0xCE}
    assert COMMANDS[Command.MODE_DIRECT] == {4}


# --- properties -------------------------------------------------------------------------

ACKED = [command for command in Command if 4 in COMMANDS[command]]
k_value = st.integers(0, 65535).map(lambda raw: raw / 100)
u16 = st.integers(0, 65535)


@st.composite
def any_response(draw: st.DrawFn) -> Response:
    kind = draw(st.integers(0, 6))
    if kind == 0:
        return Ack(draw(st.sampled_from(ACKED)))
    if kind == 1:
        return Nak(draw(st.sampled_from(list(Command))))
    if kind == 2:
        n = draw(u16) / 10
        return Realtime(draw(k_value), n, draw(st.integers(0, 255)), draw(u16), draw(u16))
    if kind == 3:
        return FreeAccelReply(
            FreeAccelState.DONE,
            draw(k_value),
            tuple(draw(st.lists(k_value, min_size=4, max_size=4))),
        )
    if kind == 4:
        return FreeAccelReply(draw(st.sampled_from([FreeAccelState.NONE, FreeAccelState.RUNNING])))
    if kind == 5:
        return StatusReply(StatusFlags(draw(u16)), draw(st.integers(0, 255)))
    return SteadyResult(draw(k_value), draw(u16) / 10, draw(u16), draw(u16))


def has_false_frame(stream: bytes, before: int, first: int = 0) -> bool:
    """Whether a header the table allows (a frame, or what passes for one) starts in
    ``first``..``before``: then the decoder rightly takes it, whatever follows."""
    for i in range(first, min(before, len(stream) - 2)):
        start, length, cmd = stream[i : i + 3]
        if start not in (0x06, 0x15) or cmd not in set(Command):
            continue
        if length in (COMMANDS[Command(cmd)] if start == 0x06 else {4}):
            return True
    return False


@given(any_response())
def test_property_round_trip(response: Response) -> None:
    assert responses(encode_response(response)) == ([response], [])


@given(st.binary(max_size=120), st.lists(st.integers(0, 120)))
def test_property_arbitrary_bytes_give_responses_or_frame_errors(
    data: bytes, cuts: list[int]
) -> None:
    for message in feed_in_chunks(ResponseDecoder(), data, cuts):
        assert isinstance(message, Response)


@given(st.binary(max_size=40), any_response(), st.lists(st.integers(0, 80)))
def test_property_resync_after_garbage(garbage: bytes, response: Response, cuts: list[int]) -> None:
    frame = encode_response(response)
    stream = garbage + frame
    assume(not has_false_frame(stream, len(garbage)))
    messages = feed_in_chunks(ResponseDecoder(), stream, cuts)
    if isinstance(response, Nak) and Nak() in messages:
        return  # a framed NAK whose 0x15 came alone reads as the bare NAK: the same refusal
    assert messages and messages[-1] == response


@given(st.lists(any_response(), min_size=1, max_size=6))
def test_property_concatenated_frames(items: list[Response]) -> None:
    stream = b"".join(encode_response(item) for item in items)
    assert responses(stream) == (items, [])


@given(any_response(), any_response(), st.integers(1, 12))
def test_property_truncated_then_good(first: Response, second: Response, keep: int) -> None:
    head = encode_response(first)[:keep]
    stream = head + encode_response(second)
    assume(len(head) < len(encode_response(first)))
    assume(not has_false_frame(stream, len(head), first=1))
    # an 8-bit checksum passes one window in 256: the cut frame plus what follows may pass
    # (drivers are not fooled: such a window does not end the burst)
    length = stream[1] if len(stream) > 1 else 0
    assume(
        not (4 <= length <= len(stream) and neg_sum8(stream[: length - 1]) == stream[length - 1])
    )
    messages, _ = responses(stream)
    assert messages and messages[-1] == second


@given(any_response(), st.integers(0, 300), st.integers(1, 255))
def test_property_corruption_is_never_decoded(response: Response, where: int, flip: int) -> None:
    frame = bytearray(encode_response(response))
    where %= len(frame)
    frame[where] ^= flip
    assert response not in responses(bytes(frame))[0]


@given(st.binary(max_size=80), st.lists(st.integers(0, 80)))
def test_property_request_decoder_on_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    for message in feed_in_chunks(RequestDecoder(), data, cuts):
        assert isinstance(message, Request) and message.did == 0x02


@given(st.sampled_from(list(Command)), st.binary(max_size=10))
def test_property_request_round_trip(command: Command, data: bytes) -> None:
    decoded, errors = decode_all(RequestDecoder(), encode_request(command, data))
    assert decoded == [Request(command, data)] and errors == []
