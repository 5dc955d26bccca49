"""Records flow from a simulated tester through the daemon (a real subprocess) to a real
mosquitto, survive a broker outage and SIGKILLs of the daemon, in order, without loss."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from gateway.config import load_config
from gateway.evidence import EvidenceStore
from gateway.integrity import GENESIS_HASH
from gateway.metrics import Metrics
from gateway.mqtt import Incoming, MqttLink
from gateway.outbox import Outbox
from gateway.records import GatewayState, ResultRecord, utc_now
from gateway.verify import verify
from simulators.lane import SimDevice, SimLane
from simulators.scenario import load_scenario
from tests.harness import BASE, Daemon, Station, order, send_command, write_config
from tests.mosquitto import Mosquitto

SCENARIOS = Path(__file__).parents[2] / "simulators" / "scenarios"


@dataclass
class Lane:
    daemon: Daemon
    station: Station
    sims: SimLane
    outbox: Path


@pytest.fixture
async def lane(tmp_path: Path, mosquitto: Mosquitto) -> AsyncIterator[Lane]:
    scenario = load_scenario(SCENARIOS / "passing-car.yaml")
    scenario = scenario.model_copy(
        update={"timing": scenario.timing.model_copy(update={"time_scale": 0.02})}
    )
    sims = SimLane(scenario, [SimDevice("speedometer", "tlch10")])
    station = Station(mosquitto.port)
    ready = asyncio.Event()

    async def background() -> None:  # simulators and the station, owned by this fixture
        async with asyncio.TaskGroup() as group:
            await sims.start(group)
            group.create_task(station.run())
            ready.set()

    task = asyncio.create_task(background())
    await ready.wait()
    await station.connected.wait()
    config = write_config(
        tmp_path / "lane.yaml",
        tmp_path / "state",
        mosquitto.port,
        buses=[{"id": "com1", "url": sims.running["speedometer"].url, "response_timeout_s": 0.5}],
        devices=[
            {
                "id": "speedometer",
                "class": "speedometer_tester",
                "protocol": "tlch10",
                "bus": "com1",
                "poll_period_s": 0.5,
                "options": {"poll_interval_s": 0.02},
            }
        ],
    )
    daemon = Daemon(config, tmp_path / "daemon.log")
    await daemon.start()
    await wait_online(station, None)
    try:
        yield Lane(daemon, station, sims, tmp_path / "state" / "outbox.sqlite3")
    finally:
        await daemon.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_online(station: Station, previous_session: str | None) -> str:
    """Wait for the birth of a session other than ``previous_session`` (commands sent
    before the daemon is subscribed would be lost)."""

    def newest_birth() -> dict[str, object] | None:
        births = [m for m in station.messages.get("state", []) if m["online"]]
        return births[-1] if births else None

    def born() -> bool:
        birth = newest_birth()
        return birth is not None and birth["session_id"] != previous_session

    await station.wait_for(born, timeout=30)
    birth = newest_birth()
    assert birth is not None
    return str(birth["session_id"])


async def submit(port: int, numbers: range) -> None:
    for number in numbers:
        answer = await send_command(port, "inspect", order(number))
        assert answer["ok"], answer


def assert_complete_in_order(records: list[dict[str, object]], last_seq: int) -> None:
    """Seqs 1..last_seq all arrived, and their first arrivals came in sequence order."""
    seqs = [int(r["seq"]) for r in records if int(r["seq"]) <= last_seq]  # type: ignore[call-overload]
    assert sorted(seqs) == list(range(1, last_seq + 1)), (
        f"missing: {set(range(1, last_seq + 1)) - set(seqs)}"
    )
    assert seqs == sorted(seqs), "first arrivals are not in sequence order"


async def test_records_flow_from_tester_to_broker(lane: Lane, mosquitto: Mosquitto) -> None:
    await lane.station.wait_for(lambda: "state" in lane.station.messages)
    birth = GatewayState.model_validate(lane.station.messages["state"][-1])
    assert birth.online and [d.id for d in birth.devices] == ["speedometer"]
    await submit(mosquitto.port, range(1, 2))
    await lane.station.wait_for(lambda: len(lane.station.results) >= 2)
    item, summary = (ResultRecord.model_validate(r) for r in lane.station.results[:2])
    assert (item.seq, summary.seq) == (1, 2)
    assert (item.item_code, summary.item_code, summary.kind) == ("S1", "summary", "summary")
    speed = item.measurements[0]
    assert speed.unit == "km/h" and speed.limit is not None and speed.limit.low == 32.8
    assert 36.5 < float(speed.value) < 38.7  # type: ignore[arg-type]  # scenario: 37.6 ± noise
    assert item.verdict.value == "pass" and summary.verdict.value == "pass"
    assert item.session_id == birth.session_id and item.devices[0].id == "speedometer"
    assert not item.replayed
    progress = [p["step"] for p in lane.station.messages.get("progress", [])]
    assert "speedometer_latched" in progress
    assert birth.public_key and item.prev_hash == GENESIS_HASH
    (raw,) = [e for e in item.evidence if e.kind == "raw_frames"]
    frames = EvidenceStore(lane.outbox.parent / "evidence").get(raw.sha256)["frames"]
    assert raw.samples == len(frames) > 4  # the item's requests and the tester's replies
    assert {"tx", "rx"} == {direction for _, _, direction, _ in frames}
    assert any(data.startswith("41") for _, _, direction, data in frames if direction == "tx")
    (report,) = verify(lane.station.results, {birth.gateway_id: birth.public_key})
    assert report.ok and report.records == 2  # signed and chained by the gateway


async def test_broker_outage_loses_nothing(lane: Lane, mosquitto: Mosquitto) -> None:
    await submit(mosquitto.port, range(1, 7))  # one running, five queued
    await lane.station.wait_for(lambda: len(lane.station.results) >= 2)
    mosquitto.stop()
    produced_before = len(lane.daemon.log_events("record_produced"))
    async with asyncio.timeout(30):  # the lane goes on producing while the broker is down
        while len(lane.daemon.log_events("record_produced")) < produced_before + 3:
            await asyncio.sleep(0.1)
    mosquitto.start()
    await lane.station.wait_for(lambda: len(lane.station.unique_results()) >= 12, timeout=60)
    records = lane.station.unique_results()
    assert_complete_in_order(records, 12)
    assert any(r["replayed"] for r in records), "records produced offline must be flagged"


async def test_sigkill_loses_no_produced_record(lane: Lane, mosquitto: Mosquitto) -> None:
    rng = random.Random(5)
    number = 0
    for _kill in range(3):
        await submit(mosquitto.port, range(number + 1, number + 4))
        number += 3
        await asyncio.sleep(rng.uniform(0.2, 1.5))  # a random point in production/delivery
        session = str(lane.station.messages["state"][-1]["session_id"])
        await lane.daemon.kill()
        with sqlite3.connect(lane.outbox) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        await lane.daemon.start()
        await wait_online(lane.station, session)
    with sqlite3.connect(lane.outbox) as db:
        (last_seq,) = db.execute("SELECT value FROM meta WHERE key = 'last_seq'").fetchone()
    assert last_seq >= 2
    await lane.station.wait_for(lambda: len(lane.station.unique_results()) >= last_seq, timeout=60)
    assert_complete_in_order(lane.station.unique_results(), last_seq)
    keys = {m["gateway_id"]: m["public_key"] for m in lane.station.messages["state"] if m["online"]}
    (report,) = verify([r for r in lane.station.results if r["seq"] <= last_seq], keys)
    assert report.ok, report  # the chain survived every SIGKILL


async def test_a_clean_shutdown_says_offline(lane: Lane) -> None:
    """SIGTERM: the daemon publishes its retained offline state itself (the broker sends
    the will only when a client vanishes, not on a clean disconnect)."""
    session = await wait_online(lane.station, None)
    await lane.daemon.stop()
    assert lane.daemon.proc is not None and lane.daemon.proc.returncode == 0

    def said_offline() -> bool:
        states = lane.station.messages.get("state", [])
        return bool(states) and not states[-1]["online"]

    await lane.station.wait_for(said_offline, timeout=10)
    goodbye = lane.station.messages["state"][-1]
    assert goodbye["session_id"] == session
    assert lane.daemon.log_events("mqtt_goodbye_sent")


async def test_a_session_failing_as_the_link_stops_still_stops_it(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    """The race behind missed SIGTERMs, made deterministic: the link's task is cancelled
    (as on SIGTERM) in the same step in which a session task fails. The session's
    TaskGroup then raises the failure, not CancelledError; the link must stop anyway,
    saying goodbye, instead of taking it for a broken connection and reconnecting."""
    config = load_config(
        write_config(
            tmp_path / "lane.yaml",
            tmp_path / "state",
            mosquitto.port,
            buses=[{"id": "com1", "url": "/dev/ttyS0"}],  # never opened: no buses run here
            devices=[
                {
                    "id": "speedometer",
                    "class": "speedometer_tester",
                    "protocol": "tlch10",
                    "bus": "com1",
                }
            ],
        )
    )

    def state(online: bool) -> GatewayState:
        return GatewayState(
            online=online,
            gateway_id=config.client_id,
            station=config.station,
            lane=config.lane,
            session_id="the-session",
            ts=utc_now(),
        )

    link_task: asyncio.Task[None] | None = None

    def fail_as_the_daemon_stops(incoming: Incoming) -> None:
        assert link_task is not None
        link_task.cancel()
        raise OSError(f"{incoming.command}: the session fails in the same step")

    outbox = Outbox(tmp_path / "state" / "outbox.sqlite3", config.outbox.max_bytes)
    link = MqttLink(
        config,
        outbox,
        Metrics(),
        lambda: state(True),
        lambda: state(False),
        fail_as_the_daemon_stops,
    )
    station = Station(mosquitto.port)
    station_task = asyncio.create_task(station.run())
    link_task = asyncio.create_task(link.run())
    try:
        await station.connected.wait()
        await station.wait_for(lambda: any(m["online"] for m in station.messages.get("state", [])))
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(f"{BASE}/cmd/ping", b"{}", qos=1)
        done, _ = await asyncio.wait([link_task], timeout=10)
        assert link_task in done and link_task.cancelled(), "the link missed its cancellation"
        assert link.reconnects == 0 and not link.connected
        await station.wait_for(lambda: not station.messages["state"][-1]["online"], timeout=10)
        assert station.messages["state"][-1]["session_id"] == "the-session"
    finally:
        for task in (link_task, station_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await outbox.aclose()
