"""MQD-6A codec: worked examples, S4 command table, data replies, resync, properties."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from drivers.errors import ChecksumError, FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.mqd6a import (
    DUMP_LEN,
    MAIN_LAMP_LEN,
    Cls,
    Command,
    DataDump,
    Event,
    EventKind,
    LampRecord,
    MainLampData,
    Nak,
    Record,
    Reply,
    ReplyDecoder,
    Request,
    RequestDecoder,
    Slot,
    encode_dump,
    encode_event,
    encode_main_lamp,
    encode_request,
)
from drivers.protocols.mqd6a_records import (
    DUMP_OFFSETS,
    EMPTY_RECORD,
    encode_record,
    format_offset,
    parse_offset,
    parse_record,
)

# protocols.md §4.1 gives the first request and the first event; the rest are the
# command strings of S4's DeviceLightDriverOfMQD6A (every checksum re-checked).
REQUEST_EXAMPLES = [
    (Command.MEASURE_IN_PLACE, "02 01 32 54 51 26"),
    (Command.MEASURE_FULL_TRAVEL, "02 01 32 54 52 25"),
    (Command.MEASURE_ONE_LAMP, "02 01 32 54 5B 1C"),
    (Command.MEASURE_LEFT, "02 01 32 54 07 70"),
    (Command.MEASURE_RIGHT, "02 01 32 54 40 37"),
    (Command.LEAVE_ADJUST, "02 01 32 54 53 24"),
    (Command.LEAVE_MEASURING, "02 01 32 54 54 23"),
    (Command.RIGHT_ONLY, "02 01 32 54 59 1E"),
    (Command.LEFT_ONLY, "02 01 32 54 5A 1D"),
    (Command.GET_STATUS, "02 01 32 54 6F 08"),
    (Command.GET_LEFT_AUX, "02 01 32 47 4A 3A"),
    (Command.GET_RIGHT_AUX, "02 01 32 47 4B 39"),
    (Command.GET_LEFT_MAIN, "02 01 32 47 4C 38"),
    (Command.GET_RIGHT_MAIN, "02 01 32 47 4D 37"),
    (Command.GET_CURRENT, "02 01 32 47 4E 36"),
    (Command.GET_ALL, "02 01 32 47 4F 35"),
    (Command.HOME, "02 01 32 4D 47 37"),
    (Command.STOP, "02 01 32 4D 3E 40"),
    (Command.FOUR_LAMPS, "02 01 32 53 31 47"),
    (Command.TWO_LAMPS, "02 01 32 53 32 46"),
    (Command.HIGH_ONLY, "02 01 32 53 33 45"),
    (Command.LOW_ONLY, "02 01 32 53 34 44"),
    (Command.HIGH_AND_LOW, "02 01 32 53 35 43"),
    (Command.HIGH_FIRST, "02 01 32 53 71 07"),
    (Command.LOW_FIRST, "02 01 32 53 72 06"),
    (Command.ADJUST_HIGH, "02 01 32 53 60 18"),
    (Command.NO_ADJUST_HIGH, "02 01 32 53 61 17"),
    (Command.ADJUST_LOW, "02 01 32 53 62 16"),
    (Command.NO_ADJUST_LOW, "02 01 32 53 63 15"),
]

EVENT_EXAMPLES = [
    (EventKind.MAIN_HIGH_DONE, "02 32 54 4F 29"),
    (EventKind.AUX_HIGH_DONE, "02 32 54 4E 2A"),
    (EventKind.LOW_DONE, "02 32 54 4D 2B"),
    (EventKind.HOMED, "02 32 54 40 38"),
    (EventKind.NO_LAMP, "02 32 45 13 74"),
    (EventKind.MEASURE_ERROR, "02 32 45 14 73"),
]

LEFT_HIGH = LampRecord(1.5, -12.3, 21500, 710)
LEFT_LOW = LampRecord(-4.0, -99.9, 0, 710)
RIGHT_HIGH = LampRecord(-120.0, 5.0, 18000, 705)
DUMP = DataDump((LEFT_HIGH, None, LEFT_LOW, RIGHT_HIGH, None, None))


def wire(text: str) -> bytes:
    return bytes.fromhex(text)


def decode(data: bytes, kind: str = "none", strict: bool = True) -> tuple[list[Reply], list]:
    return decode_all(ReplyDecoder(kind, strict=strict), data)  # type: ignore[arg-type]


@pytest.mark.parametrize(("command", "frame"), REQUEST_EXAMPLES)
def test_request_examples(command: Command, frame: str) -> None:
    assert encode_request(command) == wire(frame)
    assert sum(wire(frame)) % 256 == 0  # neg_sum8 over everything incl. STX
    (request,), errors = decode_all(RequestDecoder(), wire(frame))
    assert errors == [] and request.command is command


@pytest.mark.parametrize(("kind", "frame"), EVENT_EXAMPLES)
def test_event_examples(kind: EventKind, frame: str) -> None:
    assert encode_event(kind) == wire(frame)
    (event,), errors = decode(wire(frame))
    assert errors == [] and isinstance(event, Event) and event.kind is kind


def test_unknown_request_keeps_its_codes() -> None:
    frame = encode_request((0x54, 0x99))
    assert decode_all(RequestDecoder(), frame) == ([Request(0x54, 0x99)], [])
    assert Request(0x54, 0x99).command is None
    with pytest.raises(LocalProtocolError):
        encode_request((0x154, 0))


def test_status_reply_is_event_shaped() -> None:
    (event,), _ = decode(encode_event(Event(Cls.MEASURE, 0x31)))
    assert isinstance(event, Event) and event.status == "busy" and event.kind is None
    assert Event(Cls.ERROR, 0x31).status is None


def test_record_fields() -> None:
    assert encode_record(LEFT_HIGH) == b"+01.5-12.302150710"
    assert encode_record(RIGHT_HIGH) == b"-0120+05.001800705"
    assert encode_record(None) == EMPTY_RECORD
    assert parse_record(EMPTY_RECORD) is None
    assert parse_record(b"  +12 -3.5 150 710") == LampRecord(12.0, -3.5, 15000, 710)
    assert [format_offset(v) for v in (0.0, -0.5, 99.9, 100.0, -9999.0)] == [
        b"+00.0",
        b"-00.5",
        b"+99.9",
        b"+0100",
        b"-9999",
    ]
    for bad in (b"+1-.5", b"abcde", b"     ", b"+"):
        assert parse_offset(bad) is None, bad
    with pytest.raises(ValueError, match="intensity"):
        parse_record(b"+00.0+00.0ABCD0700")
    for too_big in (LampRecord(10_000.0, 0, 0, 0), LampRecord(0, 0, 1_000_000, 0)):
        with pytest.raises(LocalProtocolError):
            encode_record(too_big)


def test_dump_layout() -> None:
    frame = encode_dump(DUMP)
    assert len(frame) == DUMP_LEN and frame[:2] == b"\x02L" and frame[56:57] == b"R"
    assert sum(frame) % 256 == 0
    assert frame[DUMP_OFFSETS[3] : DUMP_OFFSETS[3] + 18] == encode_record(RIGHT_HIGH)
    assert frame[DUMP_OFFSETS[1] : DUMP_OFFSETS[1] + 18] == EMPTY_RECORD
    assert decode(frame, "dump") == ([DUMP], [])
    assert DUMP.record(Slot.RIGHT_MAIN_HIGH) == RIGHT_HIGH
    assert [slot.side for slot in Slot] == ["left"] * 3 + ["right"] * 3
    assert [slot.beam for slot in Slot][:3] == ["high", "high", "low"]
    assert [slot.lamp for slot in Slot][:3] == ["main", "aux", "main"]


def test_main_lamp_packet_as_in_s6() -> None:
    data = MainLampData("right", RIGHT_HIGH, None)
    frame = encode_main_lamp(data)
    assert len(frame) == MAIN_LAMP_LEN and frame[:2] == b"\x02R" and sum(frame) % 256 == 0
    assert decode(frame, "main") == ([data], [])


def test_data_is_only_decoded_when_asked_for() -> None:
    messages, errors = decode(encode_dump(DUMP))
    assert messages == [] and errors  # an event decoder drops it as noise


def test_strict_dump_checks_marks_and_checksum() -> None:
    frame = bytearray(encode_dump(DUMP))
    frame[56] = ord("X")
    frame[-1] = (frame[-1] + ord("R") - ord("X")) % 256  # checksum still right
    messages, errors = decode(bytes(frame), "dump")
    assert messages == [] and "marks" in str(errors[0])
    damaged = bytearray(encode_dump(DUMP))
    damaged[30] ^= 0x01
    messages, errors = decode(bytes(damaged) + encode_event(EventKind.HOMED), "dump")
    assert messages == [Event(Cls.MEASURE, 0x40)] and isinstance(errors[0], ChecksumError)


def test_lenient_dump_ignores_the_unknown_bytes() -> None:
    frame = bytearray(encode_dump(DUMP))
    frame[0], frame[1], frame[56], frame[-1] = 0xAA, 0x00, 0x7E, 0x55
    messages, errors = decode(bytes(frame), "dump", strict=False)
    assert messages == [DUMP] and errors == []
    event = encode_event(EventKind.LOW_DONE)
    assert decode(event + b"\x15" + encode_dump(DUMP), "dump", strict=False) == (
        [Event(Cls.MEASURE, 0x4D), Nak(), DUMP],
        [],
    )
    frame[20] = ord("?")  # a record that does not parse
    messages, errors = decode(bytes(frame) + event, "dump", strict=False)
    assert messages[-1] == Event(Cls.MEASURE, 0x4D) and errors


def test_truncated_dump_does_not_swallow_the_next_event() -> None:
    frame = encode_dump(DUMP)
    event = encode_event(EventKind.HOMED)
    messages, errors = decode(frame[:60] + event, "dump")
    assert messages == [Event(Cls.MEASURE, 0x40)]
    assert "cut short" in str(errors[0])
    decoder = ReplyDecoder("dump")
    decoder.feed(frame[:100])
    assert decoder.next_message() is NEED_DATA


def test_event_checksum_and_noise() -> None:
    good = encode_event(EventKind.LOW_DONE)
    bad = good[:-1] + bytes((good[-1] ^ 0x5A,))
    messages, errors = decode(b"\x00\xff" + bad + b"\x15" + good)
    assert messages == [Nak(), Event(Cls.MEASURE, 0x4D)]
    assert [type(error) for error in errors] == [FrameError, ChecksumError]
    messages, errors = decode(b"\x02\x33\x54\x4d\x2a" + good)  # a frame of another device
    assert messages == [Event(Cls.MEASURE, 0x4D)] and "header" in str(errors[0])


def test_request_decoder_drops_other_frames() -> None:
    good = encode_request(Command.HOME)
    event = encode_event(EventKind.HOMED)
    messages, errors = decode_all(RequestDecoder(), b"xy" + event + good[:-1] + b"\x00" + good)
    assert messages == [Request(0x4D, 0x47)]
    assert any(isinstance(error, ChecksumError) for error in errors)


# --- properties -----------------------------------------------------------------------
offsets = st.one_of(
    st.integers(-999, 999).map(lambda x: x / 10),
    st.integers(100, 9999).map(float),
    st.integers(-9999, -100).map(float),
)
records: st.SearchStrategy[Record] = st.one_of(
    st.none(),
    st.builds(
        LampRecord,
        offsets,
        offsets,
        st.integers(0, 9999).map(lambda x: x * 100),
        st.integers(0, 9999),
    ),
)
dumps = st.builds(
    lambda rs: DataDump((rs[0], rs[1], rs[2], rs[3], rs[4], rs[5])),
    st.lists(records, min_size=6, max_size=6),
)
events = st.builds(Event, st.sampled_from([Cls.MEASURE, Cls.ERROR]), st.integers(0, 255)) | st.just(
    Nak()
)


def encode_any(message: Reply) -> bytes:
    if isinstance(message, Nak):
        return b"\x15"
    if isinstance(message, DataDump):
        return encode_dump(message)
    assert isinstance(message, Event)
    return encode_event(message)


@given(st.lists(events | dumps, max_size=5), st.integers(1, 40), st.booleans())
def test_round_trip_in_any_chunking(messages: list[Reply], chunk: int, strict: bool) -> None:
    data = b"".join(encode_any(message) for message in messages)
    decoder = ReplyDecoder("dump", strict=strict)
    decoded: list[Reply] = []
    for start in range(0, len(data), chunk):
        more, errors = decode_all(decoder, data[start : start + chunk])
        assert errors == []
        decoded += more
    assert decoded == messages


@given(records)
def test_record_round_trip(record: Record) -> None:
    assert parse_record(encode_record(record)) == record


@settings(max_examples=300)
@given(st.binary(max_size=300), st.sampled_from(["none", "dump", "main"]), st.booleans())
def test_arbitrary_bytes_give_only_messages_or_frame_errors(
    data: bytes, kind: str, strict: bool
) -> None:
    decoder = ReplyDecoder(kind, strict=strict)  # type: ignore[arg-type]
    for start in range(0, len(data), 17):
        decode_all(decoder, data[start : start + 17])  # FrameError is caught inside
    assert decoder.buffered <= len(data)
    decode_all(RequestDecoder(), data)


@settings(max_examples=300)
@given(
    events | dumps,
    st.binary(max_size=20).map(lambda b: b.replace(b"\x02", b"")),
    st.integers(0, 200),
    st.integers(1, 255),
)
def test_a_damaged_frame_is_never_decoded_and_the_next_one_is(
    message: Reply, noise: bytes, where: int, flip: int
) -> None:
    good = encode_event(EventKind.HOMED)
    frame = bytearray(encode_any(message))
    index = where % len(frame)
    assume(frame[index] ^ flip != 0x02)  # a new STX would start a genuinely new frame
    frame[index] ^= flip
    messages, _errors = decode(noise + bytes(frame) + good, "dump")
    assert messages[-1] == Event(Cls.MEASURE, 0x40)
    assert all(isinstance(m, Nak) for m in messages[:-1])


@given(st.lists(events | dumps, min_size=1, max_size=3), st.integers(0, 250))
def test_truncated_stream_leaves_no_false_message(messages: list[Reply], cut: int) -> None:
    data = b"".join(encode_any(message) for message in messages)
    decoded, errors = decode(data[: min(cut, len(data))], "dump")
    assert errors == []
    assert decoded == messages[: len(decoded)]
