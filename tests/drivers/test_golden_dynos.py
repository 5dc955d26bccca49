"""Golden frames of the dyno, flowmeter and OBD protocols (protocols.md §3.1, §3.2, §3.4, §7),
checked against the drivers' codecs and the simulators' own builders and parsers,
separately. See tests/drivers/test_golden_frames.py for the idea, golden/*.yaml for the
frames (the one literal example of §3.1 and frames derived by hand from the layouts).
"""

from __future__ import annotations

import struct

import pytest

from drivers.protocols import elm327, flv1000, nhc03, xincheng
from simulators.base import LanePosition, SimContext
from simulators.devices import elm327 as sim_elm327
from simulators.devices import flv1000 as sim_flv1000
from simulators.devices import nhc03 as sim_nhc03
from simulators.devices import xincheng as sim_xincheng
from simulators.faults import FaultPlan
from tests.drivers.dyno_rig import make_scenario
from tests.drivers.golden_data import Golden, decode_one, load, params

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


# --- ELM327 / SAE J1979 (§7) -------------------------------------------------------------

ELM_CAR = {"obd": {"vin": "1D4GP00R55B123456", "dtcs": ["P0133"]}, "petrol": {}}


def test_elm327_codec() -> None:
    for golden in load("elm327"):
        v = golden.values
        reply = decode_one(elm327.PromptDecoder(), golden.data)
        assert isinstance(reply, elm327.ElmReply)
        if golden.kind == "exchange":
            assert list(reply.lines) == v["lines"], golden.name
            continue
        headers = golden.kind == "pid_headers"
        frames = elm327.parse_frames(reply.data_lines, "6", headers=headers)
        messages = elm327.assemble(frames, "6")
        ecu = v.get("ecu")
        assert list(messages) == [ecu], golden.name
        message = messages[ecu]
        match golden.kind:
            case "pid" | "pid_headers":
                assert elm327.decode_pid(message, v["pid"]) == v["value"]
            case "dtcs":
                assert elm327.decode_dtcs(message, "6") == v["dtcs"]
            case "vin":
                assert elm327.decode_vin(message, "6") == v["vin"]
            case kind:
                pytest.fail(f"no codec check for {kind}")
        assert elm327.encode_command(v["command"]) == v["command"].encode("ascii") + b"\r"


def test_elm327_simulator() -> None:
    scenario = make_scenario(vehicle=ELM_CAR)
    sim = sim_elm327.Elm327Sim(SimContext(scenario, FaultPlan(), LanePosition()))
    for golden in load("elm327"):  # one session: each answer in the state the ones before left
        assert sim.answer(golden.values["command"]) == golden.data, golden.name
