"""``python -m station.upload``: the uploader as its own process (SQLite here), syncing
both platforms' clocks at start and stopping cleanly on SIGTERM; a config without the
platforms' URLs is refused with its problem (exit 2)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml

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
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "station.upload", "-c", str(config), "--log-format", "json",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        await psb.wait_for(lambda: bool(psb.accepted("18C50")), timeout=30)
        await env.wait_for(lambda: bool(env.accepted("downInspSynctime")), timeout=30)
        assert psb.accepted("18C50")[0].values == {"babh": ""}
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
