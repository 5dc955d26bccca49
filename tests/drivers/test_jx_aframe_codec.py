"""Jiangxing A-frame codec: worked examples, tolerant fields, resync and property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import (
    ChecksumError,
    DeviceRefused,
    FrameError,
    LocalProtocolError,
    UnexpectedResponse,
)
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.jx_aframe import (
    Ack,
    BrakeResultFrame,
    Command,
    ForceSample,
    Nak,
    Reply,
    ReplyDecoder,
    Request,
    RequestDecoder,
    SpeedFrame,
    StreamEnd,
    UnknownFrame,
    WeightFrame,
    answer_of,
    answers,
    encode_frame,
    encode_reply,
    encode_request,
    format_decimal,
    format_int,
)

# protocols.md §5.1 gives `41 04 63 58`; the others are the command strings of S4's
# DeviceBrakRollerDriverOfJXGT2 / DeviceSpeedDriverOfTLCH10 (all re-checked by hand).
REQUEST_EXAMPLES = [
    (Command.LIFT_UP, "41 04 63 58"),
    (Command.ZERO, "41 04 62 59"),
    (Command.LIFT_DOWN, "41 04 64 57"),
    (Command.START, "41 04 66 55"),
    (Command.READ, "41 04 68 53"),
    (Command.GET_RESULT, "41 04 6B 50"),
    (Command.TESTER_RAISE, "41 04 70 4B"),
    (Command.TESTER_LOWER, "41 04 71 4A"),
]

# Reply frames derived from the §5.1 layout (docs/protocols/jx-aframe.md lists them).
REPLY_EXAMPLES = [
    (Ack(Command.LIFT_UP), "41 04 63 58"),
    (ForceSample(123, 118), "41 0C 66 30 31 32 33 30 31 31 38 BD"),
    (StreamEnd(), "41 0C 45 45 45 45 45 45 45 45 45 46"),
    (
        BrakeResultFrame(512, 498, 300, 262),
        "41 14 6B 30 35 31 32 30 34 39 38 30 33 30 30 30 32 36 32 16",
    ),
    (WeightFrame(1520, 1480), "41 14 68 30 30 30 30 30 30 30 30 31 35 32 30 31 34 38 30 2E"),
    (SpeedFrame(12.3, 0.0, False), "41 0F 68 30 31 32 2E 33 30 30 30 2E 30 20 46"),
    (SpeedFrame(0.0, 38.2, True), "41 0F 68 30 30 30 2E 30 30 33 38 2E 32 61 FE"),
    (Nak(), "15"),
]


def decode_replies(data: bytes) -> tuple[list[Reply], list[FrameError]]:
    return decode_all(ReplyDecoder(), data)


@pytest.mark.parametrize(("command", "wire"), REQUEST_EXAMPLES)
def test_request_examples(command: Command, wire: str) -> None:
    frame = bytes.fromhex(wire)
    assert encode_request(command) == frame
    assert sum(frame) % 256 == 0  # neg_sum8: the whole frame sums to zero
    assert decode_all(RequestDecoder(), frame) == ([Request(command)], [])


@pytest.mark.parametrize(("message", "wire"), REPLY_EXAMPLES)
def test_reply_examples(message: Reply, wire: str) -> None:
    frame = bytes.fromhex(wire)
    assert encode_reply(message) == frame
    assert decode_replies(frame) == ([message], [])


def test_end_frame_needs_only_the_three_markers() -> None:
    body = b"A\x0cE000E000E"
    frame = encode_frame(body[2], body[3:])
    assert decode_replies(frame) == ([StreamEnd()], [])


@pytest.mark.parametrize(
    ("fields", "left", "right"),
    [(b"  12 -05", 12, -5), (b"0000-012", 0, -12), (b" 7  9999", 7, 9999)],
)
def test_force_fields_tolerate_padding_and_sign(fields: bytes, left: int, right: int) -> None:
    frame = encode_frame(Command.START, fields)
    assert decode_replies(frame)[0] == [ForceSample(left, right)]


@pytest.mark.parametrize(
    ("field", "value"), [(b"040.5", 40.5), (b" 40.5", 40.5), (b"00040", 40.0), (b"40.  ", 40.0)]
)
def test_speed_fields_are_decimal_text(field: bytes, value: float) -> None:
    frame = encode_frame(Command.READ, field + b"000.0a")
    assert decode_replies(frame)[0] == [SpeedFrame(value, 0.0, True)]


def test_speed_flag_other_than_a_is_not_latched() -> None:
    frame = encode_frame(Command.READ, b"012.0038.00")
    assert decode_replies(frame)[0] == [SpeedFrame(12.0, 38.0, False)]


def test_weight_frame_keeps_bytes_3_to_10() -> None:
    frame = encode_frame(Command.READ, b"01230456" + b"0480" + b" 470")
    assert decode_replies(frame)[0] == [WeightFrame(480, 470, b"01230456")]


def test_record_with_other_command_is_unknown_frame() -> None:
    frame = encode_frame(0x6C, b"0" * 16)
    assert decode_replies(frame)[0] == [UnknownFrame(0x6C, b"0" * 16)]


def test_bad_checksum_is_reported_counted_and_skipped() -> None:
    bad = bytearray(encode_reply(ForceSample(100, 90)))
    bad[-1] ^= 0x01
    decoder = ReplyDecoder()
    messages, errors = decode_all(decoder, bytes(bad) + encode_reply(ForceSample(101, 91)))
    assert messages == [ForceSample(101, 91)]
    assert [type(e) for e in errors] == [ChecksumError]
    assert errors[0].raw == bytes(bad)
    assert decoder.rejected_frames == 1


def test_checksum_valid_frame_with_bad_fields_is_rejected() -> None:
    decoder = ReplyDecoder()
    frame = encode_frame(Command.START, b"12X40000")
    messages, errors = decode_all(decoder, frame + encode_reply(StreamEnd()))
    assert messages == [StreamEnd()]
    assert len(errors) == 1
    assert not isinstance(errors[0], ChecksumError)
    assert decoder.rejected_frames == 1


def test_line_noise_is_dropped_but_not_counted_as_a_lost_frame() -> None:
    decoder = ReplyDecoder()
    messages, errors = decode_all(decoder, b"\x00\xff\x41\x63" + encode_reply(Ack(0x64)))
    assert messages == [Ack(0x64)]
    assert len(errors) == 2  # the leading junk, then 'A' with an impossible length
    assert decoder.rejected_frames == 0


def test_frame_cut_by_a_new_start_byte_resyncs_without_waiting() -> None:
    # a result frame cut after 6 bytes, then a complete ack: no need to wait for 20 bytes
    cut = encode_reply(BrakeResultFrame(1, 2, 3, 4))[:6]
    messages, errors = decode_replies(cut + encode_reply(Ack(Command.ZERO)))
    assert messages == [Ack(Command.ZERO)]
    assert len(errors) == 1


def test_truncated_frame_waits_then_completes() -> None:
    frame = encode_reply(SpeedFrame(38.0, 37.9, True))
    decoder = ReplyDecoder()
    decoder.feed(frame[:9])
    assert decoder.next_message() is NEED_DATA
    decoder.feed(frame[9:])
    assert decoder.next_message() == SpeedFrame(38.0, 37.9, True)
    assert decoder.next_message() is NEED_DATA


def test_request_decoder_accepts_unknown_commands_and_refuses_long_frames() -> None:
    messages, errors = decode_all(
        RequestDecoder(), encode_reply(ForceSample(1, 2)) + encode_request(0x99)
    )
    assert messages == [Request(0x99)]
    assert errors


@pytest.mark.parametrize("value", [10000, -1000])
def test_force_outside_four_characters_is_a_local_error(value: int) -> None:
    with pytest.raises(LocalProtocolError):
        format_int(value)


@pytest.mark.parametrize("value", [1000.0, -100.0, float("nan"), float("inf")])
def test_speed_outside_five_characters_is_a_local_error(value: float) -> None:
    with pytest.raises(LocalProtocolError):
        format_decimal(value)


def test_encoder_refuses_what_the_decoder_could_not_read() -> None:
    with pytest.raises(LocalProtocolError):
        encode_frame(0x41)
    with pytest.raises(LocalProtocolError):
        encode_frame(Command.READ, b"0A00")
    with pytest.raises(LocalProtocolError):
        encode_reply(WeightFrame(1, 2, reserved=b"00"))


def test_answer_matching_skips_stale_frames() -> None:
    is_final = answers(Command.READ, WeightFrame)
    stale: list[Reply] = [
        Ack(Command.LIFT_DOWN),
        ForceSample(1, 1),
        WeightFrame(1, 1, command=0x6C),
    ]
    assert not any(is_final(message) for message in stale)
    assert is_final(WeightFrame(480, 470))
    assert is_final(Nak())
    assert answer_of([*stale, WeightFrame(480, 470)], Command.READ, WeightFrame).load_left_kg == 480


def test_answer_of_nak_and_wrong_frame() -> None:
    with pytest.raises(DeviceRefused):
        answer_of([Nak()], Command.START, Ack)
    with pytest.raises(UnexpectedResponse):
        answer_of([Ack(Command.ZERO)], Command.START, Ack)
    with pytest.raises(UnexpectedResponse):
        answer_of([], Command.START, Ack)


# --- properties -------------------------------------------------------------------------
forces = st.integers(-999, 9999)
speeds = st.integers(0, 9999).map(lambda tenths: tenths / 10)
commands = st.sampled_from(list(Command))
ascii_digits = st.binary(min_size=8, max_size=8).map(lambda raw: bytes(0x30 + b % 10 for b in raw))
frames: st.SearchStrategy[Reply] = st.one_of(
    st.builds(Ack, commands),
    st.builds(ForceSample, forces, forces, commands),
    st.just(StreamEnd()),
    st.builds(BrakeResultFrame, forces, forces, forces, forces),
    st.builds(WeightFrame, forces, forces, ascii_digits),
    st.builds(SpeedFrame, speeds, speeds, st.booleans(), commands),
    st.builds(
        UnknownFrame,
        st.sampled_from([0x62, 0x6C, 0x70]),
        st.tuples(ascii_digits, ascii_digits).map(b"".join),
    ),
)
replies = st.one_of(frames, st.just(Nak()))
noise = st.binary(max_size=40).map(lambda raw: bytes(b for b in raw if b not in (0x41, 0x15)))


@given(st.lists(replies, max_size=8))
def test_concatenated_replies_round_trip(messages: list[Reply]) -> None:
    wire = b"".join(encode_reply(message) for message in messages)
    assert decode_replies(wire) == (messages, [])


@given(st.lists(replies, max_size=5), st.data())
def test_any_chunking_gives_the_same_messages(messages: list[Reply], data: st.DataObject) -> None:
    wire = b"".join(encode_reply(message) for message in messages)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    decoder = ReplyDecoder()
    decoded: list[Reply] = []
    for start, end in zip([0, *cuts], [*cuts, len(wire)], strict=True):
        decoded += decode_all(decoder, wire[start:end])[0]
    assert decoded == messages


@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_only_replies_or_frame_errors(wire: bytes) -> None:
    messages, errors = decode_replies(wire)
    reply_types = (Ack, Nak, ForceSample, StreamEnd, BrakeResultFrame, WeightFrame, SpeedFrame)
    assert all(isinstance(m, (*reply_types, UnknownFrame)) for m in messages)
    assert all(isinstance(e, FrameError) for e in errors)


@given(st.binary(max_size=60))
def test_arbitrary_bytes_on_the_request_side(wire: bytes) -> None:
    messages, errors = decode_all(RequestDecoder(), wire)
    assert all(isinstance(m, Request) for m in messages)
    assert all(isinstance(e, FrameError) for e in errors)


@given(noise, replies)
def test_noise_before_a_frame_is_skipped(junk: bytes, message: Reply) -> None:
    messages, errors = decode_replies(junk + encode_reply(message))
    assert messages == [message]
    assert len(errors) == (1 if junk else 0)


@given(st.binary(max_size=60), frames, frames)
@settings(max_examples=150)
def test_resync_after_any_prefix(prefix: bytes, first: Reply, second: Reply) -> None:
    # a prefix may swallow the first frame's start byte, never the second frame
    messages, _ = decode_replies(prefix + encode_reply(first) + encode_reply(second))
    assert messages[-1] == second


@given(frames, st.data(), frames)
@settings(max_examples=150)
def test_corrupted_frame_then_good_frame(message: Reply, data: st.DataObject, good: Reply) -> None:
    wire = bytearray(encode_reply(message))
    index = data.draw(st.integers(0, len(wire) - 1))
    wire[index] = data.draw(st.integers(0, 255).filter(lambda b: b != wire[index]))
    messages, errors = decode_replies(bytes(wire) + encode_reply(good) + encode_reply(good))
    assert messages[-1] == good
    assert all(isinstance(e, FrameError) for e in errors)


@given(frames, st.data())
def test_truncated_frame_yields_nothing_yet(message: Reply, data: st.DataObject) -> None:
    wire = encode_reply(message)
    cut = data.draw(st.integers(0, len(wire) - 1))
    assert decode_replies(wire[:cut]) == ([], [])


@given(commands)
def test_requests_round_trip(command: Command) -> None:
    assert decode_all(RequestDecoder(), encode_request(command)) == ([Request(command)], [])
