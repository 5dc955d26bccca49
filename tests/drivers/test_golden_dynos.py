"""Golden frames of the dyno and flowmeter protocols (protocols.md §3.1, §3.2, §3.4),
checked against the drivers' codecs and the simulators' own builders and parsers,
separately. See tests/drivers/test_golden_frames.py for the idea, golden/*.yaml for the
frames (the one literal example of §3.1 and frames derived by hand from the layouts).
"""

from __future__ import annotations

import struct

import pytest

from drivers.protocols import flv1000, nhc03, xincheng
from simulators.devices import flv1000 as sim_flv1000
from simulators.devices import nhc03 as sim_nhc03
from simulators.devices import xincheng as sim_xincheng
from tests.drivers.golden_data import Golden, decode_one, params

approx = pytest.approx

# --- XinCheng v8.0 (§3.1) ---------------------------------------------------------------


@params("xincheng")
def test_xincheng_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "float32":
            assert xincheng.float_bytes(v["value"]) == data
        case "command":
            command = decode_one(xincheng.CommandDecoder(), data)
            assert isinstance(command, xincheng.Command)
            assert (command.code, command.value, command.checksum_ok) == (
                v["code"],
                v["value"],
                True,
            )
            assert xincheng.encode_command(v["code"], v["value"]) == data
        case "response":
            response = decode_one(xincheng.ResponseDecoder(), data)
            assert isinstance(response, xincheng.Response)
            assert response.code == v["code"]
            assert response.values == approx(tuple(v["values"]), rel=1e-6)
            assert (response.key, response.remote_key) == (v["key"], v["remote_key"])
            assert response.photocells == tuple(v["photocells"])
            plain = xincheng.Response(v["code"][0], v["code"][1], tuple(v["values"]), v["key"])
            assert xincheng.encode_response(plain) == data
        case "debug":
            assert decode_one(xincheng.ResponseDecoder(), data) == xincheng.DebugText(v["text"])
            assert xincheng.encode_response(xincheng.DebugText(v["text"])) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("xincheng")
def test_xincheng_simulator(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "float32":
            assert struct.pack("<f", v["value"]) == data  # the simulator packs with "<f"
            buf = bytearray(b"XSS" + data + b"\x00C")
            assert sim_xincheng.split_commands(buf)[0][0][:2] == ("SS", v["value"])
        case "command":
            buf = bytearray(data)
            assert sim_xincheng.split_commands(buf) == ([(v["code"], v["value"], True)], 0)
            assert not buf
        case "response":
            values = tuple(v["values"])
            assert sim_xincheng.response(v["code"], values, v["key"]) == data
        case "debug":
            assert sim_xincheng.debug(v["text"]) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- Nanhua NHC-03 (§3.2) ---------------------------------------------------------------


@params("nhc03")
def test_nhc03_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "request":
            cmd = nhc03.Cmd(v["cmd"])
            expected = nhc03.Request(cmd, v["p1"], v["p2"], v["p3"])
            assert decode_one(nhc03.RequestDecoder(), data) == expected
            assert nhc03.encode_request(cmd, v["p1"], v["p2"], v["p3"]) == data
        case "realtime":
            reply = nhc03.Realtime(v["power_kw"], v["force_n"], v["speed_kmh"])
            assert decode_one(nhc03.ReplyDecoder(nhc03.Cmd.REALTIME), data) == reply
            assert nhc03.encode_reply(reply) == data
        case "word":
            word = nhc03.Word(v["value"])
            assert decode_one(nhc03.ReplyDecoder(nhc03.Cmd.STATUS), data) == word
            assert nhc03.encode_reply(word) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("nhc03")
def test_nhc03_simulator(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "request":
            assert sim_nhc03.parse_request(data) == (v["cmd"], v["p1"], v["p2"], v["p3"])
        case "realtime":
            built = sim_nhc03.realtime_record(v["power_kw"], v["force_n"], v["speed_kmh"])
            assert built == data
        case "word":
            assert sim_nhc03.word_record(v["value"]) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- FuLi FLV-1000 (§3.4) ---------------------------------------------------------------


@params("flv1000")
def test_flv1000_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "request":
            request = decode_one(flv1000.RequestDecoder(), data)
            expected_data = bytes.fromhex(v.get("data", ""))
            command = flv1000.Command(v["command"])
            assert request == flv1000.Request(command, expected_data, checksum_ok=True)
            assert flv1000.encode_request(command, request.reference) == data
        case "measurement":
            reply = flv1000.Measurement(flv1000.Command(v["command"]), tuple(v["values"]))
            assert decode_one(flv1000.ReplyDecoder(), data) == reply
            assert flv1000.encode_reply(reply) == data
        case "status":
            status = flv1000.Status(tuple(v["raw"]))
            assert decode_one(flv1000.ReplyDecoder(), data) == status
            assert flv1000.encode_reply(status) == data
        case "ack":
            ack = flv1000.Ack(flv1000.Command(v["command"]))
            assert decode_one(flv1000.ReplyDecoder(), data) == ack
            assert flv1000.encode_reply(ack) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("flv1000")
def test_flv1000_simulator(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "request":
            assert sim_flv1000.request_length(v["command"]) == data[1] == len(data)
        case "measurement":
            names = sim_flv1000.READS[v["command"]]
            values = dict(zip(names, v["values"], strict=True))
            assert sim_flv1000.measurement(v["command"], values) == data
        case "status":
            assert sim_flv1000.frame(0x88, bytes(v["raw"])) == data
        case "ack":
            assert sim_flv1000.frame(v["command"], b"") == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")
