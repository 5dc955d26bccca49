"""The station end to end: real gateways with their simulators, mosquitto, ``lanegw station
run`` (one or two) and PostgreSQL. Every record stored exactly once and acknowledged, the
outboxes empty afterwards; forgeries and deleted records detected and reported."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import urllib.request
from collections import Counter
from pathlib import Path

import aiomqtt
import yaml

from tests.harness import STATION
from tests.mosquitto import Mosquitto, free_port
from tests.station.postgres import Postgres
from tests.station.receivers import (
    ACK_TIMEOUT_S,
    Receiver,
    lanegw,
    speedometer_lane,
    station_config,
    stored_payload,
    stored_rows,
    wait_until,
)
from tests.station.signed import SigningGateway, forged

ORDERS_PER_LANE = 3
RECORDS_PER_ORDER = 2  # S1 and the inspection summary


def http_get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.read().decode()


async def test_two_lanes_are_stored_once_acknowledged_and_drained(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    database = postgres.database()
    web_port, metrics_port = free_port(), free_port()
    config = station_config(
        tmp_path / "station.yaml", mosquitto.port, database,
        web={"enabled": True, "port": web_port},
        metrics={"enabled": True, "port": metrics_port},
        trust={"ack_key_file": str(tmp_path / "station-ack.key")},
    )  # fmt: skip
    # the lanes pin the station's ack key, as an installer would: lanegw station key
    printed = lanegw("station", "key", "-c", str(config))
    assert printed.returncode == 0, printed.stderr
    ack_keys = yaml.safe_load(printed.stdout.split("#")[0])["ack_keys"]
    receiver = Receiver(config, tmp_path / "station.log")
    await receiver.start()
    try:
        async with (
            speedometer_lane(tmp_path / "l1", "L1", mosquitto.port, ack_keys=ack_keys) as l1,
            speedometer_lane(tmp_path / "l2", "L2", mosquitto.port, ack_keys=ack_keys) as l2,
        ):
            for n in range(ORDERS_PER_LANE):
                await l1.inspect(100 + n)
                await l2.inspect(200 + n)
            expected = 2 * ORDERS_PER_LANE * RECORDS_PER_ORDER

            async def all_stored_and_drained() -> bool:
                rows = await stored_rows(database)
                return len(rows) == expected and l1.outbox_depth() == l2.outbox_depth() == 0

            await wait_until(all_stored_and_drained)
            rows = await stored_rows(database)
            by_gateway = Counter(gateway for _, gateway, _, _ in rows)
            assert sorted(by_gateway.values()) == [expected // 2] * 2
            for gateway in by_gateway:  # each gateway's chain, complete, each seq once
                seqs = sorted(seq for _, g, seq, _ in rows if g == gateway)
                assert seqs == list(range(1, expected // 2 + 1))

            # the page is served by the receiver and shows both lanes
            status_code, page = http_get(f"http://127.0.0.1:{web_port}/")
            assert status_code == 200 and "<html" in page.lower()
            _, snapshot = http_get(f"http://127.0.0.1:{web_port}/api/snapshot")
            assert {"L1", "L2"} <= {lane["lane"] for lane in json.loads(snapshot)["lanes"]}
            _, metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
            stored = f'lanegw_station_records_total{{lane="L1",outcome="stored"}} {expected // 2}.0'
            assert stored in metrics

        status = lanegw("station", "status", "--config", str(config), "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["open_alarms"] == 0
        assert sorted((g["lane"], g["records"]) for g in report["gateways"]) == [
            ("L1", expected // 2),
            ("L2", expected // 2),
        ]
        listed = lanegw("station", "inspections", "-c", str(config), "--lane", "L1", "--json")
        assert listed.returncode == 0, listed.stderr
        latest = json.loads(listed.stdout)
        assert [i["inspection_id"] for i in latest] == [
            f"44010012026112{n:03d}" for n in (102, 101, 100)
        ]
        assert all((i["lane"], i["items"], i["verdict"]) == ("L1", 1, "pass") for i in latest)
        exported = lanegw("station", "export", "--config", str(config), "--inspection",
                          "44010012026112100")  # fmt: skip
        assert exported.returncode == 0, exported.stderr
        document = json.loads(exported.stdout)
        assert document["jylsh"] == "44010012026112100" and document["jcxdh"] == "L1"
        assert [item["jyxm"] for item in document["items"]] == ["S1"]
        missing = lanegw("station", "export", "--config", str(config), "--inspection", "nope")
        assert missing.returncode == 1 and "nope" in missing.stderr
    finally:
        assert await receiver.stop() == 0  # SIGTERM: a clean exit


async def test_a_forged_and_a_deleted_record_are_alarmed_and_not_acknowledged(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    database = postgres.database()
    metrics_port = free_port()
    config = station_config(
        tmp_path / "station.yaml", mosquitto.port, database,
        checks={"gap_grace_s": 1, "sweep_interval_s": 0.2},
        metrics={"enabled": True, "port": metrics_port},
    )  # fmt: skip
    receiver = Receiver(config, tmp_path / "station.log")
    await receiver.start()
    gw = SigningGateway("lanegw-4401001-L3", "L3")
    base = f"lanegw/{STATION}/L3"
    one, two, three, four, five = (gw.record() for _ in range(5))
    acked: list[str] = []
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.subscribe(f"{base}/ack", qos=1)
            await client.publish(f"{base}/state", gw.birth(), qos=1, retain=True)
            # bad states: counted, and they change nothing
            await client.publish(f"lanegw/{STATION}/L4/state", b"not json", qos=1)
            await client.publish(f"lanegw/{STATION}/L5/state", gw.birth(), qos=1)
            # record 3 rewritten in transit, record 4 deleted
            for payload in (one, two, forged(three, verdict="fail"), five):
                await client.publish(f"{base}/results", payload, qos=1)
            async with asyncio.timeout(20):
                async for message in client.messages:
                    acked += json.loads(message.payload)["record_ids"]
                    if len(acked) >= 3:
                        break
        ids = [json.loads(p)["record_id"] for p in (one, two, three, four, five)]
        assert sorted(acked) == sorted([ids[0], ids[1], ids[4]])  # never the forgery

        async def gap_found() -> bool:
            alarms = receiver.events("station_alarm")
            return any(a["kind"] == "sequence_gap" for a in alarms)

        await wait_until(gap_found, timeout=20)
        status = lanegw("station", "status", "--config", str(config), "--json")
        assert status.returncode == 1  # open alarms
        alarms = {a["kind"]: a for a in json.loads(status.stdout)["alarms"]}
        assert set(alarms) == {"bad_signature", "sequence_gap"}
        assert alarms["bad_signature"]["record_id"] == ids[2]
        assert (alarms["sequence_gap"]["seq"], alarms["sequence_gap"]["seq_last"]) == (3, 4)
        table = lanegw("station", "status", "--config", str(config))
        assert "bad_signature" in table.stdout and "seq 3..4 missing" in table.stdout
        _, metrics = http_get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert 'lanegw_station_alarms_total{kind="bad_signature"} 1.0' in metrics
        assert 'lanegw_station_alarms_total{kind="sequence_gap"} 1.0' in metrics
        assert 'lanegw_station_bad_messages_total{topic="state"} 2.0' in metrics
        rows = await stored_rows(database)
        assert sorted(seq for _, _, seq, _ in rows) == [1, 2, 5]
        # reviewed by a technician: closed, with the note, and the evidence kept
        alarm_id = alarms["bad_signature"]["id"]
        resolved = lanegw("station", "resolve", alarm_id, "--note", "test MITM", "-c", str(config))
        assert resolved.returncode == 0 and "bad_signature" in resolved.stdout
        again = lanegw("station", "resolve", alarm_id, "--note", "twice", "-c", str(config))
        assert again.returncode == 1 and f"no open alarm {alarm_id}" in again.stderr
        after = json.loads(lanegw("station", "status", "-c", str(config), "--json").stdout)
        assert [a["kind"] for a in after["alarms"]] == ["sequence_gap"]
    finally:
        assert await receiver.stop() == 0


async def test_a_record_deleted_on_the_edge_box_and_one_forged_in_transit_are_caught(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    """A real gateway: while the station is down, someone deletes record 2 from the edge
    box's outbox and rewrites record 3 on the wire. The rewrite fails its signature (and
    the genuine record 3, sent again, is stored); the deletion shows as a gap."""
    database = postgres.database()
    config = station_config(
        tmp_path / "station.yaml", mosquitto.port, database,
        checks={"gap_grace_s": 3, "sweep_interval_s": 0.2},
    )  # fmt: skip
    receiver = Receiver(config, tmp_path / "station.log")
    async with speedometer_lane(tmp_path / "l1", "L1", mosquitto.port) as lane:
        await lane.inspect(400)
        await lane.inspect(401)

        async def produced() -> bool:
            return lane.outbox_depth() == 2 * RECORDS_PER_ORDER

        await wait_until(produced)
        with contextlib.closing(sqlite3.connect(lane.outbox)) as outbox, outbox:
            genuine = json.loads(
                outbox.execute("SELECT payload FROM records WHERE seq = 3").fetchone()[0]
            )
            outbox.execute("DELETE FROM records WHERE seq = 2")
        await receiver.start()
        try:
            rewritten = dict(genuine, verdict="fail" if genuine["verdict"] == "pass" else "pass")
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                topic = f"lanegw/{STATION}/L1/results"
                await client.publish(topic, json.dumps(rewritten), qos=1)

            async def drained_and_gap_found() -> bool:
                kinds = {a["kind"] for a in receiver.events("station_alarm")}
                return lane.outbox_depth() == 0 and kinds == {"bad_signature", "sequence_gap"}

            await wait_until(drained_and_gap_found, timeout=30)
        finally:
            assert await receiver.stop() == 0
    alarms = {a["kind"]: a for a in json.loads(lanegw("station", "status", "-c", str(config),
                                                      "--json").stdout)["alarms"]}  # fmt: skip
    assert alarms["bad_signature"]["record_id"] == genuine["record_id"]
    assert (alarms["sequence_gap"]["seq"], alarms["sequence_gap"]["seq_last"]) == (2, 2)
    rows = await stored_rows(database)
    assert sorted(seq for _, _, seq, _ in rows) == [1, 3, 4]
    stored = await stored_payload(database, genuine["record_id"])
    assert stored["verdict"] == genuine["verdict"]  # the genuine record, not the rewrite


async def test_two_receivers_share_the_load_and_survive_one_killed(
    tmp_path: Path, mosquitto: Mosquitto, postgres: Postgres
) -> None:
    """Two receivers in one shared-subscription group; one freezes (SIGSTOP) while records
    flow, so the broker hands it records it never stores, then it is SIGKILLed. Its
    gateway sends them again, to the survivor: none lost, none stored twice, and no
    false gap alarm."""
    database = postgres.database()
    receivers = []
    for name in ("ra", "rb"):
        config = station_config(
            tmp_path / f"{name}.yaml", mosquitto.port, database,
            mqtt={"client_id": f"station-{name}"},
            checks={"gap_grace_s": 15, "sweep_interval_s": 0.5},
        )  # fmt: skip
        receivers.append(Receiver(config, tmp_path / f"{name}.log"))
    for receiver in receivers:
        await receiver.start()
    orders = 12
    try:
        async with speedometer_lane(tmp_path / "l1", "L1", mosquitto.port) as lane:
            for n in range(orders // 3):
                await lane.inspect(300 + n)

            async def both_stored() -> bool:
                return len({r for *_, r in await stored_rows(database)}) == 2

            await wait_until(both_stored, timeout=30)
            frozen = receivers[0].proc
            assert frozen is not None
            frozen.send_signal(signal.SIGSTOP)
            for n in range(orders // 3, orders):
                await lane.inspect(300 + n)

            async def frozen_share_overdue() -> bool:  # it holds records it never acks
                return bool(lane.daemon.log_events("records_unacknowledged_resending"))

            await wait_until(frozen_share_overdue, timeout=60)
            await receivers[0].kill()

            async def all_stored_and_drained() -> bool:
                rows = await stored_rows(database)
                return len(rows) == orders * RECORDS_PER_ORDER and lane.outbox_depth() == 0

            await wait_until(all_stored_and_drained, timeout=90)
        rows = await stored_rows(database)
        assert sorted(seq for _, _, seq, _ in rows) == list(range(1, orders * 2 + 1))
        assert {receiver for *_, receiver in rows} == {"station-ra", "station-rb"}
        status = json.loads(lanegw("station", "status", "--config", str(config), "--json").stdout)
        assert status["open_alarms"] == 0, status["alarms"]
    finally:
        assert await receivers[1].stop() == 0


async def test_a_database_outage_loses_nothing(tmp_path: Path, mosquitto: Mosquitto) -> None:
    """PostgreSQL stops while a lane produces records: nothing is acknowledged meanwhile
    (the records wait in the gateway's outbox); once it is back, all are stored once."""
    cluster = Postgres()
    cluster.start()
    try:
        database = cluster.database()
        config = station_config(tmp_path / "station.yaml", mosquitto.port, database)
        receiver = Receiver(config, tmp_path / "station.log")
        await receiver.start()
        async with speedometer_lane(tmp_path / "l1", "L1", mosquitto.port) as lane:
            await lane.inspect(500)

            async def first_stored() -> bool:
                return len(await stored_rows(database)) == RECORDS_PER_ORDER

            await wait_until(first_stored)
            cluster.pause()
            await lane.inspect(501)

            async def refused_and_kept() -> bool:  # produced, not acknowledged
                failed = receiver.events("station_store_unavailable")
                return bool(failed) and lane.outbox_depth() == RECORDS_PER_ORDER

            await wait_until(refused_and_kept)
            await asyncio.sleep(2 * ACK_TIMEOUT_S)  # resent meanwhile, still refused
            assert lane.outbox_depth() == RECORDS_PER_ORDER
            cluster.resume()

            async def all_stored_and_drained() -> bool:
                rows = await stored_rows(database)
                return len(rows) == 2 * RECORDS_PER_ORDER and lane.outbox_depth() == 0

            await wait_until(all_stored_and_drained)
        assert receiver.events("station_store_reconnected")
        assert await receiver.stop() == 0
    finally:
        cluster.stop()
