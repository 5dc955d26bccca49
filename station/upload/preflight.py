"""``lanegw station check`` for the uploads: each enabled platform's field table loads,
and the platform answers a time sync (a query: it changes nothing there)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import aiohttp

from station.config import StationConfig
from station.upload.env import EnvClient
from station.upload.psb import PsbClient
from station.upload.render import Inputs, render
from station.upload.tables import ENV_FILE, PSB_FILE, Tables, TablesError, load_tables
from station.upload.wire import Exchange, Outcome


async def upload_checks(config: StationConfig) -> list[tuple[str, bool, str]]:
    """(name, ok, detail) per enabled platform; nothing when uploading is off."""
    up = config.upload
    if not up.enabled:
        return []
    found = []
    async with aiohttp.ClientSession() as session:
        for name, platform, default in (("psb", up.psb, PSB_FILE),
                                        ("environmental", up.environmental, ENV_FILE)):  # fmt: skip
            if not platform.enabled:
                continue
            try:
                tables = load_tables(platform.fields_file, default)
            except TablesError as exc:
                found.append((f"upload {name}", False, str(exc)))
                continue
            exchange = await _time_sync(config, name, tables, session)
            ok = exchange.outcome is Outcome.ACCEPTED
            detail = f"{platform.url}: {'time sync answered' if ok else exchange.detail}"
            found.append((f"upload {name}", ok, f"{detail} ({tables.data.name})"))
    return found


async def _time_sync(
    config: StationConfig, name: str, tables: Tables, session: aiohttp.ClientSession
) -> Exchange:
    up = config.upload
    values = {"station_code": (up.psb.station_code if name == "psb"
                               else up.environmental.station_code) or config.station,
              "software_id": up.psb.software_id}  # fmt: skip
    inputs = Inputs(now=datetime.now(UTC), zone=ZoneInfo(config.timezone), config=values)
    if name == "psb":
        fields = render(tables.fields_for("18C50"), inputs, tables).values
        client = PsbClient(session, up.psb.url or "", tables, up.psb.jkxlh, up.psb.timeout_s)
        return await client.call("18C50", "query", fields)
    env = up.environmental
    fields = render(tables.fields_for("downInspSynctime"), inputs, tables).values
    return await EnvClient(session, env.url or "", tables, env.jksqm, env.timeout_s).call(
        "downInspSynctime", fields
    )
