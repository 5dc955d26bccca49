"""Helpers of the flow tests: the flow in-process on a real database and broker, and an
HTTP client that keeps its session cookie and CSRF token like a browser."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from station.config import StationConfig
from station.flow.auth import hash_password
from station.flow.runner import FlowRunner
from station.flow.service import Flow
from station.receiver import mqtt_client
from tests.harness import STATION

PASSWORD = "correct horse 1"
USERS = {
    "reg": ("王登录", "registrar"),
    "insp": ("李检验", "inspector"),
    "chief": ("张总检", "chief"),
    "admin": ("赵管理", "admin"),
}
#: a VIN with a right check digit (position 9)
VIN = "LSVAU218XN2183294"


@functools.cache
def password_hash() -> str:
    """One argon2id hash of PASSWORD for every test account (hashing is slow on purpose)."""
    return hash_password(PASSWORD)


def flow_section(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "port": 0,
        "key_file": str(tmp_path / "flow.key"),
        "station_name": "测试机动车检测站",
        "lanes": ["L1", "L2"],
        "dispatch_timeout_s": 3,
        **extra,
    }


@contextlib.asynccontextmanager
async def running_flow(
    tmp_path: Path, database_url: str, mqtt_port: int, **flow: Any
) -> AsyncIterator[tuple[Flow, str]]:
    """The flow in-process (its own MQTT clients, the real database); (flow, base URL)."""
    config = StationConfig.model_validate({
        "station": STATION,
        "mqtt": {"port": mqtt_port, "reconnect_min_s": 0.2},
        "database": {"url": database_url},
        "flow": flow_section(tmp_path, **flow),
    })  # fmt: skip
    runner = FlowRunner(config, lambda ident: mqtt_client(config, None, ident))
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(20):
            await runner.started.wait()
        assert runner.flow is not None
        for username, (name, role) in USERS.items():
            await runner.flow.store.add_user(username, name, role, password_hash())
        yield runner.flow, f"http://127.0.0.1:{runner.port}"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Browser:
    """A client that keeps the flow's cookie (Secure or not) and reads CSRF tokens."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.cookie: str | None = None
        self.csrf: str | None = None

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = dict(extra or {})
        if self.cookie:
            headers["Cookie"] = f"lanegw_flow={self.cookie}"
        return headers

    def _keep(self, response: aiohttp.ClientResponse) -> None:
        morsel = response.cookies.get("lanegw_flow")
        if morsel is not None:
            self.cookie = morsel.value or None

    async def get(self, path: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.http.get(self.base + path, headers=self._headers(),
                                 allow_redirects=False) as response:  # fmt: skip
            self._keep(response)
            text = await response.text()
        found = re.search(r'name="csrf" value="([^"]+)"', text)
        if found:
            self.csrf = found.group(1)
        return response.status, text, response

    async def post(
        self, path: str, data: dict[str, Any] | None = None, csrf: str | None = None
    ) -> tuple[int, str, aiohttp.ClientResponse]:
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        async with self.http.post(self.base + path, data=form, headers=self._headers(),
                                  allow_redirects=False) as response:  # fmt: skip
            self._keep(response)
            return response.status, await response.text(), response

    async def api(self, path: str, body: Any, csrf: str | None = None) -> tuple[int, Any]:
        headers = self._headers({"X-CSRF-Token": self.csrf if csrf is None else csrf})
        async with self.http.post(self.base + path, json=body, headers=headers,
                                  allow_redirects=False) as response:  # fmt: skip
            self._keep(response)
            return response.status, await response.json()

    async def login(self, username: str, password: str = PASSWORD) -> int:
        await self.get("/login")
        status, _, _ = await self.post("/login", {"username": username,
                                                          "password": password, "next": "/"})  # fmt: skip
        if status == 303:
            await self.get("/")  # the new session's CSRF token
        return status


def registration(**overrides: Any) -> dict[str, Any]:
    """A small passenger car, periodic inspection."""
    return {
        "plate": "粤A12345",
        "plate_type": "02",
        "vin": VIN,
        "kind": "small_passenger",
        "fuel": "petrol",
        "curb_mass_kg": 1300,
        "gross_mass_kg": 1700,
        "axles": 2,
        "headlamps": 2,
        "inspection_type": "periodic",
        **overrides,
    }
