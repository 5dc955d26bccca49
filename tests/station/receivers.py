"""Harness of the station end-to-end tests: ``lanegw station run`` as a subprocess, and
simulated lanes whose gateways deliver on the station's acknowledgement."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from simulators.lane import SimDevice, SimLane
from station.store import RecordStore
from tests.harness import (
    STATION,
    Daemon,
    order,
    scenario_at_speed,
    send_command,
    serving,
    write_config,
)

SCENARIO = Path(__file__).parents[2] / "simulators" / "scenarios" / "passing-car.yaml"
#: a gateway resends what the station has not acknowledged after this long
ACK_TIMEOUT_S = 2.0


def station_config(
    path: Path, mqtt_port: int, database_url: str, station: str = STATION, **sections: Any
) -> Path:
    """A station config; ``sections`` replace or extend its top-level sections."""
    config: dict[str, Any] = {
        "station": station,
        "mqtt": {"port": mqtt_port, "reconnect_min_s": 0.2, "reconnect_max_s": 1.0},
        "database": {"url": database_url},
        "checks": {"gap_grace_s": 30, "sweep_interval_s": 0.5},
        "web": {"enabled": False},
        "metrics": {"enabled": False},
    }
    for name, values in sections.items():
        config[name] = {**config.get(name, {}), **values}
    path.write_text(yaml.safe_dump(config))
    return path


class Receiver(Daemon):
    """``lanegw station run`` as a child process."""

    command = ("station", "run")

    async def start(self) -> None:
        await super().start()
        async with asyncio.timeout(20):  # subscribed: nothing published later is missed
            while not self.log_events("station_started"):
                assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
                await asyncio.sleep(0.05)

    def events(self, event: str) -> list[dict[str, Any]]:
        return self.log_events(event) if self.log.exists() else []


@dataclass
class Lane:
    """A simulated speedometer lane and its gateway daemon."""

    name: str
    daemon: Daemon
    outbox: Path
    mqtt_port: int
    station: str = STATION

    def outbox_depth(self) -> int:
        with contextlib.closing(sqlite3.connect(self.outbox)) as db:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])

    async def inspect(self, number: int) -> None:
        """Queue an order (retried while the lane's queue is full)."""
        for _ in range(200):
            answer = await send_command(
                self.mqtt_port, "inspect", order(number), lane=self.name, station=self.station
            )
            if answer["ok"]:
                return
            assert "busy" in answer["error"], answer
            await asyncio.sleep(0.1)
        raise AssertionError(f"lane {self.name} refused order {number}")


@contextlib.asynccontextmanager
async def speedometer_lane(
    workdir: Path, name: str, mqtt_port: int, station: str = STATION, **mqtt: Any
) -> AsyncIterator[Lane]:
    """A lane whose gateway keeps records until the station acknowledges them."""
    workdir.mkdir()
    sims = SimLane(scenario_at_speed(SCENARIO, 0.02), [SimDevice("speedometer", "tlch10")])
    async with serving(sims):
        bus = {"id": "com1", "url": sims.running["speedometer"].url, "response_timeout_s": 0.5}
        device = {
            "id": "speedometer", "class": "speedometer_tester", "protocol": "tlch10",
            "bus": "com1", "options": {"poll_interval_s": 0.02},
        }  # fmt: skip
        config = write_config(
            workdir / "lane.yaml", workdir / "state", mqtt_port, [bus], [device],
            {"station": station, "lane": name, "procedure_time_scale": 0.02},
            delivery="server_ack", ack_timeout_s=ACK_TIMEOUT_S, **mqtt,
        )  # fmt: skip
        daemon = Daemon(config, workdir / "daemon.log")
        await daemon.start()
        try:
            async with asyncio.timeout(30):  # connected: it hears the orders
                while not daemon.log_events("mqtt_connected"):
                    assert daemon.proc and daemon.proc.returncode is None, daemon.log.read_text()
                    await asyncio.sleep(0.05)
            yield Lane(name, daemon, workdir / "state" / "outbox.sqlite3", mqtt_port, station)
        finally:
            await daemon.stop()


async def stored_rows(database: str) -> list[tuple[str, str, int, str]]:
    """(record_id, gateway_id, seq, receiver) of every stored record."""
    store = await RecordStore.open(database, "test-reader")
    try:
        async with store.db.transaction() as tx:
            rows = await tx.all("SELECT record_id, gateway_id, seq, receiver FROM records")
    finally:
        await store.close()
    return [(r[0], r[1], int(r[2]), r[3]) for r in rows]


async def stored_payload(database: str, record_id: str) -> dict[str, Any]:
    """A stored record, as received."""
    store = await RecordStore.open(database, "test-reader")
    try:
        async with store.db.transaction() as tx:
            row = await tx.one("SELECT payload FROM records WHERE record_id = %s", (record_id,))
    finally:
        await store.close()
    assert row is not None, record_id
    return dict(json.loads(row[0]))


async def wait_until(predicate: Any, timeout: float = 60.0, every: float = 0.2) -> None:
    """Poll an (async) condition of another process's state until it holds."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(every)


def lanegw(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI, as a technician runs it."""
    env = {**os.environ, "COLUMNS": "200"}  # a wide terminal: table cells not wrapped
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
