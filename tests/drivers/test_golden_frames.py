"""Golden frames: the worked examples of protocols.md, literally, checked against the
drivers' codecs and against the simulators' own frame builders and parsers, separately.

A codec and a simulator that made the same scaling, field-order or checksum mistake
would agree with each other and pass every driver test; each must agree with the
document instead. The frames are data (tests/drivers/golden/<protocol>.yaml), each
citing its section of /work/shared/domain/protocols.md; where the document gives the
layout but no worked frame, the file says "derived" and the bytes were written out by
hand from that layout (never computed by a codec).
"""

from __future__ import annotations

from typing import Any

import pytest

from drivers.protocols import flb100, jx_aframe, mqd6a, nha503, xk3190
from simulators.wire import aframe as sim_aframe
from simulators.wire import flb100 as sim_flb100
from simulators.wire import mqd6a as sim_mqd6a
from simulators.wire import nha503 as sim_nha503
from simulators.wire import xk3190 as sim_xk3190
from tests.drivers.golden_data import Golden, decode_one, load, params

approx = pytest.approx


def test_every_protocol_has_golden_frames_and_the_doc_examples_are_there() -> None:
    literal = {p: [g.data.hex(" ") for g in load(p) if g.source == "doc"] for p in PROTOCOLS}
    assert "06 00 7b 00 2d 05 8c 00 23 00 d2 03 34 03 52 00 00 00 00 65 25" in literal["nha503"]
    assert {"02 04 01 f9", "02 04 02 f8", "06 04 05 f1", "06 07 04 00 00 00 ef"} <= set(
        literal["flb100"]
    )
    assert "41 04 63 58" in literal["jx_aframe"]
    assert {"02 01 32 54 51 26", "02 32 54 4f 29"} <= set(literal["mqd6a"])
    assert "02 2b 30 30 32 30 30 30 31 31 38 03" in literal["xk3190"]
    assert all(load(p) for p in (*PROTOCOLS, "modbus"))


PROTOCOLS = ("nha503", "flb100", "jx_aframe", "mqd6a", "xk3190")


# --- NHA-503 (§1.1) ------------------------------------------------------------------


def _gases(v: dict[str, float]) -> sim_nha503.Gases:
    return sim_nha503.Gases(v["hc_ppm"], v["co_pct"], v["co2_pct"], v["o2_pct"], v["no_ppm"])


def _main_data(v: dict[str, Any], ext: int | None) -> nha503.MainData:
    return nha503.MainData(
        v["hc_ppm"], v["co_pct"], v["co2_pct"], v["o2_pct"], v["no_ppm"],
        v["rpm"], v["oil_c"], v["flow"], v["flags"], v["lambda"], ext,
    )  # fmt: skip


def _assert_main(message: object, v: dict[str, float]) -> None:
    assert isinstance(message, nha503.MainData)
    assert (message.hc_ppm, message.no_ppm, message.engine_speed_rpm) == (
        v["hc_ppm"], v["no_ppm"], v["rpm"],
    )  # fmt: skip
    assert (message.co_pct_vol, message.co2_pct_vol, message.o2_pct_vol) == approx(
        (v["co_pct"], v["co2_pct"], v["o2_pct"])
    )
    assert (message.oil_temp_c, message.lambda_) == approx((v["oil_c"], v["lambda"]))
    assert (message.flow_raw, message.flags, message.header) == (v["flow"], v["flags"], 0x06)


def _idle_block(b: dict[str, Any]) -> nha503.IdleBlock:
    return nha503.IdleBlock(
        b["hc_ppm"], b["co_pct"], b["co2_pct"], b["o2_pct"], b["no_ppm"],
        b["rpm"], b["oil_c"], b["lambda"],
    )  # fmt: skip


@params("nha503")
def test_nha503_codec(golden: Golden) -> None:
    v, data, C = golden.values, golden.data, nha503.Command
    match golden.kind:
        case "main_data":
            _assert_main(decode_one(nha503.ReplyDecoder(C.READ_DATA), data), v)
            assert nha503.encode_reply(_main_data(v, None)) == data
        case "main_data_new":
            message = decode_one(nha503.ReplyDecoder(C.READ_DATA_NEW), data)
            _assert_main(message, v)
            assert isinstance(message, nha503.MainData)
            assert message.water_trap_full is v["water_trap_full"]
            assert nha503.encode_reply(_main_data(v, message.ext_status)) == data
        case "ambient":
            message = decode_one(nha503.ReplyDecoder(C.READ_AMBIENT), data)
            ambient = nha503.Ambient(v["temperature_c"], v["pressure_kpa"], v["humidity_pct"])
            assert message == ambient
            assert nha503.encode_reply(ambient) == data
        case "gas_block":
            decoder = nha503.RequestDecoder()
            decoder.expect_parameters(C.WRITE_SPAN_GAS)
            block = nha503.GasBlock(v["c3h8_ppm"], v["co_pct"], v["co2_pct"], v["no_ppm"])
            assert decode_one(decoder, data) == block
            assert nha503.encode_gas_block(block) == data
        case "progress":
            message = decode_one(nha503.ReplyDecoder(C.SPAN_CALIBRATE), data)
            g = _gases(v)
            expected = nha503.CalibrationProgress(
                int(g.hc_ppm), g.co_pct, g.co2_pct, g.o2_pct, int(g.no_ppm), v["pef"]
            )
            assert message == expected
            assert nha503.encode_reply(expected) == data
        case "tsi":
            blocks = [_idle_block(b) for b in (v["high"], v["low"])]
            tsi = nha503.TwoSpeedIdleResult(blocks[0], blocks[1])
            assert decode_one(nha503.ReplyDecoder(C.READ_TSI_RESULT), data) == tsi
            assert nha503.encode_reply(tsi) == data
        case "pef":
            assert decode_one(nha503.ReplyDecoder(C.READ_PEF), data) == nha503.Pef(v["pef"])
            assert nha503.encode_reply(nha503.Pef(v["pef"])) == data
        case "warmup":
            expected_w = nha503.WarmupTime(v["seconds"])
            assert decode_one(nha503.ReplyDecoder(C.READ_WARMUP), data) == expected_w
            assert nha503.encode_reply(expected_w) == data
        case "value_block":
            decoder = nha503.RequestDecoder()
            decoder.expect_parameters(C.CAL_BAROMETER)
            assert decode_one(decoder, data) == nha503.ValueBlock(v["value"])
            assert nha503.encode_value_block(v["value"]) == data
        case "command":
            request = decode_one(nha503.RequestDecoder(), data)
            assert request == nha503.CommandRequest(C(v["command"]))
            assert nha503.encode_command(C(v["command"])) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("nha503")
def test_nha503_simulator(golden: Golden) -> None:
    v, data = golden.values, golden.data
    reader = sim_nha503.RequestReader()
    match golden.kind:
        case "main_data" | "main_data_new":
            ext = sim_nha503.WATER_TRAP_FULL if v.get("water_trap_full") else None
            built = sim_nha503.main_data(
                _gases(v), v["rpm"], v["oil_c"], v["flow"], v["flags"], v["lambda"], ext
            )
            assert built == data
        case "ambient":
            assert sim_nha503.ambient(v["temperature_c"], v["pressure_kpa"], v["humidity_pct"]) == (
                data
            )
        case "tsi":
            high, low = (
                sim_nha503.IdleValues(_gases(b), b["rpm"], b["oil_c"], b["lambda"])
                for b in (v["high"], v["low"])
            )
            assert sim_nha503.tsi_result(high, low) == data
        case "progress":
            assert sim_nha503.progress(_gases(v), v["pef"]) == data
        case "pef":
            assert sim_nha503.pef(v["pef"]) == data
        case "warmup":
            assert sim_nha503.warmup_left(v["seconds"]) == data
        case "gas_block":
            reader.feed(data)
            reader.expect(sim_nha503.WRITE_SPAN_GAS)
            block = reader.next()
            assert block == sim_nha503.GasBlock(
                v["c3h8_ppm"], v["co_pct"], v["co2_pct"], v["no_ppm"]
            )
            assert reader.next() is None
        case "value_block":
            reader.feed(data)
            reader.expect(sim_nha503.CAL_BAROMETER)
            assert reader.next() == sim_nha503.Value(v["value"])
        case "command":
            reader.feed(data)
            assert reader.next() == sim_nha503.Command(v["command"], known=True)
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- FLB-100 (§2.1) --------------------------------------------------------------------


@params("flb100")
def test_flb100_codec(golden: Golden) -> None:
    v, data, C = golden.values, golden.data, flb100.Command
    if golden.kind == "request":
        assert decode_one(flb100.RequestDecoder(), data) == flb100.Request(v["command"])
        assert flb100.encode_request(C(v["command"])) == data
        return
    expected: flb100.Response
    match golden.kind:
        case "ack":
            expected = flb100.Ack(C(v["command"]))
        case "framed_nak":
            expected = flb100.Nak(C(v["command"]))
        case "free_accel_none":
            expected = flb100.FreeAccelReply(flb100.FreeAccelState.NONE)
        case "free_accel_running":
            expected = flb100.FreeAccelReply(flb100.FreeAccelState.RUNNING)
        case "free_accel_done":
            state = flb100.FreeAccelState.DONE
            expected = flb100.FreeAccelReply(state, v["average"], tuple(v["last_four"]))
        case "realtime":
            expected = flb100.Realtime(
                v["k_m1"], v["n_pct"], v["gas_temp_c"], v["oil_temp_c"], v["rpm"]
            )
        case "status":
            expected = flb100.StatusReply(flb100.StatusFlags(v["flags"]))
        case kind:
            pytest.fail(f"no codec check for {kind}")
    assert decode_one(flb100.ResponseDecoder(), data) == expected
    assert flb100.encode_response(expected) == data


@params("flb100")
def test_flb100_simulator(golden: Golden) -> None:
    v, data, wire = golden.values, golden.data, sim_flb100
    match golden.kind:
        case "request":
            buf = bytearray(data)
            assert wire.split_requests(buf) == [wire.Request(v["command"], b"")]
            assert not buf
        case "ack":
            assert wire.ack(v["command"]) == data
        case "framed_nak":
            assert wire.refusal(v["command"]) == data
        case "free_accel_none":
            assert wire.free_accel_none() == data
        case "free_accel_running":
            assert wire.free_accel_running() == data
        case "free_accel_done":
            assert wire.free_accel_done(v["average"], tuple(v["last_four"])) == data
        case "realtime":
            built = wire.realtime(v["k_m1"], v["n_pct"], v["gas_temp_c"], v["oil_temp_c"], v["rpm"])
            assert built == data
        case "status":
            assert wire.status(v["flags"]) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- Jiangxing A-frame (§5.1) ------------------------------------------------------------


@params("jx_aframe")
def test_jx_aframe_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    if golden.kind == "request":
        assert decode_one(jx_aframe.RequestDecoder(), data) == jx_aframe.Request(v["command"])
        assert jx_aframe.encode_request(v["command"]) == data
        return
    expected: jx_aframe.Reply
    match golden.kind:
        case "ack":
            expected = jx_aframe.Ack(v["command"])
        case "force_sample":
            expected = jx_aframe.ForceSample(v["left"], v["right"])
        case "stream_end":
            expected = jx_aframe.StreamEnd()
        case "brake_result":
            expected = jx_aframe.BrakeResultFrame(
                v["max_left"], v["max_right"], v["diff_left"], v["diff_right"]
            )
        case "wheel_loads":
            expected = jx_aframe.WeightFrame(v["left_kg"], v["right_kg"])
        case "speed":
            expected = jx_aframe.SpeedFrame(v["current"], v["latched_speed"], v["latched"])
        case kind:
            pytest.fail(f"no codec check for {kind}")
    assert decode_one(jx_aframe.ReplyDecoder(), data) == expected
    assert jx_aframe.encode_reply(expected) == data


@params("jx_aframe")
def test_jx_aframe_simulator(golden: Golden) -> None:
    v, data, wire = golden.values, golden.data, sim_aframe
    match golden.kind:
        case "request":
            buf = bytearray(data)
            assert wire.split_requests(buf) == [v["command"]]
            assert not buf
        case "ack":
            assert wire.ack(v["command"]) == data
        case "force_sample":
            assert wire.force_sample(v["left"], v["right"]) == data
        case "stream_end":
            assert wire.stream_end() == data
        case "brake_result":
            fields = (v["max_left"], v["max_right"], v["diff_left"], v["diff_right"])
            assert wire.brake_result(*fields) == data
        case "wheel_loads":
            assert wire.wheel_loads(v["left_kg"], v["right_kg"]) == data
        case "speed":
            assert wire.speed(v["current"], v["latched_speed"], v["latched"]) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- MQD-6A (§4.1) ---------------------------------------------------------------------


def _beam(v: dict[str, float]) -> tuple[float, float, int, int]:
    return v["h"], v["v"], int(v["intensity_cd"]), int(v["height_mm"])


@params("mqd6a")
def test_mqd6a_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "request":
            request = decode_one(mqd6a.RequestDecoder(), data)
            assert request == mqd6a.Request(v["cls"], v["sub"])
            assert request.command is not None  # one of the documented commands
            assert mqd6a.encode_request((v["cls"], v["sub"])) == data
        case "event":
            event = decode_one(mqd6a.ReplyDecoder(), data)
            assert event == mqd6a.Event(v["cls"], v["code"])
            assert isinstance(event, mqd6a.Event) and event.kind is not None
            assert mqd6a.encode_event(mqd6a.Event(v["cls"], v["code"])) == data
        case "main_lamp":
            high, low = mqd6a.LampRecord(*_beam(v["high"])), mqd6a.LampRecord(*_beam(v["low"]))
            expected = mqd6a.MainLampData(v["side"], high, low)
            assert decode_one(mqd6a.ReplyDecoder("main"), data) == expected
            assert mqd6a.encode_main_lamp(expected) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("mqd6a")
def test_mqd6a_simulator(golden: Golden) -> None:
    v, data, wire = golden.values, golden.data, sim_mqd6a
    match golden.kind:
        case "request":
            buf = bytearray(data)
            assert wire.split_requests(buf) == [wire.Request(wire.ADDRESS, (v["cls"], v["sub"]))]
            assert (v["cls"], v["sub"]) in wire.KNOWN
            assert wire.request((v["cls"], v["sub"])) == data
        case "event":
            assert wire.event((v["cls"], v["code"])) == data
        case "main_lamp":
            high, low = wire.Beam(*_beam(v["high"])), wire.Beam(*_beam(v["low"]))
            assert wire.main_lamp(v["side"], high, low) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")


# --- XK3190 (§5.4) -----------------------------------------------------------------------


@params("xk3190")
def test_xk3190_codec(golden: Golden) -> None:
    v, data = golden.values, golden.data
    match golden.kind:
        case "continuous":
            weight = xk3190.Weight(v["counts"], v["decimals"])
            frame = decode_one(xk3190.ReplyDecoder(), data)
            assert frame == xk3190.ContinuousFrame(weight)
            assert weight.value == approx(v["value"])
            assert xk3190.encode_continuous(weight) == data
        case "request":
            request = decode_one(xk3190.RequestDecoder(), data)
            assert request == xk3190.Request(v["address"], v["command"])
            assert xk3190.encode_request(v["address"], v["command"]) == data
        case "reply":
            w = xk3190.Weight(v["counts"], v["decimals"]) if "counts" in v else None
            expected = xk3190.CommandReply(v["address"], v["command"], w)
            assert decode_one(xk3190.ReplyDecoder(), data) == expected
            assert xk3190.encode_reply(expected) == data
        case kind:
            pytest.fail(f"no codec check for {kind}")


@params("xk3190")
def test_xk3190_simulator(golden: Golden) -> None:
    v, data, wire = golden.values, golden.data, sim_xk3190
    match golden.kind:
        case "continuous":
            assert wire.continuous(v["value"], v["decimals"]) == data
        case "request":
            buf = bytearray(data)
            assert wire.split_requests(buf) == [(v["address"], v["command"])]
            assert not buf
        case "reply":
            weight = (v["value"], v["decimals"]) if "value" in v else None
            assert wire.reply(v["address"], v["command"], weight) == data
        case kind:
            pytest.fail(f"no simulator check for {kind}")
