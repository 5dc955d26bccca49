"""XinCheng v8.0 dyno codec: the document's worked example (protocols.md §3.1), its
inconsistencies (a)-(c), round trips, byte-at-a-time and garbage resync."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.xincheng import (
    COMMANDS,
    Command,
    CommandDecoder,
    Coverage,
    DebugText,
    Placement,
    Response,
    ResponseDecoder,
    encode_command,
    encode_response,
    idle_fields,
    parse_roller_setup,
)
from tests.drivers.codec_helpers import feed_in_chunks

# protocols.md §3.1 worked example: set 70.0 km/h -> float bytes 00 00 8C 42; CS is the
# sum8 of the seven bytes before it (0xCC; of bytes 1-6 it would be 0x74)
SET_70 = bytes.fromhex("58 53 53 00 00 8C 42 CC 43")
SET_70_BODY = bytes.fromhex("58 53 53 00 00 8C 42 74 43")
SET_70_NANHUA = bytes.fromhex("58 53 53 00 00 8C 42 00 CC")  # CS overwrites the 'C'
# §3.1 (b): ARS example, 21.6 cm and 3600 pulses big-endian
ARS_BIG_ENDIAN = bytes.fromhex("41 52 53 41 AC CC CD 45 61 00 00 00 00 00 00 00 43")
# AII: 25.0 km/h, 1200.0 N, 40.0 % duty, key 3 latched, photocell 1 lit
AII = bytes.fromhex("41 49 49 00 00 C8 41 00 00 96 44 00 00 20 42 31 43")
POWER_UP = bytes.fromhex("44") + b"power up" + bytes.fromhex("43")


def test_worked_example_set_70_kmh() -> None:
    assert encode_command("SS", 70.0) == SET_70
    assert encode_command("SS", 70.0, coverage=Coverage.BODY) == SET_70_BODY
    assert encode_command("SS", 70.0, placement=Placement.NANHUA) == SET_70_NANHUA
    assert SET_70[3:7] == bytes.fromhex("00 00 8C 42")


def test_device_accepts_both_checksum_placements_and_coverages() -> None:
    messages, errors = decode_all(CommandDecoder(), SET_70 + SET_70_BODY + SET_70_NANHUA)
    assert errors == []
    assert messages == [
        Command("S", "S", 70.0, True),
        Command("S", "S", 70.0, True),
        Command("S", "S", 70.0, None, Placement.NANHUA),
    ]
    # a doc-placed frame with a wrong CS is still a command (controllers ignore CS)
    wrong = SET_70[:7] + b"\x00" + SET_70[8:]
    assert decode_all(CommandDecoder(), wrong) == ([Command("S", "S", 70.0, False)], [])


def test_nanhua_placement_needs_a_valid_checksum() -> None:
    bad = SET_70_NANHUA[:-1] + b"\x01"
    messages, errors = decode_all(CommandDecoder(), bad + SET_70)
    assert messages == [Command("S", "S", 70.0, True)]
    assert errors and all(isinstance(e, FrameError) for e in errors)


def test_idle_response_layout_and_key_byte() -> None:
    (message,), errors = decode_all(ResponseDecoder(), AII)
    assert errors == []
    assert isinstance(message, Response)
    assert message.code == "II" and message.values == (25.0, 1200.0, 40.0)
    assert message.remote_key == 3 and message.photocells == (True, False, False)
    assert idle_fields(message) == {"speed_kmh": 25.0, "force_n": 1200.0, "duty_pct": 40.0}
    # (c) Nanhua's labels P, F, V for the same floats
    assert idle_fields(message, "nanhua") == {
        "power_kw": 25.0,
        "force_n": 1200.0,
        "speed_kmh": 40.0,
    }
    assert encode_response(Response("I", "I", (25.0, 1200.0, 40.0), 0x31)) == AII


def test_ars_big_endian_example_is_read_with_a_fallback() -> None:
    (message,), _ = decode_all(ResponseDecoder(), ARS_BIG_ENDIAN)
    assert isinstance(message, Response)
    setup = parse_roller_setup(message)
    assert setup.byte_order == "big"
    assert setup.diameter_cm == pytest.approx(21.6) and setup.pulses_per_rev == 3600
    little = encode_response(Response("R", "S", (21.6, 3600.0, 0.0)))
    (message,), _ = decode_all(ResponseDecoder(), little)
    assert isinstance(message, Response)
    assert parse_roller_setup(message).byte_order == "little"
    nonsense = encode_response(Response("R", "S", (-5.0, 0.0, 0.0)))
    (message,), _ = decode_all(ResponseDecoder(), nonsense)
    assert isinstance(message, Response)
    with pytest.raises(FrameError):
        parse_roller_setup(message)


def test_debug_text() -> None:
    assert decode_all(ResponseDecoder(), POWER_UP) == ([DebugText("power up")], [])
    assert encode_response(DebugText("can`t up")) == b"Dcan`t upC"
    with pytest.raises(LocalProtocolError):
        encode_response(DebugText("Contains C"))


def test_unframeable_commands_are_refused() -> None:
    with pytest.raises(LocalProtocolError):
        encode_command("S", 1.0)
    with pytest.raises(LocalProtocolError):
        encode_command("SS", float("nan"))
    with pytest.raises(LocalProtocolError):
        encode_command("SS", 1e39)
    assert set(COMMANDS) >= {"SS", "SF", "SP", "BS", "BF", "BP", "BQ", "JU", "JD", "RT", "II"}


def test_byte_at_a_time_and_garbage_resync() -> None:
    stream = b"\x00\xffA\x10" + AII + b"D\x01junk" + POWER_UP + b"AII" + AII
    decoder = ResponseDecoder()
    got = feed_in_chunks(decoder, stream, list(range(len(stream))))
    assert got == [
        Response("I", "I", (25.0, 1200.0, 40.0), 0x31, AII[3:15]),
        DebugText("power up"),
        Response("I", "I", (25.0, 1200.0, 40.0), 0x31, AII[3:15]),
    ]
    assert decoder.next_message() is NEED_DATA


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
letters = st.sampled_from(sorted(COMMANDS))


@given(letters, finite, st.sampled_from(Placement), st.sampled_from(Coverage))
def test_command_round_trip(code: str, value: float, placement: Placement, cover: Coverage) -> None:
    frame = encode_command(code, value, placement=placement, coverage=cover)
    (message,), errors = decode_all(CommandDecoder(), frame)
    assert errors == [] and message.code == code and message.placement is placement
    assert struct.pack("<f", message.value) == struct.pack("<f", value)


@given(letters, st.tuples(finite, finite, finite), st.integers(0, 255), st.binary(max_size=40))
def test_response_round_trip_after_garbage(
    code: str, values: tuple[float, float, float], key: int, garbage: bytes
) -> None:
    frame = encode_response(Response(code[0], code[1], values, key))
    messages = feed_in_chunks(ResponseDecoder(), garbage + frame + frame, [3, 20])
    assert len(messages) >= 2
    last = messages[-1]
    assert isinstance(last, Response) and last.code == code and last.key == key
    assert last.values == struct.unpack("<3f", struct.pack("<3f", *values))
