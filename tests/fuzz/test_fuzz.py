"""Fuzzing every codec and the order, command, ack and config parsers: whatever the
input, the only outcomes are decoded messages or the documented errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.errors import FrameError, LocalProtocolError
from drivers.framing import NEED_DATA, FrameDecoder
from drivers.protocols import (
    elm327,
    flb100,
    flv1000,
    jx_aframe,
    mqd6a,
    nha503,
    nhc03,
    xincheng,
    xk3190,
)
from gateway.config import load_config
from gateway.errors import ConfigError
from gateway.inspection.order import InspectionOrder
from gateway.records import Ack, CommandRequest
from tests.fuzz.conftest import EXAMPLES, count

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _nha503_decoders() -> dict[str, Callable[[], FrameDecoder[Any]]]:
    out: dict[str, Callable[[], FrameDecoder[Any]]] = {}
    for command in nha503.Command:
        try:
            nha503.ReplyDecoder(command)
        except LocalProtocolError:
            continue
        out[f"nha503-reply-{command.name}"] = lambda c=command: nha503.ReplyDecoder(c)
    return out


DECODERS: dict[str, Callable[[], FrameDecoder[Any]]] = {
    "jx-aframe-reply": jx_aframe.ReplyDecoder,
    "jx-aframe-request": jx_aframe.RequestDecoder,
    "xk3190-reply": xk3190.ReplyDecoder,
    "xk3190-request": xk3190.RequestDecoder,
    "mqd6a-request": mqd6a.RequestDecoder,
    "mqd6a-reply-events": lambda: mqd6a.ReplyDecoder("none"),
    "mqd6a-reply-dump": lambda: mqd6a.ReplyDecoder("dump"),
    "mqd6a-reply-main": lambda: mqd6a.ReplyDecoder("main"),
    "nha503-request": nha503.RequestDecoder,
    "flb100-response": flb100.ResponseDecoder,
    "flb100-request": flb100.RequestDecoder,
    **_nha503_decoders(),
    "xincheng-response": xincheng.ResponseDecoder,
    "xincheng-command": xincheng.CommandDecoder,
    "nhc03-request": nhc03.RequestDecoder,
    "nhc03-reply-realtime": lambda: nhc03.ReplyDecoder(nhc03.Cmd.REALTIME),
    "nhc03-reply-status": lambda: nhc03.ReplyDecoder(nhc03.Cmd.STATUS),
    "nhc03-reply-ack": lambda: nhc03.ReplyDecoder(nhc03.Cmd.LIFT_UP),
    "flv1000-reply": flv1000.ReplyDecoder,
    "flv1000-request": flv1000.RequestDecoder,
    "elm327-reply": elm327.PromptDecoder,
    "elm327-command": elm327.CommandDecoder,
}


@pytest.mark.parametrize("name", sorted(DECODERS))
def test_codec_never_fails_except_with_frame_errors(name: str) -> None:
    @FUZZ
    @given(st.lists(st.binary(max_size=64), max_size=12))
    def run(chunks: list[bytes]) -> None:
        count(name)
        decoder = DECODERS[name]()
        total = sum(len(c) for c in chunks)
        steps = 0
        for chunk in chunks:
            decoder.feed(chunk)
            while True:
                steps += 1
                assert steps <= 2 * total + 2 * len(chunks) + 10, "decoder does not make progress"
                try:
                    if decoder.next_message() is NEED_DATA:
                        break
                except FrameError:
                    continue

    run()


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
ORDER_KEYS = list(InspectionOrder.model_fields)


@FUZZ
@given(st.binary(max_size=300))
def test_order_parser_on_raw_bytes(data: bytes) -> None:
    count("order-bytes")
    with contextlib.suppress(ValidationError):
        InspectionOrder.model_validate_json(data)


@FUZZ
@given(st.dictionaries(st.sampled_from(ORDER_KEYS) | st.text(max_size=8), JSON, max_size=14))
def test_order_parser_on_structured_json(data: dict[str, Any]) -> None:
    count("order-json")
    try:
        order = InspectionOrder.model_validate(data)
    except ValidationError:
        return
    assert len(order.inspection_id) == 17 and order.gross_mass_kg >= order.curb_mass_kg


@FUZZ
@given(st.binary(max_size=200))
def test_command_and_ack_payloads(data: bytes) -> None:
    count("command-ack")
    for model in (CommandRequest, Ack):
        with contextlib.suppress(ValidationError):
            model.model_validate_json(data)


EXAMPLE = yaml.safe_load((Path(__file__).parents[2] / "config" / "lane.example.yaml").read_text())


def _mutations() -> st.SearchStrategy[dict[str, Any]]:
    paths = [
        ("station",),
        ("mqtt", "port"),
        ("mqtt", "protocol"),
        ("outbox", "max_bytes"),
        ("buses", 0, "baudrate"),
        ("buses", 1, "url"),
        ("devices", 0, "protocol"),
        ("devices", 1, "class"),
        ("devices", 2, "bus"),
        ("devices", 0, "options"),
        ("devices", 1, "identity"),
        ("metrics", "port"),
        ("buses",),
        ("devices",),
    ]
    return st.lists(st.tuples(st.sampled_from(paths), JSON), min_size=1, max_size=4).map(_apply)


def _apply(changes: list[tuple[tuple[Any, ...], Any]]) -> dict[str, Any]:
    config: dict[str, Any] = json.loads(json.dumps(EXAMPLE, default=str))
    for path, value in changes:
        node: Any = config
        try:  # an earlier change may have replaced a parent of this path: skip it then
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
        except (TypeError, KeyError, IndexError):
            continue
    return config


@FUZZ
@given(config=_mutations())
def test_config_parser_on_mutated_example(config: dict[str, Any], tmp_path_factory: Any) -> None:
    count("config-mutated")
    path = tmp_path_factory.getbasetemp() / "fuzz-lane.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    try:
        load_config(path)
    except ConfigError as exc:
        problems = exc.problems
        assert problems, "a ConfigError must list its problems"
        assert all(p.message for p in problems)


@FUZZ
@given(text=st.text(max_size=400))
def test_config_parser_on_arbitrary_text(text: str, tmp_path_factory: Any) -> None:
    count("config-text")
    path = tmp_path_factory.getbasetemp() / "fuzz-text.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must list its problems"  # noqa: PT017
