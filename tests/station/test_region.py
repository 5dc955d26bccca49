"""The regional tier end to end: two stations' mosquitto bridged (TLS, passwords, the
shipped region.acl) to a regional mosquitto, real gateways with their simulators, a
station receiver per station and two regional receivers sharing the results into one
partitioned PostgreSQL. Acknowledgements cross the bridge: the tier configured to ack
is the only one the gateways hear.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bench.bridge import BridgeLogin, bridge_options, config_text
from station.store import RecordStore
from tests.mosquitto import Mosquitto, free_port
from tests.station.postgres import Postgres
from tests.station.receivers import (
    Lane,
    Receiver,
    lanegw,
    speedometer_lane,
    station_config,
    stored_rows,
    wait_until,
)
from tests.tlsca import make_ca_and_server

ROOT = Path(__file__).parents[2]
STATIONS = ("4401001", "4401002")
USERS = {f"bridge-{s}": f"pw-{s}" for s in STATIONS} | {"region-receiver": "pw-region"}
RECORDS_PER_ORDER = 2  # S1 and the inspection summary


@dataclass
class Region:
    """The regional broker and what logging in to it takes."""

    broker: Mosquitto
    ca: Path
    password_file: Path


@pytest.fixture
def region(tmp_path: Path) -> Iterator[Region]:
    """A regional mosquitto with TLS, passwords and config/mosquitto/region.acl."""
    workdir = tmp_path / "region"
    workdir.mkdir()
    ca, cert, key = make_ca_and_server(workdir)
    passwd = workdir / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        flags = ["-c"] if i == 0 else []
        subprocess.run(["mosquitto_passwd", *flags, "-b", str(passwd), user, password], check=True)
    port = free_port()
    listener = (
        f"listener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous false\npassword_file {passwd}\n"
        f"acl_file {ROOT / 'config' / 'mosquitto' / 'region.acl'}\n"
    )
    broker = Mosquitto(workdir, port, listener)
    broker.start()
    password_file = workdir / "receiver-password"
    password_file.write_text(USERS["region-receiver"])
    password_file.chmod(0o600)
    yield Region(broker, ca, password_file)
    broker.stop()


@contextlib.contextmanager
def station_broker(tmp_path: Path, station: str, region: Region) -> Iterator[Mosquitto]:
    """A station's mosquitto (anonymous on loopback) with its bridge to the region."""
    workdir = tmp_path / f"broker-{station}"
    workdir.mkdir()
    port = free_port()
    login = BridgeLogin(region.ca, f"bridge-{station}", USERS[f"bridge-{station}"])
    bridge = config_text(bridge_options(station, region.broker.port, login=login))
    broker = Mosquitto(workdir, port, f"listener {port} 127.0.0.1\nallow_anonymous true\n{bridge}")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def region_config(
    path: Path, region: Region, database: str, name: str, ack: bool, metrics_port: int = 0
) -> Path:
    return station_config(
        path, region.broker.port, database, station="+",
        metrics={"enabled": bool(metrics_port), "port": metrics_port},
        mqtt={
            "client_id": name, "share_group": "lanegw-region", "acknowledge": ack,
            "username": "region-receiver", "password_file": str(region.password_file),
            "tls": {"enabled": True, "ca_file": str(region.ca)},
        },
        database={"partitions": "monthly", "transactions": "per_batch"},
        checks={"gap_grace_s": 30, "sweep_interval_s": 0.5},
    )  # fmt: skip


@contextlib.asynccontextmanager
async def receivers(configs: list[tuple[Path, Path]]) -> AsyncIterator[list[Receiver]]:
    """``lanegw station run`` for each (config, log), started together, stopped at the end."""
    started = [Receiver(config, log) for config, log in configs]
    try:
        await asyncio.gather(*(r.start() for r in started))
        yield started
    finally:
        codes = await asyncio.gather(*(r.stop() for r in started))
        assert all(code in (0, -signal.SIGKILL) for code in codes), codes


async def query(database: str, sql: str) -> list[tuple[Any, ...]]:

    store = await RecordStore.open(database, "test-reader")
    try:
        async with store.db.transaction() as tx:
            return await tx.all(sql)
    finally:
        await store.close()


def seqs_by_gateway(rows: list[tuple[str, str, int, str]]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for _, gateway, seq, _ in rows:
        found.setdefault(gateway, []).append(seq)
    return {gateway: sorted(seqs) for gateway, seqs in found.items()}


def http_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def inspect_all(lanes: list[Lane], numbers: range) -> None:
    for number in numbers:
        await asyncio.gather(*(lane.inspect(number) for lane in lanes))


async def test_wan_cut_and_a_regional_receiver_killed_lose_and_double_nothing(
    tmp_path: Path, region: Region, postgres: Postgres
) -> None:
    """The region acknowledges. The regional broker goes down for a while (the WAN cut for
    both stations): the stations keep storing, the gateways keep everything. Later one
    regional receiver freezes while records flow and is killed. Every record ends up
    exactly once in the region and at its station, no gap is alarmed, outboxes empty."""
    regional_db = postgres.database()
    station_dbs = {s: f"sqlite:{tmp_path}/station-{s}.sqlite3" for s in STATIONS}
    with (
        station_broker(tmp_path, STATIONS[0], region) as broker_a,
        station_broker(tmp_path, STATIONS[1], region) as broker_b,
    ):
        brokers = {STATIONS[0]: broker_a, STATIONS[1]: broker_b}
        metrics_port = free_port()  # region-b's, the survivor
        configs = [
            (region_config(tmp_path / f"{n}.yaml", region, regional_db, n, ack=True,
                           metrics_port=metrics_port if n == "region-b" else 0),
             tmp_path / f"{n}.log")
            for n in ("region-a", "region-b")
        ] + [
            (station_config(tmp_path / f"st-{s}.yaml", brokers[s].port, station_dbs[s],
                            station=s, mqtt={"acknowledge": False}),
             tmp_path / f"st-{s}.log")
            for s in STATIONS
        ]  # fmt: skip
        async with (
            receivers(configs) as (region_a, _region_b, *_stations),
            speedometer_lane(tmp_path / "la", "L1", broker_a.port, STATIONS[0]) as lane_a,
            speedometer_lane(tmp_path / "lb", "L1", broker_b.port, STATIONS[1]) as lane_b,
        ):
            lanes = [lane_a, lane_b]

            async def region_has(count: int) -> bool:
                stored = len(await stored_rows(regional_db)) == count
                return stored and all(lane.outbox_depth() == 0 for lane in lanes)

            await inspect_all(lanes, range(100, 102))
            await wait_until(lambda: region_has(2 * 2 * RECORDS_PER_ORDER))

            # the WAN cut: the stations store what their lanes produce, nobody acks it
            region.broker.stop()
            await inspect_all(lanes, range(102, 104))

            async def stations_stored_gateways_kept() -> bool:
                counts = [len(await stored_rows(station_dbs[s])) for s in STATIONS]
                depths = [lane.outbox_depth() for lane in lanes]
                return counts == [4 * RECORDS_PER_ORDER] * 2 and depths == [4, 4]

            await wait_until(stations_stored_gateways_kept)
            region.broker.start()
            await wait_until(lambda: region_has(2 * 4 * RECORDS_PER_ORDER))

            # a regional receiver freezes with records in its hands, then is killed
            resent_before = [len(lane.daemon.log_events("records_unacknowledged_resending"))
                             for lane in lanes]  # fmt: skip
            assert region_a.proc is not None
            region_a.proc.send_signal(signal.SIGSTOP)
            await inspect_all(lanes, range(104, 108))

            async def frozen_share_resent() -> bool:
                now = [len(lane.daemon.log_events("records_unacknowledged_resending"))
                       for lane in lanes]  # fmt: skip
                return any(n > b for n, b in zip(now, resent_before, strict=True))

            await wait_until(frozen_share_resent)
            await region_a.kill()
            await wait_until(lambda: region_has(2 * 8 * RECORDS_PER_ORDER), timeout=90)
            # the regional receiver's metrics name each lane with its station
            metrics = await asyncio.to_thread(http_text, f"http://127.0.0.1:{metrics_port}/metrics")
            for station in STATIONS:
                lane = f'lane="{station}/L1"'
                assert f'lanegw_station_records_total{{{lane},outcome="stored"}}' in metrics
                assert f"lanegw_station_acks_total{{{lane}}}" in metrics

        expected = list(range(1, 8 * RECORDS_PER_ORDER + 1))
        regional = await stored_rows(regional_db)
        assert len(regional) == len({r[0] for r in regional}) == 2 * len(expected)
        assert seqs_by_gateway(regional) == {f"lanegw-{s}-L1": expected for s in STATIONS}
        assert {receiver for *_, receiver in regional} == {"region-a", "region-b"}
        for station in STATIONS:
            rows = await stored_rows(station_dbs[station])
            assert seqs_by_gateway(rows) == {f"lanegw-{station}-L1": expected}
        for database in (regional_db, *station_dbs.values()):
            alarms = await query(database, "SELECT kind, resolved_at FROM alarms")
            assert not [kind for kind, _ in alarms if kind == "sequence_gap"], alarms
            assert all(resolved for _, resolved in alarms), alarms
        # the regional rows sit in this month's partition
        partitions = await query(
            regional_db, "SELECT DISTINCT tableoid::regclass::text FROM records"
        )
        assert len(partitions) == 1 and partitions[0][0].startswith("records_20")
        status = lanegw("station", "status", "-c", str(configs[1][0]), "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        gateways = {g["gateway_id"]: g["records"] for g in json.loads(status.stdout)["gateways"]}
        assert gateways == {f"lanegw-{s}-L1": len(expected) for s in STATIONS}


async def test_the_station_acks_and_the_region_only_stores(
    tmp_path: Path, region: Region, postgres: Postgres
) -> None:
    """The other way round: regional receivers with ``acknowledge: false``. The region
    stores what the bridge brings, yet the gateway keeps it until the station commits."""
    regional_db = postgres.database()
    station = STATIONS[0]
    station_db = f"sqlite:{tmp_path}/station.sqlite3"
    with station_broker(tmp_path, station, region) as broker:
        config = region_config(tmp_path / "region.yaml", region, regional_db, "region-a", False)
        local = station_config(tmp_path / "station.yaml", broker.port, station_db, station=station)
        async with (
            receivers([(config, tmp_path / "region.log")]),
            speedometer_lane(tmp_path / "lane", "L1", broker.port, station) as lane,
        ):
            await lane.inspect(100)
            await lane.inspect(101)

            async def region_stored_gateway_kept() -> bool:
                count = len(await stored_rows(regional_db))
                return count == 2 * RECORDS_PER_ORDER and lane.outbox_depth() == count

            await wait_until(region_stored_gateway_kept)
            async with receivers([(local, tmp_path / "station.log")]):

                async def station_stored_and_drained() -> bool:
                    count = len(await stored_rows(station_db))
                    return count == 2 * RECORDS_PER_ORDER and lane.outbox_depth() == 0

                await wait_until(station_stored_and_drained)
        assert len(await stored_rows(regional_db)) == 2 * RECORDS_PER_ORDER


def test_the_shipped_bridge_example_has_the_tested_options() -> None:
    """config/mosquitto/station-bridge.conf sets every option the tests run the bridge with
    (bench/bridge.py), to the same value but for addresses, names, files and timers."""
    shipped: dict[str, list[str]] = {}
    text = (ROOT / "config" / "mosquitto" / "station-bridge.conf").read_text()
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            shipped.setdefault(name, []).append(value.strip())
    login = BridgeLogin(Path("/ca.pem"), "bridge-4401001", "pw")
    local = {"address", "bridge_cafile", "remote_password", "keepalive_interval", "restart_timeout"}
    for name, value in bridge_options("4401001", 8883, login=login):
        assert name in shipped, name
        if name not in local:
            assert value in shipped[name], (name, value, shipped[name])
