"""Parts the fault tests share: lanes whose daemon (a real subprocess) drives a simulated
speedometer tester, a station server that stores (and may acknowledge) the records of
every lane, looks into a lane's outbox, and the suite's totals of faults and records."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from gateway.verify import GatewayReport, verify
from simulators.faults import FaultPlan
from simulators.lane import SimDevice, SimLane
from tests.harness import STATION, Daemon, order, scenario_at_speed, serving, write_config
from tests.summaries import FaultTotals

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"
DEVICE = "speedometer"
#: the latched speed of the scenario's car (37.6 km/h) with the simulator's noise
SPEED_RANGE = (36.5, 38.7)


def base(lane: str) -> str:
    """The topic prefix of a lane."""
    return f"lanegw/{STATION}/{lane}"


# totals ----------------------------------------------------------------------------------
#: the suite's totals (tests/summaries.py adds them up across xdist workers)
Totals = FaultTotals


# waiting ---------------------------------------------------------------------------------
async def until(predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``predicate`` every 50 ms; returns the seconds it took, fails after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# the station server ----------------------------------------------------------------------
@dataclass
class Station:
    """The station server: subscribed to every lane, keeps everything that arrives and,
    with ``ack``, acknowledges each record once stored (``server_ack`` delivery)."""

    port: int
    ack: bool = False
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    messages: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    connects: int = 0
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Run in a task of its own; returns once subscribed."""
        self._task = asyncio.create_task(self.run())
        async with asyncio.timeout(10):
            await self.connected.wait()

    async def stop(self) -> None:
        """Disconnect and stay away until ``start`` (its broker session may remain)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Stay subscribed (reconnecting, resubscribing) until cancelled."""
        try:
            while True:
                try:
                    await self._session()
                except aiomqtt.MqttError:
                    self.connected.clear()
                    await asyncio.sleep(0.2)
        finally:
            self.connected.clear()

    async def _session(self) -> None:
        async with aiomqtt.Client(
            "127.0.0.1",
            self.port,
            identifier="fault-station",
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=False,
        ) as client:
            await client.subscribe(f"lanegw/{STATION}/+/#", qos=1)
            self.connects += 1
            self.connected.set()
            async for message in client.messages:
                stored = self._take(str(message.topic), message.payload)
                if stored is not None and self.ack:
                    lane, record_id = stored
                    body = json.dumps({"record_ids": [record_id]})
                    await client.publish(f"{base(lane)}/ack", body, qos=1)

    def _take(self, topic: str, payload: Any) -> tuple[str, str] | None:
        """Keep a message; returns (lane, record id) when it was a result record."""
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        _root, _station, lane, sub = topic.split("/", 3)
        self.messages.setdefault(lane, {}).setdefault(sub, []).append(data)
        self.changed.set()
        if sub == "results":
            self.results.setdefault(lane, []).append(data)
            return lane, str(data["record_id"])
        return None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self.changed.clear()
                    await self.changed.wait()
        except TimeoutError:
            raise AssertionError(f"station: no {what} within {timeout} s") from None

    def of(self, lane: str, sub: str) -> list[dict[str, Any]]:
        return self.messages.get(lane, {}).get(sub, [])

    def unique(self, lane: str) -> list[dict[str, Any]]:
        """Records of a lane, first arrival of each record id, in arrival order."""
        seen: dict[str, dict[str, Any]] = {}
        for record in self.results.get(lane, []):
            seen.setdefault(record["record_id"], record)
        return list(seen.values())

    def seqs(self, lane: str) -> set[int]:
        return {int(r["seq"]) for r in self.results.get(lane, [])}

    def keys(self) -> dict[str, str]:
        """Public keys by gateway id, from the birth messages."""
        return {
            str(m["gateway_id"]): str(m["public_key"])
            for topics in self.messages.values()
            for m in topics.get("state", [])
            if m.get("online") and m.get("public_key")
        }

    def availability(self, lane: str, device: str = DEVICE) -> list[str]:
        """The availability values published for a device, in order."""
        return [m["availability"] for m in self.of(lane, f"devices/{device}/status")]

    async def wait_birth(self, lane: str, previous: str | None, timeout: float = 30) -> str:
        """Wait for the birth of a session other than ``previous``; returns its id."""

        def newest() -> str | None:
            births = [m for m in self.of(lane, "state") if m["online"]]
            return str(births[-1]["session_id"]) if births else None

        await self.wait_for(
            lambda: newest() not in (None, previous), timeout, f"birth of a new {lane} session"
        )
        session = newest()
        assert session is not None
        return session


@contextlib.asynccontextmanager
async def station_running(station: Station) -> AsyncIterator[Station]:
    """Run ``station`` for the duration of the block (subscribed when the block starts)."""
    await station.start()
    try:
        yield station
    finally:
        await station.stop()


async def send_command(port: int, lane: str, command: str, args: dict[str, Any]) -> dict[str, Any]:
    """Send a command to a lane like the station server and return the response."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        response_topic = f"{base(lane)}/response/{command}"
        await client.subscribe(response_topic, qos=1)
        body = {"args": args, "correlation_id": "f1", "response_topic": response_topic}
        await client.publish(f"{base(lane)}/cmd/{command}", json.dumps(body), qos=1)
        async with asyncio.timeout(20):
            async for message in client.messages:
                return dict(json.loads(message.payload))  # type: ignore[arg-type]
    raise AssertionError("no response")


async def submit(
    port: int, lane: str, numbers: Iterable[int], items: Iterable[str] = ("S1",)
) -> None:
    """Queue orders; each must be accepted."""
    for number in numbers:
        answer = await send_command(port, lane, "inspect", order(number, items))
        assert answer["ok"], answer


# lanes -----------------------------------------------------------------------------------
@dataclass
class Lane:
    """One lane: its simulated speedometer tester and its daemon."""

    name: str
    sims: SimLane
    daemon: Daemon
    state_dir: Path

    @property
    def outbox(self) -> Path:
        return self.state_dir / "outbox.sqlite3"

    @property
    def faults(self) -> FaultPlan:
        return self.sims.running[DEVICE].faults

    def events(self, event: str) -> list[dict[str, Any]]:
        return self.daemon.log_events(event)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.daemon.log.read_text(errors="replace").splitlines()[-lines:])


def sim_lane(time_scale: float) -> SimLane:
    """A simulated speedometer tester running the passing car at ``time_scale``."""
    return SimLane(scenario_at_speed(SCENARIO, time_scale), [SimDevice(DEVICE, "tlch10")])


@contextlib.asynccontextmanager
async def running_lane(
    workdir: Path,
    name: str,
    mqtt_port: int,
    station: Station,
    *,
    time_scale: float = 0.02,
    state_dir: Path | None = None,
    mqtt: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    bus: dict[str, Any] | None = None,
    device: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Lane]:
    """The simulator in-process and the daemon as a subprocess, online when the block starts.

    The daemon's MQTT settings default to the harness's (keepalive 5 s, reconnect
    0.2-1 s); ``mqtt`` overrides them. On failure the end of the daemon's log is printed.
    """
    _make_dir(workdir)
    async with serving(sim_lane(time_scale)) as sims:
        bus_cfg = {"id": "com1", "url": sims.running[DEVICE].url, "response_timeout_s": 0.5}
        device_cfg = {
            "id": DEVICE,
            "class": "speedometer_tester",
            "protocol": "tlch10",
            "bus": "com1",
            "poll_period_s": 0.5,
            "options": {"poll_interval_s": 0.02},
        }
        state = state_dir or workdir / "state"
        config = write_config(
            workdir / "lane.yaml",
            state,
            mqtt_port,
            [{**bus_cfg, **(bus or {})}],
            [{**device_cfg, **(device or {})}],
            {"lane": name, "procedure_time_scale": 0.02, **(extra or {})},
            **(mqtt or {}),
        )
        daemon = EnvDaemon(config, workdir / "daemon.log", env or {})
        lane = Lane(name, sims, daemon, state)
        await daemon.start()
        try:
            await station.wait_birth(name, None)
            yield lane
        except BaseException:
            print(f"--- daemon log of lane {name} (end) ---\n{lane.log_tail()}")
            raise
        finally:
            await daemon.stop()


def _make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


class EnvDaemon(Daemon):
    """``lanegw run`` as a child process, with extra environment variables."""

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        super().__init__(config, log)
        self.env = env

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                "run",
                "--config",
                str(self.config),
                "--log-format",
                "json",
                stdout=log,
                stderr=log,
                env=env,
            )


# the outbox ------------------------------------------------------------------------------
def query(outbox: Path, sql: str) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(outbox, timeout=10)) as db:
        return db.execute(sql).fetchall()


def integrity(outbox: Path) -> str:
    return "; ".join(str(row[0]) for row in query(outbox, "PRAGMA integrity_check"))


def last_seq(outbox: Path) -> int:
    rows = query(outbox, "SELECT value FROM meta WHERE key = 'last_seq'")
    return int(rows[0][0]) if rows else 0


def depth(outbox: Path) -> int:
    return int(query(outbox, "SELECT COUNT(*) FROM records")[0][0])


# the end of every test -------------------------------------------------------------------
def check_delivered(
    station: Station, lane: Lane, totals: Totals, *, arrival_order: bool = True
) -> GatewayReport:
    """Every record the lane produced (seq 1..last_seq in its outbox) reached the station,
    no seq names two records, and the stream verifies (signatures, chain, no gaps).

    ``arrival_order``: verify the stream as it arrived (first arrivals in seq order);
    otherwise as the station's archive, sorted by seq. Counts the records into ``totals``.
    """
    produced = last_seq(lane.outbox)
    records = [r for r in station.results.get(lane.name, []) if int(r["seq"]) <= produced]
    got = {int(r["seq"]) for r in records}
    delivered = len(got & set(range(1, produced + 1)))
    totals.produced += produced
    totals.delivered += delivered
    missing = sorted(set(range(1, produced + 1)) - got)
    assert not missing, f"lane {lane.name}: {len(missing)} produced records lost: {missing[:20]}"
    ids_by_seq: dict[int, set[str]] = {}
    for record in records:
        ids_by_seq.setdefault(int(record["seq"]), set()).add(record["record_id"])
    reused = {seq: ids for seq, ids in ids_by_seq.items() if len(ids) > 1}
    assert not reused, f"lane {lane.name}: a seq names more than one record: {reused}"
    if not arrival_order:
        first = {r["record_id"]: r for r in reversed(records)}
        records = sorted(first.values(), key=lambda r: int(r["seq"]))
    (report,) = verify(records, station.keys())
    assert report.ok, f"lane {lane.name}: {report}"
    assert report.records == produced and report.first_seq == 1
    return report
