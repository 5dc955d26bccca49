"""ELM327 codec: prompt framing, status words, CAN/legacy frames with and without headers,
ISO 15765 multi-frame reassembly, J1979 decoding (examples in the style of the ELM327
data sheet: its multi-frame VIN 1G1JC5444R7252367), resync and round trips."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, decode_all
from drivers.protocols.elm327 import (
    CommandDecoder,
    ElmReply,
    Frame,
    PromptDecoder,
    assemble,
    decode_calibration_ids,
    decode_cvns,
    decode_dtcs,
    decode_pid,
    decode_vin,
    dtc_text,
    encode_command,
    parse_frames,
    supported_pids,
)
from tests.drivers.codec_helpers import feed_in_chunks

VIN_HEADERS = (
    b"7E8 10 14 49 02 01 31 47 31\r7E8 21 4A 43 35 34 34 34 52\r7E8 22 37 32 35 32 33 36 37\r\r>"
)
VIN_NO_HEADERS = b"014\r0: 49 02 01 31 47 31\r1: 4A 43 35 34 34 34 52\r2: 37 32 35 32 33 36 37\r\r>"
RPM = b"41 0C 1A F8 \r\r>"


def reply(data: bytes) -> ElmReply:
    (message,), errors = decode_all(PromptDecoder(), data)
    assert errors == []
    return message


def message_of(data: bytes, protocol: str = "6", headers: bool = True) -> bytes:
    frames = parse_frames(reply(data).data_lines, protocol, headers)
    (only,) = assemble(frames, protocol).values()
    return only


def test_prompt_framing_echo_and_status_words() -> None:
    assert encode_command("ATZ") == b"ATZ\r"
    got = reply(b"ATZ\r\r\rELM327 v1.5\r\r>")
    assert got.without_echo("ATZ") == ElmReply(("ELM327 v1.5",))
    assert reply(b"SEARCHING...\rUNABLE TO CONNECT\r\r>").status == "UNABLE TO CONNECT"
    assert reply(b"NO DATA\r\r>").status == "NO DATA"
    assert reply(b"?\r\r>").status == "?"
    assert reply(b"SEARCHING...\r41 00 BE 1F A8 13\r\r>").data_lines == ("41 00 BE 1F A8 13",)
    with pytest.raises(LocalProtocolError):
        encode_command("")


def test_vin_multi_frame_with_and_without_headers() -> None:
    for data, headers in ((VIN_HEADERS, True), (VIN_NO_HEADERS, False)):
        assert decode_vin(message_of(data, headers=headers), "6") == "1G1JC5444R7252367"


def test_rpm_single_frame_headers_off_and_on_without_spaces() -> None:
    assert decode_pid(message_of(RPM, headers=False), 0x0C) == 1726.0
    assert decode_pid(message_of(b"7E804410C1AF8\r>", headers=True), 0x0C) == 1726.0
    bitmap = message_of(b"7E8 06 41 00 BE 1F A8 13\r>")
    assert {0x01, 0x05, 0x0C, 0x0D} <= supported_pids(bitmap, 0x00)


def test_two_ecus_answer() -> None:
    frames = parse_frames(("7E8 03 41 0D 32", "7E9 03 41 0D 00"), "6", True)
    assert assemble(frames, "6") == {
        "7E8": bytes.fromhex("41 0D 32"),
        "7E9": bytes.fromhex("41 0D 00"),
    }


def test_29_bit_and_legacy_frames() -> None:
    frames = parse_frames(("18 DA F1 10 03 41 05 7B",), "7", True)
    assert frames == [Frame("10", bytes.fromhex("03 41 05 7B"))]
    assert decode_pid(assemble(frames, "7")["10"], 0x05) == 83
    legacy = parse_frames(("48 6B 10 41 0C 1A F8 C0",), "3", True)
    assert legacy == [Frame("10", bytes.fromhex("41 0C 1A F8"))]


def test_dtcs_can_and_legacy() -> None:
    assert decode_dtcs(bytes.fromhex("43 02 01 33 C1 23"), "6") == ["P0133", "U0123"]
    assert decode_dtcs(bytes.fromhex("43 01 33 00 00 00 00"), "3") == ["P0133"]
    assert decode_dtcs(bytes.fromhex("43 00"), "6") == []
    assert dtc_text(0x84, 0x20) == "B0420"


def test_legacy_vin_items_are_joined() -> None:
    vin = b"1G1JC5444R7252367"
    padded = b"\0\0\0" + vin
    lines = [
        "48 6B 10 49 02 {:02X} {} 00".format(n + 1, padded[4 * n : 4 * n + 4].hex(" ").upper())
        for n in range(5)
    ]
    message = assemble(parse_frames(lines, "3", True), "3")["10"]
    assert decode_vin(message, "3") == vin.decode()


def test_calibration_ids_and_cvns() -> None:
    calid = b"JMB*36761500\0\0\0\0" + b"JMB*47872611\0\0\0\0"
    assert decode_calibration_ids(bytes.fromhex("49 04 02") + calid, "6") == [
        "JMB*36761500",
        "JMB*47872611",
    ]
    assert decode_cvns(bytes.fromhex("49 06 02 17 91 BC 82 16 E0 62 BE"), "6") == [
        "1791BC82",
        "16E062BE",
    ]


def test_bad_lines_and_garbage() -> None:
    with pytest.raises(FrameError):
        parse_frames(("HELLO",), "6", True)
    with pytest.raises(FrameError):
        assemble([Frame("7E8", bytes.fromhex("21 00"))], "6")
    stream = b"\xff\x80>" + b"\x00\xfe" + RPM + b"OK\r>"
    got, errors = decode_all(PromptDecoder(), stream)
    assert [r.lines for r in got] == [(), ("41 0C 1A F8",), ("OK",)]
    assert len(errors) == 2
    decoder = PromptDecoder()
    decoder.feed(b"41 0C")
    assert decoder.next_message() is NEED_DATA


def test_device_side_command_lines() -> None:
    got = feed_in_chunks(CommandDecoder(), b"atz\r\nAT E0\r01 0C\r", list(range(20)))
    assert got == ["ATZ", "ATE0", "010C"]


@given(st.binary(min_size=1, max_size=60), st.sampled_from(["6", "8"]))
def test_iso_tp_round_trip(payload: bytes, protocol: str) -> None:
    """Any message split into ISO-TP frames as an ECU sends it comes back whole."""
    if len(payload) <= 7:
        lines = ["7E8 " + bytes((len(payload), *tuple(payload))).hex(" ")]
    else:
        first = bytes((0x10 | len(payload) >> 8, len(payload) & 0xFF)) + payload[:6]
        lines = ["7E8 " + first.hex(" ")]
        rest = payload[6:]
        for n in range(0, len(rest), 7):
            lines.append(
                "7E8 "
                + (bytes((0x20 | (n // 7 + 1) & 0xF,)) + rest[n : n + 7].ljust(7, b"\0")).hex(" ")
            )
    assert assemble(parse_frames(lines, protocol, True), protocol) == {"7E8": payload}


hex_line = st.lists(st.integers(0, 255), max_size=12).map(lambda b: bytes(b).hex(" ").upper())
text_line = st.one_of(hex_line, st.text(alphabet="0123456789ABCDEF :>.SEARCHINGO", max_size=30))


@given(st.lists(text_line, max_size=6), st.sampled_from(["3", "5", "6", "7"]), st.booleans())
def test_any_lines_decode_or_raise_frame_errors_only(
    lines: list[str], protocol: str, headers: bool
) -> None:
    """Whatever an adapter sends, the frame and J1979 decoders give data or FrameError."""
    try:
        messages = assemble(parse_frames(lines, protocol, headers), protocol)
    except FrameError:
        return
    for message in messages.values():
        for decode in (
            lambda m: decode_pid(m, 0x0C),
            lambda m: supported_pids(m, 0x00),
            lambda m: decode_dtcs(m, protocol),
            lambda m: decode_vin(m, protocol),
            lambda m: decode_calibration_ids(m, protocol),
            lambda m: decode_cvns(m, protocol),
        ):
            with contextlib.suppress(FrameError):
                decode(message)
