"""End-to-end harness: in-process simulators, the daemon as a real subprocess, and an MQTT
subscriber that plays the station server. Everything talks over real sockets/PTYs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from simulators.lane import SimLane
from simulators.scenario import Scenario, load_scenario

STATION = "4401001"
LANE = "L1"
BASE = f"lanegw/{STATION}/{LANE}"


def write_config(
    path: Path,
    state_dir: Path,
    mqtt_port: int,
    buses: list[dict[str, Any]],
    devices: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
    **mqtt: Any,
) -> Path:
    """Write a lane config; ``extra`` adds top-level keys (e.g. procedure_time_scale)."""
    extra = extra or {}
    config = {
        "station": STATION,
        "lane": LANE,
        "state_dir": str(state_dir),
        "mqtt": {
            "host": "127.0.0.1",
            "port": mqtt_port,
            "keepalive_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1.0,
            **mqtt,
        },
        "metrics": {"enabled": False},
        "buses": buses,
        "devices": devices,
    }
    config.update(extra)
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


class Daemon:
    """``lanegw run`` as a child process."""

    command: tuple[str, ...] = ("run",)

    def __init__(self, config: Path, log: Path) -> None:
        self.config = config
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "gateway",
                *self.command,
                "--config",
                str(self.config),
                "--log-format",
                "json",
                stdout=log,
                stderr=log,
                env=env,
            )

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        await self.proc.wait()

    async def stop(self) -> int | None:
        """SIGTERM; the exit code (killed after 10 s if it hangs: then not 0)."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(10):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        return None if self.proc is None else self.proc.returncode

    def log_events(self, event: str) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{") and f'"event": "{event}"' in line:
                found.append(json.loads(line))
        return found


@dataclass
class Station:
    """A subscriber playing the station server; reconnects, keeps its session."""

    port: int
    results: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1",
                    self.port,
                    identifier="test-station",
                    protocol=aiomqtt.ProtocolVersion.V311,
                    clean_session=False,
                ) as client:
                    await client.subscribe(f"{BASE}/#", qos=1)
                    self.connected.set()
                    async for message in client.messages:
                        self._take(str(message.topic), message.payload)
            except aiomqtt.MqttError:
                self.connected.clear()
                await asyncio.sleep(0.2)

    def _take(self, topic: str, payload: Any) -> None:
        try:
            data = json.loads(payload)
        except (ValueError, RecursionError):  # tests publish garbage on purpose
            return
        sub = topic[len(BASE) + 1 :]
        if sub == "results":
            self.results.append(data)
        self.messages.setdefault(sub, []).append(data)
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def unique_results(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for record in self.results:
            seen.setdefault(record["record_id"], record)
        return list(seen.values())


async def send_command(
    port: int,
    command: str,
    args: dict[str, Any],
    lane: str = LANE,
    timeout: float = 20,
    station: str = STATION,
) -> dict[str, Any]:
    """Send a command like the station server and wait for its response."""
    base = f"lanegw/{station}/{lane}"
    async with aiomqtt.Client("127.0.0.1", port) as client:
        response_topic = f"{base}/response/{command}"
        await client.subscribe(response_topic, qos=1)
        body = {"args": args, "correlation_id": "t1", "response_topic": response_topic}
        await client.publish(f"{base}/cmd/{command}", json.dumps(body), qos=1)
        async with asyncio.timeout(timeout):
            async for message in client.messages:
                answer: dict[str, Any] = json.loads(message.payload)
                return answer
    raise AssertionError("no response")


def order(number: int, items: Iterable[str] = ("S1",)) -> dict[str, Any]:
    return {
        "inspection_id": f"44010012026112{number:03d}",
        "plate": "粤A12345",
        "vin": "LSVAU2180N2183294",
        "category": "passenger_car",
        "axle_count": 2,
        "curb_mass_kg": 1400,
        "gross_mass_kg": 1850,
        "items": list(items),
    }


@contextlib.asynccontextmanager
async def running_lane(
    tmp_path: Path,
    mqtt_port: int,
    sims: SimLane,
    config: Callable[[SimLane], tuple[list[dict[str, Any]], list[dict[str, Any]]]],
    extra: dict[str, Any] | None = None,
    mqtt: dict[str, Any] | None = None,
) -> AsyncIterator[tuple[Daemon, Station]]:
    """Simulators in-process, the daemon as a subprocess, a station subscriber.

    ``config(sims)`` returns the (buses, devices) of the lane config once the simulators
    listen. The daemon has announced itself (birth) when the block starts.
    """
    station = Station(mqtt_port)
    ready = asyncio.Event()

    async def background() -> None:
        async with asyncio.TaskGroup() as group:
            await sims.start(group)
            group.create_task(station.run())
            ready.set()

    task = asyncio.create_task(background())
    await ready.wait()
    await station.connected.wait()
    buses, devices = config(sims)
    path = write_config(
        tmp_path / "lane.yaml", tmp_path / "state", mqtt_port, buses, devices, extra, **(mqtt or {})
    )
    daemon = Daemon(path, tmp_path / "daemon.log")
    await daemon.start()
    try:
        await station.wait_for(
            lambda: any(m["online"] for m in station.messages.get("state", [])), timeout=30
        )
        yield daemon, station
    finally:
        await daemon.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def serving(sims: SimLane) -> AsyncIterator[SimLane]:
    """Run the simulators of ``sims`` for the duration of the block."""
    ready = asyncio.Event()

    async def background() -> None:
        async with asyncio.TaskGroup() as group:
            await sims.start(group)
            ready.set()

    task = asyncio.create_task(background())
    await ready.wait()
    try:
        yield sims
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def scenario_at_speed(path: Path, time_scale: float) -> Scenario:
    """A scenario file with its timing sped up."""
    scenario = load_scenario(path)
    timing = scenario.timing.model_copy(update={"time_scale": time_scale})
    return scenario.model_copy(update={"timing": timing})


async def run_cli(
    *args: str,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    unwrap: tuple[bool, bool] = (False, False),
) -> tuple[int, str, str]:
    """``lanegw ARGS`` as a technician runs it: exit code, stdout and stderr. ``env`` is
    added to this process's environment; ``unwrap`` (stdout, stderr) joins Rich's wrapped
    lines back into one, so a test can look for a sentence whatever the terminal width."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    async with asyncio.timeout(timeout):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    texts = [raw.decode() for raw in (out, err)]
    shown = [" ".join(t.split()) if flat else t for t, flat in zip(texts, unwrap, strict=True)]
    return proc.returncode, shown[0], shown[1]
