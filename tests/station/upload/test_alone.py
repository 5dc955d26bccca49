"""``python -m station.upload``: the uploader as its own process (SQLite here), syncing
both platforms' clocks at start and stopping cleanly on SIGTERM; a config without the
platforms' URLs is refused with its problem (exit 2)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import sys
from pathlib import Path

import aiomqtt
import yaml

from tests.harness import STATION
from tests.mosquitto import Mosquitto
from tests.station.receivers import station_config
from tests.station.upload.fakes import FakeEnv, FakePsb


async def test_the_uploader_runs_alone_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: Mosquitto
) -> None:
    psb, env = FakePsb(), FakeEnv()
    await psb.start()
    await env.start()
    upload = {"enabled": True, "psb": {"url": psb.url, "jkxlh": psb.jkxlh},
              "environmental": {"url": env.url, "jksqm": env.jksqm}}  # fmt: skip
    config = station_config(tmp_path / "station.yaml", mosquitto.port,
                            f"sqlite:{tmp_path}/station.sqlite3", upload=upload)  # fmt: skip
    log = tmp_path / "upload.log"
    with open(log, "wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "station.upload", "-c", str(config), "--log-format", "json",
            env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=out, stderr=out,
        )  # fmt: skip
    try:
        await psb.wait_for(lambda: bool(psb.accepted("18C50")), timeout=30)
        await env.wait_for(lambda: bool(env.accepted("downInspSynctime")), timeout=30)
        assert psb.accepted("18C50")[0].values == {"babh": ""}
        # garbage on the lanes' progress does not stop it; a real start is kept
        start = {"inspection_id": "44010012026112099", "step": "inspection_started",
                 "message": "started", "values": {"plate": "粤A12345", "vin": "LSVAU2180N2183299",
                 "category": "passenger_car", "attempt": "x"}, "ts": "2026-12-03T12:00:00Z"}  # fmt: skip
        async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
            base = f"lanegw/{STATION}/L1/progress"
            async with asyncio.timeout(20):  # the uploader follows the lanes
                while '"event": "upload_following"' not in log.read_text():
                    await asyncio.sleep(0.05)
            for payload in (b"not json", json.dumps(start).encode(),
                            json.dumps({**start, "values": {**start["values"], "attempt": 1},
                                        "inspection_id": "44010012026112098"}).encode()):  # fmt: skip
                await client.publish(base, payload, qos=1)

        def vehicles() -> list[tuple[str, str]]:
            with contextlib.closing(sqlite3.connect(tmp_path / "station.sqlite3")) as db:
                return db.execute("SELECT inspection_id, plate FROM upload_vehicles").fetchall()

        async with asyncio.timeout(20):
            while ("44010012026112098", "粤A12345") not in vehicles():
                await asyncio.sleep(0.1)
        assert proc.returncode is None  # still running
    finally:
        proc.terminate()
        assert await proc.wait() == 0
        await psb.close()
        await env.close()


async def test_a_config_without_the_platforms_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "station.yaml"
    path.write_text(yaml.safe_dump({"station": "4401001", "upload": {"enabled": True}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "station.upload", "-c", str(path),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    assert proc.returncode == 2
    assert "upload.psb.url is needed" in err.decode()


async def test_station_check_tries_both_platforms(tmp_path: Path, mosquitto: Mosquitto) -> None:
    psb, env = FakePsb(), FakeEnv()
    await psb.start()
    await env.start()
    await env.down()  # the environmental platform is unreachable
    upload = {"enabled": True, "psb": {"url": psb.url, "jkxlh": psb.jkxlh},
              "environmental": {"url": env.url, "jksqm": env.jksqm}}  # fmt: skip
    config = station_config(tmp_path / "station.yaml", mosquitto.port,
                            f"sqlite:{tmp_path}/station.sqlite3", upload=upload)  # fmt: skip
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", "station", "check", "-c", str(config), "--json",
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        await psb.close()
        await env.close()
    assert proc.returncode == 1
    checks = {c["name"]: c for c in json.loads(out)}
    assert checks["upload psb"]["ok"] and "time sync answered" in checks["upload psb"]["detail"]
    assert not checks["upload environmental"]["ok"]
    assert "Cannot connect" in checks["upload environmental"]["detail"]
    assert [r.call for r in psb.received] == ["18C50"]  # a query: nothing written there
