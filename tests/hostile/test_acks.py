"""Acks as an attacker sends them: with the station's key pinned, an ack nobody signed,
or one signed by another key, deletes nothing; an ack for a record never sent deletes
nothing either. Each is counted; the signed ack then lets the records go."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import aiomqtt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.integrity import public_key_text, sign_message
from gateway.outbox import Outbox
from tests.gateway.test_outbox import make
from tests.harness import BASE, order, send_command
from tests.hostile.rig import hostile_lane
from tests.mosquitto import Mosquitto


def outbox_ids(state: Path) -> list[str]:
    with sqlite3.connect(state / "outbox.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT record_id FROM records ORDER BY seq")]


async def publish_ack(port: int, ack: dict[str, object]) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        await client.publish(f"{BASE}/ack", json.dumps(ack), qos=1)


async def test_only_the_station_signed_ack_deletes_records(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    station_key, other_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    mqtt = {"delivery": "server_ack", "ack_keys": [public_key_text(station_key.public_key())]}
    async with hostile_lane(tmp_path, mosquitto.port, mqtt) as lane:
        assert (await send_command(mosquitto.port, "inspect", order(11)))["ok"]
        await lane.station.wait_for(lambda: len(lane.station.unique_results()) >= 2)
        ids = [r["record_id"] for r in lane.station.unique_results()]
        forgeries = [
            {"record_ids": ids},  # unsigned
            sign_message({"record_ids": ids}, other_key),  # another key
            {**sign_message({"record_ids": ids[:1]}, station_key), "record_ids": ids},  # altered
            {"record_ids": ids, "signature": "not base64!"},
        ]
        for forged in forgeries:
            await publish_ack(mosquitto.port, forged)
        await lane.wait_counter("lanegw_bad_messages_total", len(forgeries), topic="ack_unverified")
        assert outbox_ids(tmp_path / "state") == ids, "a forged ack deleted records"
        await publish_ack(mosquitto.port, sign_message({"record_ids": ids}, station_key))
        await lane.wait_until(lambda: outbox_ids(tmp_path / "state") == [])
        assert lane.alive()


async def test_an_ack_for_a_record_not_yet_sent_deletes_nothing(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "outbox.sqlite3", 10_000_000)
    records = [await box.add(make, offline=True) for _ in range(4)]
    box.sent_through = 2  # records 3 and 4 were never handed to the broker
    unsent: list[int] = []
    box.on_unsent_acked = unsent.append
    box.forget_acked([r.record_id for r in records])
    await box.aclose()  # applies the queued ack
    reopened = Outbox(tmp_path / "outbox.sqlite3", 10_000_000)
    assert [p.seq for p in await reopened.pending(0, 10)] == [3, 4]
    assert unsent == [2]
    await reopened.aclose()
