"""Commands as an attacker or a careless script sends them. Must hold for each: a clear
error answer, the refusal counted, the daemon up, nothing changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness import order, send_command
from tests.hostile.rig import hostile_lane, raw_command
from tests.mosquitto import Mosquitto

BAD_ARGUMENTS = [
    ("sample", {"device": "speedometer", "count": None}, "count"),
    ("sample", {"device": "speedometer", "interval_s": "x"}, "interval_s"),
    ("sample", {"device": "speedometer", "count": "5"}, "count"),
    ("sample", {"device": "speedometer", "count": 10_000}, "count"),
    ("check", {"device": "speedometer", "kind": "zero", "values": "x"}, "values"),
    ("check", {"device": "speedometer", "kind": "zero", "values": {"v": True}}, "values"),
    (
        "calibrate",
        {"device": "speedometer", "channel": "speed_kmh", "references": [True], "readings": [1.0]},
        "references",
    ),
    (
        "calibrate",
        {"device": "speedometer", "channel": "x", "references": [1], "readings": [1], "apply": 1},
        "apply",
    ),
    ("abort", {"inspection_id": 17}, "inspection_id"),
    ("ping", {"unexpected": 1}, "unexpected"),
    ("rollback", {"device": "../../etc", "channel": "x"}, "device"),
]


async def test_every_bad_argument_is_refused_and_counted(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    async with hostile_lane(tmp_path, mosquitto.port) as lane:
        before = await lane.counter("lanegw_task_restarts_total", task="cmd:sample")
        for command, args, field in BAD_ARGUMENTS:
            answer = await send_command(mosquitto.port, command, args)
            assert not answer["ok"], (command, args, answer)
            assert f"invalid {command} arguments" in answer["error"], answer["error"]
            assert field in answer["error"], (field, answer["error"])
        assert lane.alive()
        assert await lane.counter("lanegw_task_restarts_total", task="cmd:sample") == before
        good = await send_command(mosquitto.port, "sample", {"device": "speedometer", "count": 2})
        assert good["ok"] and len(good["result"]["readings"]) == 2


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"", "empty command payload"),
        (b"   ", "empty command payload"),
        (b"\xff\xfe not json", "invalid command payload"),
        (b"[1, 2, 3]", "invalid command payload"),
        (b'{"args": "x"}', "invalid command payload"),
        (b"[" * 30_000 + b"]" * 30_000, "invalid command payload"),
        (json.dumps({"args": {}, "pad": "x" * 70_000}).encode(), "refused (at most"),
    ],
    ids=["empty", "blank", "binary", "array", "args-string", "deep", "oversized"],
)
async def test_malformed_payloads_are_answered(
    tmp_path: Path, mosquitto: Mosquitto, payload: bytes, expected: str
) -> None:
    async with hostile_lane(tmp_path, mosquitto.port) as lane:
        before = await lane.counter("lanegw_bad_messages_total", topic="cmd")
        answer = await raw_command(mosquitto.port, "ping", payload)
        assert answer is not None and not answer["ok"] and expected in answer["error"], answer
        assert await lane.counter("lanegw_bad_messages_total", topic="cmd") == before + 1
        assert lane.alive()
        assert (await send_command(mosquitto.port, "ping", {}))["ok"]


async def test_a_ten_megabyte_command_never_reaches_the_gateway(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """MQTT 5: the gateway tells the broker its maximum packet size, so the broker drops
    the message instead of handing 10 MB to the daemon; the lane goes on."""
    async with hostile_lane(tmp_path, mosquitto.port) as lane:
        before = await lane.counter("lanegw_bad_messages_total", topic="cmd")
        huge = json.dumps({"args": {"pad": "x" * 10_000_000}}).encode()
        assert await raw_command(mosquitto.port, "ping", huge, timeout=3) is None
        assert await lane.counter("lanegw_bad_messages_total", topic="cmd") == before
        assert lane.alive()
        assert (await send_command(mosquitto.port, "ping", {}))["ok"]
        good = await send_command(mosquitto.port, "inspect", order(7))
        assert good["ok"], good
