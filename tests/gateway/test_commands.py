"""Commands over MQTT as the station sends them: a slow one does not hold up the others
(or acks), and a request the gateway cannot answer as asked is answered with an error,
never with a crash."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt

from simulators.lane import SimDevice, SimLane
from tests.harness import BASE, running_lane, scenario_at_speed
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).parents[2]


def speedometer_lane(sims: SimLane) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bus = {"id": "com1", "url": sims.running["speedometer"].url, "response_timeout_s": 1.0}
    device = {
        "id": "speedometer",
        "class": "speedometer_tester",
        "protocol": "tlch10",
        "bus": "com1",
        "poll_period_s": 0.5,
    }
    return [bus], [device]


def sims() -> SimLane:
    scenario = scenario_at_speed(ROOT / "simulators/scenarios/passing-car.yaml", 0.05)
    return SimLane(scenario, [SimDevice("speedometer", "tlch10")])


class Requester:
    """A station client that sends commands and collects every answer in arrival order."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.answers: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()

    async def collect(self) -> None:
        async for message in self.client.messages:
            self.answers.append((str(message.topic), json.loads(message.payload)))  # type: ignore[arg-type]
            self.changed.set()

    async def send(self, command: str, args: dict[str, Any], **body: Any) -> None:
        payload = {"args": args, "correlation_id": body.pop("cid", command), **body}
        await self.client.publish(f"{BASE}/cmd/{command}", json.dumps(payload), qos=1)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def by_id(self, cid: str) -> dict[str, Any] | None:
        return next((a for _, a in self.answers if a.get("correlation_id") == cid), None)


async def test_a_slow_command_does_not_hold_up_a_ping(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """A 40-sample ``sample`` takes seconds; a ``ping`` sent after it is answered first."""
    async with (
        running_lane(tmp_path, mosquitto.port, sims(), speedometer_lane) as (daemon, _),
        aiomqtt.Client("127.0.0.1", mosquitto.port) as client,
    ):
        requester = Requester(client)
        await client.subscribe(f"{BASE}/response/#", qos=1)
        collector = asyncio.create_task(requester.collect())
        try:
            slow = {"device": "speedometer", "count": 40, "interval_s": 0.2}
            await requester.send("sample", slow, cid="slow")
            await requester.send("ping", {}, cid="quick")
            await requester.wait_for(lambda: requester.by_id("quick") is not None)
            assert requester.by_id("slow") is None, "the ping waited for the sample"
            await requester.wait_for(lambda: requester.by_id("slow") is not None)
            answer = requester.by_id("slow")
            assert answer is not None and answer["ok"], answer
            assert len(answer["result"]["readings"]) == 40
            assert [a["correlation_id"] for _, a in requester.answers] == ["quick", "slow"]
        finally:
            collector.cancel()
        assert daemon.proc is not None and daemon.proc.returncode is None


async def test_an_unusable_response_topic_is_answered_with_an_error(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """A response topic with a wildcard, a NUL or over 65,535 bytes cannot be published
    to; the gateway answers on its default response topic and stays up."""
    async with (
        running_lane(tmp_path, mosquitto.port, sims(), speedometer_lane) as (daemon, _),
        aiomqtt.Client("127.0.0.1", mosquitto.port) as client,
    ):
        requester = Requester(client)
        await client.subscribe(f"{BASE}/response/#", qos=1)
        collector = asyncio.create_task(requester.collect())
        try:
            # (a topic over 65,535 bytes cannot come in a property, and in a 3.1.1 payload
            # it makes the payload too big: refused as such, tests/hostile/test_commands.py)
            bad_topics = {"wild": "station/+/answers", "hash": "a/#", "nul": "a/\u0000/b"}
            for cid, topic in bad_topics.items():
                await requester.send("ping", {}, cid=cid, response_topic=topic)
            await requester.send("ping", {}, cid="after")
            await requester.wait_for(lambda: requester.by_id("after") is not None)
            for cid in bad_topics:
                answer = requester.by_id(cid)
                assert answer is not None and not answer["ok"], (cid, answer)
                assert "invalid response topic" in answer["error"]
            assert {t for t, _ in requester.answers} == {f"{BASE}/response/ping"}
            assert requester.by_id("after")["ok"]  # type: ignore[index]
        finally:
            collector.cancel()
        assert daemon.proc is not None and daemon.proc.returncode is None
