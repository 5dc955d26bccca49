"""The benchmark's child processes: the simulators, the daemon (``lanegw run``), the bare loop,
and the lane config the daemon is given."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Final

import yaml

from bench.sims import MAP_PATH

STATION: Final = "4401001"
LANE: Final = "L1"
BASE: Final = f"lanegw/{STATION}/{LANE}"
REPO: Final = Path(__file__).resolve().parent.parent


def child_env(workdir: Path) -> dict[str, str]:
    """Environment of the children: the repo importable, port locks in the work dir."""
    locks = workdir / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {
        **os.environ,
        "PYTHONPATH": path,
        "PYTHONUNBUFFERED": "1",
        "LANEGW_LOCK_DIR": str(locks),
    }


def lanegw_command() -> list[str]:
    """How to start the daemon: the installed ``lanegw`` script next to this Python."""
    script = Path(sys.executable).parent / "lanegw"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway"]


def modbus_device(index: int, port: int, period_s: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Bus and device entries of bench meter ``index`` (one Modbus TCP link each)."""
    name = f"m{index:02d}"
    bus = {"id": f"bus-{name}", "kind": "modbus_tcp", "url": f"127.0.0.1:{port}"}
    device = {
        "id": name,
        "class": "axle_weigher",
        "protocol": "modbus-weigher",
        "bus": f"bus-{name}",
        "poll_period_s": period_s,
        "options": {"map": str(MAP_PATH)},
    }
    return bus, device


def write_config(
    path: Path,
    state_dir: Path,
    mqtt_port: int,
    buses: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    **mqtt: Any,
) -> Path:
    """A lane config for the daemon: telemetry at the highest rate the config allows."""
    config = {
        "station": STATION,
        "lane": LANE,
        "state_dir": str(state_dir),
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "keepalive_s": 30,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            "telemetry_max_hz": 100,
            **mqtt,
        },
        "metrics": {"enabled": False},
        "buses": buses,
        "devices": devices,
    }
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


class Child:
    """A child process whose output goes to a log file; stopped with SIGTERM."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.argv = argv
        self.log = log
        self.env = env
        self.proc: asyncio.subprocess.Process | None = None
        self.spawned_at = 0.0

    @property
    def pid(self) -> int:
        """The process id (once started)."""
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        """Spawn it; ``spawned_at`` is the wall-clock time just before."""
        with open(self.log, "ab") as log:
            self.spawned_at = time.time()
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=log, stderr=log, env=self.env
            )

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def alive(self) -> bool:
        """Still running."""
        return self.proc is not None and self.proc.returncode is None


def daemon(config: Path, workdir: Path, name: str = "daemon") -> Child:
    """``lanegw run --config CONFIG`` (JSON logs to ``workdir/NAME.log``)."""
    argv = [*lanegw_command(), "run", "--config", str(config), "--log-format", "json"]
    return Child(argv, workdir / f"{name}.log", child_env(workdir))


class Sims:
    """``python -m bench.sims SPEC``: the simulators in a process of their own."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.proc: asyncio.subprocess.Process | None = None
        self.endpoints: dict[str, Any] = {}

    async def __aenter__(self) -> Sims:
        with open(self.workdir / "sims.log", "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.sims",
                json.dumps(self.spec),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=child_env(self.workdir),
                limit=1 << 20,
            )
        assert self.proc.stdout is not None
        async with asyncio.timeout(60):
            line = await self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"simulators did not start: see {self.workdir / 'sims.log'}")
        self.endpoints = json.loads(line)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    @property
    def pid(self) -> int:
        """The simulators' process id."""
        assert self.proc is not None
        return self.proc.pid

    async def stats(self) -> dict[str, Any]:
        """The simulators' counters now."""
        assert self.proc is not None
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        stats: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        return stats
