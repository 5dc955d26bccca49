"""``lanegw station check``: can this config run? The database, the broker and (with
``upload``) the regulators' platforms, tried without changing anything (an SQLite file
that does not exist yet is not created)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from gateway.secrets import SecretError, read_password
from station.config import StationConfig
from station.receiver import mqtt_client
from station.store.db import StoreUnavailable, open_database, sqlite_path

CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Check:
    """One thing tried, and what came of it."""

    name: str
    ok: bool
    detail: str


async def preflight(config: StationConfig) -> list[Check]:
    """The config (already valid), the database and the broker."""
    url = config.database.url
    path = sqlite_path(url)
    database = _new_sqlite(path) if path is not None and not path.exists() else None
    from station.upload.preflight import upload_checks

    checks = [
        Check("config", True, f"station {config.station}, trust {config.trust.mode}"),
        database or await _database(url, str(path) if path else _postgres_name(url)),
        await _broker(config),
        *(Check(*found) for found in await upload_checks(config)),  # the regulators
    ]
    if config.flow.enabled:  # the one-window pages (docs/station-flow.md)
        from station.flow.config import flow_checks

        checks += [Check(name, ok, detail) for name, ok, detail in flow_checks(config.flow)]
    return checks


def _postgres_name(url: str) -> str:
    parts = urlsplit(url)  # never print the password of the URL
    return f"PostgreSQL {parts.hostname or 'local socket'}:{parts.port or 5432}{parts.path}"


async def _database(url: str, where: str) -> Check:
    try:
        db = await open_database(url)
        try:
            async with db.transaction() as tx:
                await tx.one("SELECT 1")
        finally:
            await db.close()
    except StoreUnavailable as exc:
        return Check("database", False, str(exc))
    return Check("database", True, where)


def _new_sqlite(path: Path) -> Check:
    parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
    if os.access(parent, os.W_OK):
        return Check("database", True, f"{path} will be created at the first start")
    return Check("database", False, f"cannot create {path}: {parent} is not writable")


async def _broker(config: StationConfig) -> Check:
    mqtt = config.mqtt
    where = f"{mqtt.host}:{mqtt.port} MQTT {mqtt.protocol}" + (" TLS" if mqtt.tls.enabled else "")
    try:
        password = read_password(mqtt.password_file)
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            async with mqtt_client(config, password, f"{config.client_id}-check"):
                pass
    except SecretError as exc:
        return Check("broker", False, str(exc))
    except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
        # a silent broker times out with an empty message: say what happened
        reason = str(exc) or f"no answer within {CONNECT_TIMEOUT_S:g} s"
        return Check("broker", False, f"{where}: {reason}")
    return Check("broker", True, where)
