"""XK3190 codec: worked examples, command mode, resync and property tests."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.errors import ChecksumError, FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.xk3190 import (
    Command,
    CommandReply,
    ContinuousFrame,
    Nak,
    Reply,
    ReplyDecoder,
    Request,
    RequestDecoder,
    Weight,
    address_letter,
    encode_continuous,
    encode_frame,
    encode_reply,
    encode_request,
    format_weight,
    parse_weight,
)

# protocols.md §5.4: +200.0 kg, and the +20.00 variant (XOR 0x1B -> '1' 'B').
CONTINUOUS_EXAMPLES = [
    (Weight(2000, 1), "02 2B 30 30 32 30 30 30 31 31 38 03", 200.0),
    (Weight(2000, 2), "02 2B 30 30 32 30 30 30 32 31 42 03", 20.0),
]

# The request table of the A23P manual (S8), address 1 = 'A'.
REQUEST_EXAMPLES = [
    (Command.HANDSHAKE, "02 41 41 30 30 03"),
    (Command.GROSS, "02 41 42 30 33 03"),
    (Command.TARE, "02 41 43 30 32 03"),
    (Command.NET, "02 41 44 30 35 03"),
    (Command.MODEL_E, "02 41 45 30 34 03"),
    (Command.MODEL_F, "02 41 46 30 37 03"),
]

# Replies derived from the S8 layout (XOR over address, command and data; hand-checked).
REPLY_EXAMPLES = [
    (CommandReply("A", "A"), "02 41 41 30 30 03"),
    (CommandReply("A", "B", Weight(2000, 1)), "02 41 42 2B 30 30 32 30 30 30 31 31 42 03"),
    (CommandReply("C", "D", Weight(-155, 0)), "02 43 44 2D 30 30 30 31 35 35 30 31 42 03"),
    (CommandReply("A", "E", None, b"0123"), "02 41 45 30 31 32 33 30 34 03"),
]


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


def decode_replies(data: bytes) -> tuple[list[Reply], list[FrameError]]:
    return decode_all(ReplyDecoder(), data)


@pytest.mark.parametrize(("weight", "frame", "value"), CONTINUOUS_EXAMPLES)
def test_continuous_worked_examples(weight: Weight, frame: str, value: float) -> None:
    assert encode_continuous(weight) == wire(frame)
    messages, errors = decode_replies(wire(frame))
    assert messages == [ContinuousFrame(weight)] and errors == []
    assert weight.value == value


@pytest.mark.parametrize(("command", "frame"), REQUEST_EXAMPLES)
def test_request_examples(command: Command, frame: str) -> None:
    assert encode_request("A", command) == wire(frame)
    assert decode_all(RequestDecoder(), wire(frame)) == ([Request("A", command)], [])


@pytest.mark.parametrize(("reply", "frame"), REPLY_EXAMPLES)
def test_reply_examples(reply: CommandReply, frame: str) -> None:
    assert encode_reply(reply) == wire(frame)
    assert decode_replies(wire(frame)) == ([reply], [])


def test_negative_weight_and_decimals() -> None:
    assert format_weight(Weight(-1234, 3)) == b"-0012343"
    assert parse_weight(b"-0012343") == Weight(-1234, 3)
    assert Weight(-1234, 3).value == -1.234
    assert Weight.from_value(1.25, 3) == Weight(1250, 3)
    for bad in (b"+0012345", b" 0012340", b"+001234", b"+00 2340"):
        assert parse_weight(bad) is None, bad


@pytest.mark.parametrize(
    "weight", [Weight(1_000_000, 0), Weight(-1_000_000, 1), Weight(1, 5), Weight(1, -1)]
)
def test_unencodable_weights_are_refused(weight: Weight) -> None:
    with pytest.raises(LocalProtocolError):
        encode_continuous(weight)


def test_addresses_and_letters() -> None:
    assert address_letter(1) == "A" and address_letter(26) == "Z"
    for bad in (0, 27):
        with pytest.raises(LocalProtocolError):
            address_letter(bad)
    for address, command in (("a", "B"), ("AB", "B"), ("A", "1")):
        with pytest.raises(LocalProtocolError):
            encode_request(address, command)
    with pytest.raises(LocalProtocolError):
        encode_frame(b"A\x03B")


def test_bare_nak_is_decoded() -> None:
    frame = encode_continuous(Weight(5, 0))
    assert decode_replies(b"\x15" + frame) == ([Nak(), ContinuousFrame(Weight(5, 0))], [])


def test_lower_case_checksum_digits_are_accepted() -> None:
    assert decode_replies(wire("02 2B 30 30 32 30 30 30 32 31 62 03"))[0] == [
        ContinuousFrame(Weight(2000, 2))
    ]


def test_checksum_mismatch_drops_the_frame_and_resyncs() -> None:
    good = encode_continuous(Weight(4800, 0))
    bad = bytearray(good)
    bad[4] ^= 0x01  # a digit changed in flight: '0' -> '1'
    messages, errors = decode_replies(bytes(bad) + good)
    assert messages == [ContinuousFrame(Weight(4800, 0))]
    assert len(errors) == 1 and isinstance(errors[0], ChecksumError)


def test_corrupted_etx_is_dropped_without_waiting_for_more() -> None:
    frame = encode_reply(CommandReply("A", "B", Weight(480, 0)))
    decoder = ReplyDecoder()
    decoder.feed(frame[:-1] + b"Y")
    with pytest.raises(FrameError, match="no ETX"):
        decoder.next_message()
    assert decoder.next_message() is NEED_DATA


def test_cut_frame_is_dropped_at_the_next_start() -> None:
    frame = encode_continuous(Weight(480, 0))
    messages, errors = decode_replies(frame[:7] + frame)
    assert messages == [ContinuousFrame(Weight(480, 0))]
    assert [type(error) for error in errors] == [FrameError]


def test_wrong_length_and_bad_fields() -> None:
    short = encode_frame(b"+00048")  # a tF=0 header with too few digits
    assert decode_replies(short)[1][0].args[0].startswith("frame of 10 bytes")
    bad_decimals = encode_frame(b"+0004809")
    messages, errors = decode_replies(bad_decimals)
    assert messages == [] and "bad fields" in str(errors[0])
    messages, errors = decode_replies(encode_frame(b"AA1"))  # a handshake reply with data
    assert messages == [] and len(errors) == 1


def test_request_decoder_rejects_reply_frames() -> None:
    messages, errors = decode_all(RequestDecoder(), encode_continuous(Weight(1, 0)))
    assert messages == [] and errors


def test_e_f_replies_end_at_the_first_etx() -> None:
    reply = CommandReply("B", "F", None, b"0000000000000")
    frame = encode_reply(reply)
    decoder = ReplyDecoder()
    decoder.feed(frame[:-1])
    assert decoder.next_message() is NEED_DATA
    decoder.feed(frame[-1:])
    assert decoder.next_message() == reply
    messages, errors = decode_replies(b"\x02BF" + b"0" * 40)  # no ETX in sight
    assert messages == [] and "no ETX within" in str(errors[0])


# --- properties -----------------------------------------------------------------------
weights = st.builds(Weight, st.integers(min_value=-999_999, max_value=999_999), st.integers(0, 4))
letters = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
replies: st.SearchStrategy[Reply] = st.one_of(
    st.builds(ContinuousFrame, weights),
    st.builds(CommandReply, letters, st.just("A")),
    st.builds(CommandReply, letters, st.sampled_from("BCD"), weights),
    st.builds(
        CommandReply,
        letters,
        st.sampled_from("EF"),
        st.none(),
        st.binary(max_size=20).map(lambda b: bytes(0x30 + x % 10 for x in b)),
    ),
    st.just(Nak()),
)


def encode_any(reply: Reply) -> bytes:
    if isinstance(reply, ContinuousFrame):
        return encode_continuous(reply.weight)
    if isinstance(reply, Nak):
        return b"\x15"
    return encode_reply(reply)


@given(st.lists(replies, max_size=6), st.integers(1, 7))
def test_round_trip_in_any_chunking(messages: list[Reply], chunk: int) -> None:
    data = b"".join(encode_any(message) for message in messages)
    decoder = ReplyDecoder()
    decoded: list[Reply] = []
    for start in range(0, len(data), chunk):
        more, errors = decode_all(decoder, data[start : start + chunk])
        assert errors == []
        decoded += more
    assert decoded == messages


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_only_messages_or_frame_errors(data: bytes) -> None:
    decoder = ReplyDecoder()
    for start in range(0, len(data), 13):
        decode_all(decoder, data[start : start + 13])  # FrameError is caught inside
    assert decoder.buffered <= len(data)
    requests = RequestDecoder()
    decode_all(requests, data)


@settings(max_examples=300)
@given(
    replies,
    st.binary(max_size=30).map(lambda b: b.replace(b"\x02", b"")),
    st.integers(0, 40),
    st.integers(1, 255),
)
def test_a_damaged_frame_is_never_decoded_and_the_next_one_is(
    reply: Reply, noise: bytes, where: int, flip: int
) -> None:
    good = encode_continuous(Weight(123456, 2))
    frame = bytearray(encode_any(reply))
    index = where % len(frame)
    assume(frame[index] ^ flip != 0x02)  # a new STX would start a genuinely new frame
    frame[index] ^= flip
    messages, _errors = decode_replies(noise + bytes(frame) + good)
    assert messages[-1] == ContinuousFrame(Weight(123456, 2))
    # only a byte that became (or noise that holds) a NAK can decode before it
    assert all(isinstance(message, Nak) for message in messages[:-1])


@given(st.lists(replies, min_size=1, max_size=4), st.integers(0, 60))
def test_truncated_stream_leaves_no_false_message(messages: list[Reply], cut: int) -> None:
    data = b"".join(encode_any(message) for message in messages)
    decoded, errors = decode_replies(data[: min(cut, len(data))])
    assert errors == []
    assert decoded == messages[: len(decoded)]
