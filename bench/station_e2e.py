"""Station part 2: end to end, ``lanegw station run`` taking records from mosquitto.

Each case starts a fresh mosquitto and one or two receivers (real subprocesses, JSON logs,
web page and metrics off) on a fresh database. The benchmark then plays G gateways, each
on its own MQTT 5 connection: it subscribes to its lane's ``ack`` topic, publishes its
retained birth, and once every key is registered in the database, publishes its N signed,
chained records on its ``results`` topic at QoS 1 the way the daemon delivers
(``server_ack``): windows of ``inflight`` records, the next window once the broker has
PUBACKed the last. The clock runs from the first publish to the last record id
acknowledged on the ``ack`` topics; the receivers' CPU (over that window and since their
start) and resident memory are read from the kernel at the end. Every record must be
stored exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from bench.broker import Broker
from bench.postgres import Postgres
from bench.proc import CpuWindow, cpu_seconds, memory_mb
from bench.procs import Child, child_env, lanegw_command
from bench.station_records import STATION, BenchGateway
from gateway.mqtt import publish_bounded
from station.store import RecordStore

ROOT = f"lanegw/{STATION}"
#: database and number of receivers of each end-to-end case
CASES = ("sqlite-1", "postgresql-1", "postgresql-2")


def station_yaml(
    path: Path, mqtt_port: int, url: str, client_id: str, max_held: int | None = None
) -> Path:
    """A receiver's config: the defaults (batch 200, shared group) but no web or metrics;
    ``max_held``: its ``mqtt.max_held`` instead of the default."""
    mqtt: dict[str, Any] = {"port": mqtt_port, "client_id": client_id, "reconnect_min_s": 0.2}
    if max_held is not None:
        mqtt["max_held"] = max_held
    config = {
        "station": STATION,
        "mqtt": mqtt,
        "database": {"url": url},
        "web": {"enabled": False},
        "metrics": {"enabled": False},
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def start_receiver(
    workdir: Path, mqtt_port: int, url: str, name: str, max_held: int | None = None
) -> Child:
    """``lanegw station run``, returned once it has subscribed."""
    config = station_yaml(workdir / f"{name}.yaml", mqtt_port, url, name, max_held)
    argv = [*lanegw_command(), "station", "run", "--config", str(config), "--log-format", "json"]
    child = Child(argv, workdir / f"{name}.log", child_env(workdir))
    await child.start()
    async with asyncio.timeout(30):
        while '"event": "station_started"' not in child.log.read_text(errors="replace"):
            if not child.alive():
                raise RuntimeError(f"{name} exited: {child.log.read_text()[-1500:]}")
            await asyncio.sleep(0.05)
    return child


async def query(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one read of the station database (a connection of its own)."""
    store = await RecordStore.open(url, "bench-reader")
    try:
        async with store.db.transaction() as tx:
            return await tx.all(sql, params)
    finally:
        await store.close()


@dataclass
class Lane:
    """One simulated gateway: its records and what the station acknowledged of them."""

    gateway: BenchGateway
    payloads: list[bytes]
    pending: set[str] = field(default_factory=set)
    ack_messages: int = 0
    acked_ids: int = 0
    last_ack_at: float = 0.0
    published_at: float = 0.0

    def __post_init__(self) -> None:
        self.pending = {json.loads(p)["record_id"] for p in self.payloads}

    @property
    def topic(self) -> str:
        """The lane's topic prefix."""
        return f"{ROOT}/{self.gateway.lane}"


def gateway_client(lane: Lane, port: int, inflight: int) -> aiomqtt.Client:
    """A connection as the daemon opens it (MQTT 5, TCP_NODELAY, its in-flight window)."""
    return aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"bench-{lane.gateway.gateway_id}",
        protocol=aiomqtt.ProtocolVersion.V5,
        max_inflight_messages=inflight,
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )


async def publish(client: aiomqtt.Client, lane: Lane, inflight: int) -> None:
    """Every record, a window of ``inflight`` at a time (as ``lanegw run`` delivers)."""
    client.pending_calls_threshold = inflight + 16  # a full window is pending by design
    for start in range(0, len(lane.payloads), inflight):
        async with asyncio.TaskGroup() as group:
            for payload in lane.payloads[start : start + inflight]:
                group.create_task(publish_bounded(client, f"{lane.topic}/results", payload, 1))
    lane.published_at = time.perf_counter()


async def listen(client: aiomqtt.Client, lane: Lane) -> None:
    """Take the lane's acks until every record id has come back."""
    async for message in client.messages:
        ids = json.loads(message.payload)["record_ids"]
        lane.ack_messages += 1
        lane.acked_ids += len(ids)
        lane.pending.difference_update(ids)
        if not lane.pending:
            lane.last_ack_at = time.perf_counter()
            return


async def wait_keys(url: str, count: int) -> None:
    """Until the receivers have registered every gateway's key from its birth."""
    async with asyncio.timeout(30):
        while True:
            rows = await query(url, "SELECT COUNT(*) FROM gateways WHERE public_key IS NOT NULL")
            if rows[0][0] >= count:
                return
            await asyncio.sleep(0.1)


@dataclass
class Meters:
    """CPU windows of every process taking part, opened at the first publish."""

    receivers: list[Child]
    broker_pid: int
    postgres: Postgres | None
    windows: list[CpuWindow] = field(default_factory=list)
    started: float = 0.0
    own_cpu: float = 0.0
    pg_cpu: float = 0.0
    rss_before: list[float] = field(default_factory=list)

    def start(self) -> None:
        """Open the windows (and note the receivers' memory before the records)."""
        self.rss_before = [memory_mb(r.pid)[0] for r in self.receivers]
        self.windows = [CpuWindow(r.pid) for r in self.receivers] + [CpuWindow(self.broker_pid)]
        for window in self.windows:
            window.start()
        self.pg_cpu = self.postgres.cpu_seconds() if self.postgres else 0.0
        self.own_cpu = time.process_time()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        """Close them; the receivers' figures and the others' CPU seconds."""
        for window in self.windows:
            window.stop()
        own = time.process_time() - self.own_cpu
        pg = self.postgres.cpu_seconds() - self.pg_cpu if self.postgres else None
        receivers = []
        # the windows list ends with the broker's, which has no receiver
        for child, window, before in zip(
            self.receivers, self.windows, self.rss_before, strict=False
        ):
            rss, hwm = memory_mb(child.pid)
            receivers.append(
                {
                    "cpu_s_run": round(window.cpu_s, 2),
                    "cpu_s_total": round(cpu_seconds(child.pid), 2),
                    "rss_before_mb": round(before, 1),
                    "rss_mb": round(rss, 1),
                    "hwm_mb": round(hwm, 1),
                }
            )
        return {
            "per_receiver": receivers,
            "broker_cpu_s": round(self.windows[-1].cpu_s, 2),
            "publisher_cpu_s": round(own, 2),
            "postgres_cpu_s": None if pg is None else round(pg, 2),
        }


async def drive(
    lanes: list[Lane], port: int, url: str, inflight: int, meters: Meters
) -> tuple[float, dict[str, Any]]:
    """Connect the gateways, announce them, publish everything; the seconds it took until
    the last ack, and what the meters measured until then."""
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(gateway_client(lane, port, inflight)) for lane in lanes
        ]
        for client, lane in zip(clients, lanes, strict=True):
            await client.subscribe(f"{lane.topic}/ack", qos=1)
            await client.publish(f"{lane.topic}/state", lane.gateway.birth(), qos=1, retain=True)
        await wait_keys(url, len(lanes))
        total = sum(len(lane.payloads) for lane in lanes)
        meters.start()
        async with asyncio.timeout(60 + total / 50), asyncio.TaskGroup() as group:
            for client, lane in zip(clients, lanes, strict=True):
                group.create_task(listen(client, lane))
                group.create_task(publish(client, lane, inflight))
        measured = meters.stop()  # before the disconnects
    return max(lane.last_ack_at for lane in lanes) - meters.started, measured


def _fresh_broker(workdir: Path) -> Broker:
    """A mosquitto of the case's own: no retained birth of an earlier case's gateway."""
    workdir.mkdir(parents=True)
    broker = Broker(workdir)
    broker.start()
    return broker


async def case(
    workdir: Path,
    database: str,
    url: str,
    postgres: Postgres | None,
    receivers: int,
    lanes: list[Lane],
    inflight: int,
    max_held: int | None = None,
) -> dict[str, Any]:
    """One broker, ``receivers`` receivers on ``url``, every lane's records through them."""
    broker = _fresh_broker(workdir)
    assert broker.proc is not None
    children: list[Child] = []
    try:
        for n in range(receivers):
            name = f"receiver-{n + 1}"
            children.append(await start_receiver(workdir, broker.port, url, name, max_held))
        meters = Meters(children, broker.proc.pid, postgres)
        seconds, measured = await drive(lanes, broker.port, url, inflight, meters)
    finally:
        for child in children:
            await child.stop()
        broker.stop()
    split = dict(await query(url, "SELECT receiver, COUNT(*) FROM records GROUP BY receiver"))
    return _row(database, receivers, lanes, seconds, meters.started, measured, split)


def _row(
    database: str,
    receivers: int,
    lanes: list[Lane],
    seconds: float,
    started: float,
    measured: dict[str, Any],
    split: dict[str, int],
) -> dict[str, Any]:
    total = sum(len(lane.payloads) for lane in lanes)
    for n, receiver in enumerate(measured["per_receiver"]):
        receiver["stored"] = int(split.get(f"receiver-{n + 1}", 0))
    receiver_cpu = sum(r["cpu_s_run"] for r in measured["per_receiver"])
    others = [measured["broker_cpu_s"], measured["publisher_cpu_s"], measured["postgres_cpu_s"]]
    busy = receiver_cpu + sum(x for x in others if x is not None)
    acks = sum(lane.ack_messages for lane in lanes)
    return {
        "database": database,
        "receivers": receivers,
        "gateways": len(lanes),
        "records": total,
        "record_bytes": round(sum(len(p) for lane in lanes for p in lane.payloads) / total),
        "seconds": round(seconds, 2),
        "records_per_s": round(total / seconds),
        "published_s": round(max(lane.published_at for lane in lanes) - started, 2),
        "stored": sum(split.values()),
        "all_acked": all(not lane.pending for lane in lanes),
        "ack_messages": acks,
        "ids_per_ack": round(sum(lane.acked_ids for lane in lanes) / max(1, acks), 1),
        "receiver_cpu_ms_per_record": round(1000 * receiver_cpu / total, 3),
        **measured,
        # CPU of every process in the run over the wall time of both cores
        "machine_busy_pct": round(100 * busy / (seconds * 2), 1),
    }


async def run(
    workdir: Path,
    postgres: Postgres,
    gateways: int,
    records: int,
    variant: str,
    inflight: int,
    log: Callable[[str], None] = print,
    max_held: int | None = None,
    cases: tuple[str, ...] = CASES,
) -> list[dict[str, Any]]:
    """SQLite with one receiver, PostgreSQL with one and with two (``cases``)."""
    rows = []
    for database, receivers in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2)):
        if f"{database}-{receivers}" not in cases:
            continue
        name = f"e2e-{database}-{receivers}"
        lanes = []
        for n in range(gateways):
            gateway = BenchGateway(f"L{n + 1}")
            lanes.append(Lane(gateway, gateway.records(records, variant)))
        pg = postgres if database == "postgresql" else None
        url = postgres.database() if pg else f"sqlite:{workdir}/{name}.sqlite3"
        row = await case(workdir / name, database, url, pg, receivers, lanes, inflight, max_held)
        row["variant"] = variant
        if row["stored"] != row["records"] or not row["all_acked"]:
            raise RuntimeError(f"{name}: {row['stored']} of {row['records']} stored")
        log(
            f"  e2e {database:10} x{receivers}: {row['records_per_s']:5} records/s acknowledged"
            f" ({row['records']} in {row['seconds']} s, published in {row['published_s']} s),"
            f" receiver CPU {row['receiver_cpu_ms_per_record']} ms/record,"
            f" RSS {', '.join(str(r['rss_mb']) for r in row['per_receiver'])} MB"
            f" (peak {', '.join(str(r['hwm_mb']) for r in row['per_receiver'])} MB)"
        )
        rows.append(row)
    return rows
