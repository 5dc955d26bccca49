"""The station receiver against hostile messages: it never dies of one (not even a
retained one it meets at every start), believes no state its gateway did not sign, and
lets no second gateway take over a lane."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt

from tests.harness import STATION
from tests.mosquitto import Mosquitto
from tests.station.receivers import Receiver, lanegw, station_config, stored_rows, wait_until
from tests.station.signed import SigningGateway

BASE = f"lanegw/{STATION}"


def status(config: Path) -> dict[str, object]:
    done = lanegw("station", "status", "--config", str(config), "--json")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def alarm_kinds(config: Path) -> set[str]:
    return {a["kind"] for a in status(config)["alarms"]}  # type: ignore[attr-defined]


async def test_deep_json_retained_on_results_is_malformed_evidence_not_a_crash(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    database = f"sqlite:///{tmp_path / 'station.sqlite3'}"
    config = station_config(tmp_path / "station.yaml", mosquitto.port, database)
    deep = b"[" * 100_000 + b"]" * 100_000  # 200 kB: json.loads dies of RecursionError
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
        await client.publish(f"{BASE}/L1/results", deep, qos=1, retain=True)
        await client.publish(f"{BASE}/L1/state", b'{"online": ' * 5000, qos=1, retain=True)
    gateway = SigningGateway("lanegw-4401001-L1", "L1")
    for start in range(2):  # the retained message is met again at every start
        receiver = Receiver(config, tmp_path / f"station-{start}.log")
        await receiver.start()
        try:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                await client.publish(f"{BASE}/L1/state", gateway.birth(), qos=1)
                await client.publish(f"{BASE}/L1/results", gateway.record(), qos=1)

            async def stored(count: int = start + 1) -> bool:
                return len(await stored_rows(database)) == count

            await wait_until(stored, timeout=30)
            assert receiver.proc is not None and receiver.proc.returncode is None
        finally:
            assert await receiver.stop() == 0
    assert "malformed" in alarm_kinds(config)
    async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:  # tidy the broker
        await client.publish(f"{BASE}/L1/results", b"", qos=1, retain=True)
        await client.publish(f"{BASE}/L1/state", b"", qos=1, retain=True)


async def test_forged_states_and_a_second_gateway_on_a_lane_are_not_believed(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    database = f"sqlite:///{tmp_path / 'station.sqlite3'}"
    config = station_config(tmp_path / "station.yaml", mosquitto.port, database)
    receiver = Receiver(config, tmp_path / "station.log")
    await receiver.start()
    genuine = SigningGateway("lanegw-4401001-L1", "L1")
    attacker = SigningGateway("lanegw-4401001-L9", "L1")  # another id, its own key, lane L1
    impostor = SigningGateway("lanegw-4401001-L1", "L1")  # the genuine id, another key
    try:
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            await client.publish(f"{BASE}/L1/state", genuine.birth(), qos=1)
            await client.publish(f"{BASE}/L1/results", genuine.record(), qos=1)

            async def genuine_stored() -> bool:
                return len(await stored_rows(database)) == 1

            await wait_until(genuine_stored, timeout=30)
            # a forged "offline" for the genuine gateway, signed by another key, and one
            # with no signature at all
            await client.publish(f"{BASE}/L1/state", impostor.birth(online=False), qos=1)
            unsigned = json.loads(genuine.birth(online=False))
            del unsigned["signature"]
            await client.publish(f"{BASE}/L1/state", json.dumps(unsigned), qos=1)
            # a second gateway announcing itself on L1, then its record for L1
            await client.publish(f"{BASE}/L1/state", attacker.birth(), qos=1)
            await client.publish(f"{BASE}/L1/results", attacker.record(), qos=1)

            async def alarmed() -> bool:
                return {"forged_state", "lane_claimed"} <= alarm_kinds(config)

            await wait_until(alarmed)
            await asyncio.sleep(0.5)  # the attacker's record is handled after its state
        report = status(config)
        gateways = {g["gateway_id"]: g for g in report["gateways"]}  # type: ignore[attr-defined]
        assert gateways["lanegw-4401001-L1"]["online"] is True, "a forged offline was believed"
        assert not gateways.get("lanegw-4401001-L9", {}).get("key"), "the second id got a key"
        rows = await stored_rows(database)
        assert [gateway for _, gateway, _, _ in rows] == ["lanegw-4401001-L1"]
        assert {"forged_state", "lane_claimed", "unknown_gateway"} <= alarm_kinds(config)
        assert receiver.proc is not None and receiver.proc.returncode is None
    finally:
        assert await receiver.stop() == 0
